"""What runs on the workers: a piece of the log into a partial state, partial states merged,
a shard's result. States travel as ``Accumulator.to_bytes()`` (versioned, exact)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core
from ..errors import LogFormatError
from ..labels import LabelsFile, read_labels
from ..logs import read_batches
from ..memorisation import monitor_table
from ..results import build_result
from ..scoring import AddSettings, Sources, accumulate_log, add_labels_file
from .plan import LogPiece


@dataclass
class RunSetup:
    """What every piece task needs besides its piece (small: sent with each task)."""

    classes: int
    string_ids: bool
    window: slice
    settings: AddSettings
    labels: str | None = None  # labels file, read by each worker once


def accumulate_piece(piece: LogPiece, setup: RunSetup, shards: int) -> list[bytes]:
    """The partial state of one piece: its rows' samples only (labels-file samples without
    rows are dropped), split into ``shards`` states by sample id (shard 0 carries the rows and
    the per-epoch tallies)."""
    state = _accumulate(piece, setup)
    return [part.to_bytes() for part in _core.split_state(state, shards, True)]


def piece_tallies(piece: LogPiece, setup: RunSetup) -> dict:
    """Only the per-epoch tallies of a piece (the first pass of ``epochs="auto"``)."""
    state = _accumulate(piece, setup)
    return {**state.epoch_tallies(), "read": state.rows_added + state.rows_skipped}


def _accumulate(piece: LogPiece, setup: RunSetup) -> _core.Accumulator:
    state = _core.Accumulator(setup.classes, setup.string_ids)
    if not piece.has_epoch_column:  # a piece of one epoch: about one row per sample
        state.expect_samples(piece.rows or 0)
    sources = Sources(logs=[piece.path], labels=setup.labels)
    if setup.labels is not None:
        add_labels_file(state, _labels_for(piece, setup), sources)
    try:
        accumulate_log(state, [piece], sources, setup.window, setup.settings)
    except LogFormatError as exc:
        raise LogFormatError(_file_rows(str(exc), piece)) from None
    return state


def _file_rows(message: str, piece: LogPiece) -> str:
    """accumulate_log names rows from the piece's start; make them rows of the file."""
    prefix = f"{piece.path}: "
    if not piece.first_row or not message.startswith(prefix):
        return message
    import re

    def shift(match: re.Match) -> str:
        return f"row {int(match.group(1)) + piece.first_row}"

    return prefix + re.sub(r"row (\d+)", shift, message[len(prefix) :], count=1)


def _labels_for(piece: LogPiece, setup: RunSetup) -> LabelsFile:
    """The labels file's rows for the piece's samples (seeding all of a large labels file into
    every task would cost O(samples) per task)."""
    labels = _read_labels(setup.labels, setup.string_ids)
    ids = [b.column("sample_id") for b in _id_batches(piece)]
    try:
        wanted = pa.chunked_array(ids, type=ids[0].type if ids else labels.sample_ids.type)
        wanted = wanted.cast(labels.sample_ids.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return labels  # ids the scorer will reject, naming the row: give it every label
    index = pc.index_in(labels.sample_ids, value_set=pc.unique(wanted))
    rows = np.flatnonzero(index.is_valid().to_numpy(zero_copy_only=False))
    return LabelsFile(
        labels.path, labels.sample_ids.take(rows), labels.labels[rows], labels.threshold_class
    )


def _id_batches(piece: LogPiece):
    if piece.units is None:
        return read_batches(piece.path, piece.format, ["sample_id"])
    from .plan import _range_batches

    return _range_batches(piece.path, piece.format, ["sample_id"], piece.units, 1 << 16)


@functools.lru_cache(maxsize=2)
def _read_labels_cached(path: str, string_ids: bool, stamp: tuple) -> LabelsFile:
    labels = read_labels(path, string_ids)
    ids = labels.sample_ids.cast(pa.int64()) if not string_ids else labels.sample_ids
    if string_ids and not pa.types.is_string(ids.type):
        ids = ids.cast(pa.string())
    return LabelsFile(labels.path, ids, labels.labels, labels.threshold_class)


def _read_labels(path: str, string_ids: bool) -> LabelsFile:
    """A worker reads the labels file once per run (a changed file is read again)."""
    try:
        info = os.stat(path)
        stamp = (info.st_mtime_ns, info.st_size)
    except OSError:  # a URL: read once per worker process
        stamp = ()
    return _read_labels_cached(path, string_ids, stamp)


def merge_states(states: Sequence[bytes], names: Sequence[str], allow_label_changes: bool) -> bytes:
    """Partial states of consecutive pieces merged in log order (so that, with label changes
    allowed, the last label wins as in a local run)."""
    merged = _core.Accumulator.from_bytes(states[0])
    for state, name in zip(states[1:], names[1:]):
        try:
            merged.merge(_core.Accumulator.from_bytes(state), allow_label_changes)
        except ValueError as exc:
            raise LogFormatError(
                f"{name}: {exc}: the rows of this part of the log disagree with those of "
                f"{names[0]}; use --allow-label-changes (allow_label_changes=True) if labels "
                "may change between rows"
            ) from None
    return merged.to_bytes()


def shard_facts(state: bytes, threshold_class: int | None) -> dict:
    """What the driver needs of a merged shard: its threshold samples' AUMs, its size, and (from
    shard 0) the run's totals and per-epoch tallies."""
    accumulator = _core.Accumulator.from_bytes(state)
    _, labels, sums, counts = accumulator.arrays()
    is_threshold = labels == threshold_class if threshold_class is not None else counts < 0
    return {
        "threshold_aums": sums[is_threshold] / counts[is_threshold],
        "samples": int((counts > 0).sum()),
        "rows": int(accumulator.rows_added),
        "skipped": int(accumulator.rows_skipped),
        "tallies": accumulator.epoch_tallies(),
    }


def write_shard(
    state: bytes,
    path: str,
    threshold_class: int | None,
    percentile: float,
    bootstrap: int,
    run_threshold_aums: np.ndarray,
) -> int:
    """One shard's result table, flagged against the whole run's threshold samples, written to
    ``path`` (Parquet, sorted by AUM ascending). Returns the samples flagged."""
    import pyarrow.parquet as pq

    result = build_result(
        _core.Accumulator.from_bytes(state),
        threshold_class,
        percentile,
        bootstrap,
        run_threshold_aums=run_threshold_aums,
    )
    pq.write_table(result.table, path)
    return result.summary.flagged


def sum_tallies(parts: Sequence[dict]) -> pa.Table:
    """The monitor of the whole run from per-piece (or per-shard) tallies."""
    total: dict[int, np.ndarray] = {}
    names = ("rows", "margin_sum", "tallied_rows", "tallied_fitted", "tallied_margin_sum")
    for part in parts:
        for i, epoch in enumerate(part["epoch"].tolist()):
            row = total.setdefault(epoch, np.zeros(len(names)))
            row += [part[name][i] for name in names]
    epochs = sorted(total)
    table = {"epoch": np.array(epochs, dtype=np.int64)}
    for j, name in enumerate(names):
        values = np.array([total[e][j] for e in epochs], dtype=np.float64)
        table[name] = values if "sum" in name else values.astype(np.int64)
    return monitor_table(table)
