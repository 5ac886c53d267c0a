"""Saved scoring state: resume and extend a score with new epoch files, without reading the old
ones again.

A state file holds the core's per-sample state (sums and counts of margins, labels, per-epoch
tallies of the memorisation monitor; ``_core.Accumulator.to_bytes``) and what is needed to extend
it safely: which files and epochs it already holds, so that feeding one twice - which would count
its margins twice and silently shift every AUM - is refused.

Layout (little-endian)::

    b"aum-score state\\n"  (16 bytes)
    u32 format version     (FORMAT_VERSION; a reader refuses any other)
    u32 header length      then the header: UTF-8 JSON (see ScoringState.header)
    u64 state length       then the core's state bytes ("AUMSTATE", its own version inside)
    32 bytes               SHA-256 of everything before: a flipped or missing byte is caught

Files are written atomically (temporary file, then rename; one upload for a URL).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import _core, storage
from ._version import __version__
from .errors import LogFormatError
from .logs import LogFile, epoch_selected

MAGIC = b"aum-score state\n"
FORMAT_VERSION = 1
STATE_SUFFIX = ".aumstate"
_DIGEST = 32


@dataclass
class ScoringState:
    """A scoring run's per-sample state and what it consumed."""

    accumulator: _core.Accumulator
    threshold_class: int | None = None
    #: log files already scored: {"path", "name", "size", "epoch"} ("epoch" None when per row)
    files: list[dict] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  #: labels files given
    epoch_window: list[int | None] | None = None  #: [start, stop) the files were scored with
    next_epoch: int = 0  #: a Scorer's epoch for rows without one
    aum_score_version: str = __version__  #: version that wrote the state
    path: str | None = None  #: where it was loaded from (for messages)

    @property
    def classes(self) -> int:
        return int(self.accumulator.classes)

    @property
    def string_ids(self) -> bool:
        return bool(self.accumulator.string_ids)

    def epochs(self) -> list[int]:
        """Epochs with margins in the state."""
        tallies = self.accumulator.epoch_tallies()
        return [int(e) for e, rows in zip(tallies["epoch"], tallies["rows"]) if rows > 0]

    def header(self) -> dict:
        return {
            "aum_score_version": self.aum_score_version,
            "format_version": FORMAT_VERSION,
            "classes": self.classes,
            "sample_ids": "string" if self.string_ids else "int",
            "threshold_class": self.threshold_class,
            "epochs": self.epochs(),
            "epoch_window": self.epoch_window,
            "files": self.files,
            "labels": self.labels,
            "next_epoch": self.next_epoch,
            "samples": int(self.accumulator.num_slots),
            "rows": int(self.accumulator.rows_added),
        }

    def to_bytes(self) -> bytes:
        header = json.dumps(self.header(), separators=(",", ":")).encode()
        payload = self.accumulator.to_bytes()
        body = b"".join(
            [
                MAGIC,
                struct.pack("<II", FORMAT_VERSION, len(header)),
                header,
                struct.pack("<Q", len(payload)),
                payload,
            ]
        )
        return body + hashlib.sha256(body).digest()

    def copy_accumulator(self) -> _core.Accumulator:
        """A fresh copy of the per-sample state to add new rows to (this one stays as loaded)."""
        return _core.Accumulator.from_bytes(self.accumulator.to_bytes())

    # --- resuming ---------------------------------------------------------------------------

    def name(self) -> str:
        return f"state {self.path}" if self.path else "the state"

    def check_threshold_class(self, threshold_class: int | None) -> int | None:
        """The threshold class to resume with: the state's, which a new one must not contradict
        (the per-epoch tallies of the monitor are kept for that class). A state scored without
        one may be given one: its earlier epochs then show no threshold rows in the monitor."""
        if threshold_class is None:
            return self.threshold_class
        if self.threshold_class is not None and threshold_class != self.threshold_class:
            raise LogFormatError(
                f"{self.path}: the state was scored with threshold class {self.threshold_class}, "
                f"not {threshold_class}; resume with the same threshold class"
            )
        return threshold_class

    def check_log(self, files: Sequence[LogFile], window: slice) -> None:
        """New files must be of the same run (C, id kind) and hold nothing the state holds."""
        kinds = {True: "strings", False: "integers"}
        first = files[0]
        if first.classes != self.classes:
            raise LogFormatError(
                f"{first.path}: logits have {first.classes} classes, but {self.name()} holds "
                f"{self.classes}; a state only extends the run it was scored from"
            )
        if first.string_ids != self.string_ids:
            raise LogFormatError(
                f"{first.path}: sample ids are {kinds[first.string_ids]}, but in {self.name()} "
                f"they are {kinds[self.string_ids]}"
            )
        seen = {(entry["name"], entry["size"]): entry for entry in self.files}
        scored = set(self.epochs())
        epoch_files = {e["epoch"]: e["path"] for e in self.files if e.get("epoch") is not None}
        for log in files:
            entry = seen.get((storage.base_name(log.path), storage.size(log.path)))
            if entry is not None:
                raise LogFormatError(
                    f"{log.path}: already scored into {self.name()} (as {entry['path']}: same "
                    f"name and size); scoring it again would count its margins twice - give "
                    f"only the new epochs' files"
                )
            if log.epoch is not None and epoch_selected(log.epoch, window) and log.epoch in scored:
                earlier = epoch_files.get(log.epoch)
                raise LogFormatError(
                    f"{log.path}: epoch {log.epoch} is already in {self.name()}"
                    + (f" (from {earlier})" if earlier else "")
                    + "; scoring it again would count its margins twice"
                )

    def check_added_epochs(
        self, accumulator: _core.Accumulator, files: Sequence[LogFile] = ()
    ) -> None:
        """After the new rows are in: none may belong to an epoch the state already held (files
        with an ``epoch`` column show their epochs only when read)."""
        columns = [log.path for log in files if log.has_epoch_column]
        where = f"{', '.join(columns)}: " if columns else ""
        before = self.accumulator.epoch_tallies()
        after = accumulator.epoch_tallies()
        rows_after = dict(zip(after["epoch"].tolist(), after["rows"].tolist()))
        for epoch, rows in zip(before["epoch"].tolist(), before["rows"].tolist()):
            if rows and rows_after.get(epoch, 0) != rows:
                raise LogFormatError(
                    f"{where}rows of epoch {epoch} (from the 'epoch' column), but epoch {epoch} is "
                    f"already in {self.name()}; scoring it again would count its margins twice"
                )

    def extended(
        self,
        accumulator: _core.Accumulator,
        files: Sequence[LogFile],
        labels: str | None,
        window: slice,
        threshold_class: int | None,
    ) -> ScoringState:
        """The state after scoring ``files`` into ``accumulator``."""
        return ScoringState(
            accumulator=accumulator,
            threshold_class=threshold_class,
            files=self.files + file_entries(files),
            labels=self.labels + ([labels] if labels else []),
            epoch_window=[window.start, window.stop],
            next_epoch=self.next_epoch,
            aum_score_version=__version__,
        )


def file_entries(files: Sequence[LogFile]) -> list[dict]:
    return [
        {
            "path": log.path,
            "name": storage.base_name(log.path),
            "size": storage.size(log.path),
            "epoch": log.epoch,
        }
        for log in files
    ]


def new_state(
    accumulator: _core.Accumulator,
    files: Sequence[LogFile],
    labels: str | None,
    threshold_class: int | None,
    window: slice,
) -> ScoringState:
    """The state of a run scored from scratch."""
    return ScoringState(
        accumulator=accumulator,
        threshold_class=threshold_class,
        files=file_entries(files),
        labels=[labels] if labels else [],
        epoch_window=[window.start, window.stop],
    )


def state_after(
    prior: ScoringState | None,
    accumulator: _core.Accumulator,
    files: Sequence[LogFile],
    labels: str | os.PathLike | None,
    threshold_class: int | None,
    window: slice,
) -> ScoringState:
    """The state after a run that scored ``files`` into ``accumulator``: ``prior`` extended,
    or a new state."""
    name = os.fspath(labels) if labels is not None else None
    if prior is not None:
        return prior.extended(accumulator, files, name, window, threshold_class)
    return new_state(accumulator, files, name, threshold_class, window)


def save_state(state: ScoringState, path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` (a local path or URL) atomically."""
    try:
        storage.write_bytes_atomic(path, state.to_bytes())
    except OSError as exc:
        raise LogFormatError(f"{os.fspath(path)}: cannot write the state ({exc})") from None


def load_state(path: str | os.PathLike) -> ScoringState:
    """Read a state file; any problem is one :class:`LogFormatError` naming it."""
    name = os.fspath(path)
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError:
        raise LogFormatError(f"{name}: no such state file") from None
    except OSError as exc:
        raise LogFormatError(f"{name}: cannot read the state ({exc})") from None
    state = state_from_bytes(data, name)
    state.path = name
    return state


def state_from_bytes(data: bytes, name: str = "state") -> ScoringState:
    corrupt = LogFormatError(f"{name}: the state file is truncated or corrupt")
    if not data.startswith(MAGIC):
        if data[:8] == b"AUMSTATE":
            raise LogFormatError(
                f"{name}: holds bare Scorer.to_bytes() state, not a state file; load it with "
                "Scorer.from_bytes, or save one with Scorer.save"
            )
        raise LogFormatError(f"{name}: not an aum-score state file")
    offset = len(MAGIC)
    if len(data) < offset + 8:
        raise corrupt
    version, header_size = struct.unpack_from("<II", data, offset)
    if version != FORMAT_VERSION:
        raise LogFormatError(
            f"{name}: state format version {version}{_writer_of(data, offset + 8, header_size)} "
            f"cannot be read by aum-score {__version__}, which reads version {FORMAT_VERSION}; "
            "use the aum-score version that wrote it, or score all epochs again"
        )
    if len(data) < offset + 8 + _DIGEST or (
        hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]
    ):
        raise corrupt
    offset += 8
    try:
        header = json.loads(data[offset : offset + header_size].decode())
        offset += header_size
        (payload_size,) = struct.unpack_from("<Q", data, offset)
        offset += 8
        if offset + payload_size != len(data) - _DIGEST:
            raise corrupt
        accumulator = _core.Accumulator.from_bytes(data[offset : offset + payload_size])
        state = ScoringState(
            accumulator=accumulator,
            threshold_class=_optional_int(header["threshold_class"]),
            files=[
                {
                    "path": str(e["path"]),
                    "name": str(e["name"]),
                    "size": int(e["size"]),
                    "epoch": _optional_int(e.get("epoch")),
                }
                for e in header["files"]
            ],
            labels=[str(p) for p in header.get("labels", [])],
            epoch_window=header.get("epoch_window"),
            next_epoch=int(header.get("next_epoch", 0)),
            aum_score_version=str(header["aum_score_version"]),
        )
    except LogFormatError:
        raise
    except (ValueError, KeyError, TypeError, struct.error, AttributeError):
        raise corrupt from None
    kind = "string" if state.string_ids else "int"
    if header.get("classes") != state.classes or header.get("sample_ids") != kind:
        raise corrupt
    return state


def _optional_int(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value


def _writer_of(data: bytes, offset: int, size: int) -> str:
    """`` (written by aum-score X)`` when a newer header still says so."""
    try:
        version = json.loads(data[offset : offset + size].decode())["aum_score_version"]
        return f" (written by aum-score {version})"
    except Exception:  # a header of another layout: the version number says enough
        return ""
