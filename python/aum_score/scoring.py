"""Drives logit logs, batch by batch, into the C++ accumulator, turning the core's row errors into
messages that name the file and row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa

from . import _core
from .errors import LogFormatError
from .labels import LabelsFile
from .logs import (
    NO_LABEL,
    LogFile,
    compact_margins,
    epoch_selected,
    file_rows,
    integer_column,
    logits_matrix,
    string_buffers,
)
from .read_ahead import read_ahead


@dataclass
class Sources:
    """Names for the core's source numbers: log files are 0, 1, ...; -1 is the labels file."""

    logs: list[str] = field(default_factory=list)
    labels: str | None = None

    def name(self, source: int) -> str | None:
        if 0 <= source < len(self.logs):
            return self.logs[source]
        if source == _core.LABELS_SOURCE:
            return f"labels file {self.labels}" if self.labels else "the labels given"
        if source == _core.STATE_SOURCE:
            return "an earlier state"
        return None


def row_error_message(
    exc: Exception, where: str, sources: Sources, rows: np.ndarray | None = None
) -> str:
    """``where: row N: what`` for a core RowError (``rows`` maps batch rows to file rows)."""
    if isinstance(exc, _core.RowError):
        what, row, source = exc.args
        if rows is not None:
            row = int(rows[row])
        message = f"{where}: row {row}: {what}"
        earlier = sources.name(source)
        if earlier:
            message += f" (the earlier label is from {earlier})"
        if "has no label" in what:
            message += "; give a 'label' column or a labels file with --labels"
        if "NaN or infinite" in what:
            message += "; use --nonfinite skip (nonfinite='skip') to skip such rows"
        return message
    return f"{where}: {exc}"


def sample_keys(accumulator: _core.Accumulator, ids: pa.Array, where: str) -> np.ndarray:
    """int64 keys for the core: integer ids as they are, string ids interned to codes."""
    if accumulator.string_ids:
        offsets, data = string_buffers(ids, where)
        return accumulator.intern(offsets, data)
    return integer_column(ids, "sample_id", where)


def expect_samples(accumulator: _core.Accumulator, log: LogFile) -> None:
    """Size a new accumulator's tables for the samples of a log whose first file is one epoch
    (about every sample once; a file with an `epoch` column may hold many epochs: no hint)."""
    if accumulator.num_slots == 0 and not log.has_epoch_column:
        accumulator.expect_samples(file_rows(log) or 0)


def add_labels_file(accumulator: _core.Accumulator, labels: LabelsFile, sources: Sources) -> None:
    if accumulator.num_slots == 0:
        accumulator.expect_samples(len(labels.labels))
    keys = sample_keys(accumulator, labels.sample_ids, labels.path)
    try:
        accumulator.set_labels(keys, labels.labels, _core.LABELS_SOURCE)
    except ValueError as exc:
        raise LogFormatError(row_error_message(exc, labels.path, sources)) from None


@dataclass
class AddSettings:
    """How rows are added to the accumulator (see :func:`aum_score.score`)."""

    skip_nonfinite: bool = False
    allow_label_changes: bool = False
    threads: int = 0
    threshold_class: int | None = None  # rows of this class are tallied per epoch
    # Margins computed elsewhere (the GPU, aum_score.cuda.HostMarginStream): called with
    # (logits, labels, bfloat16), returns float64 margins or None to leave the batch to the core.
    margins: Callable | None = None

    def kwargs(self) -> dict:
        return {
            "skip_nonfinite": self.skip_nonfinite,
            "allow_label_changes": self.allow_label_changes,
            "threads": self.threads,
            "tally_label": NO_LABEL if self.threshold_class is None else self.threshold_class,
        }


def accumulate_log(
    accumulator: _core.Accumulator,
    files: Sequence[LogFile],
    sources: Sources,
    epochs: slice,
    settings: AddSettings,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Add every row of ``files`` in the ``epochs`` window to ``accumulator``; returns the rows
    read."""
    rows_read = 0
    for number, log in enumerate(files):
        if log.epoch is not None and not epoch_selected(log.epoch, epochs):
            continue
        start = 0  # row number of the batch's first row within the file
        for batch in read_ahead(log.batches()):
            rows = None  # file row of each batch row, when rows were filtered out
            batch_file_rows = len(batch)
            epoch_of_row = None
            if log.has_epoch_column:
                epoch_of_row = integer_column(batch.column("epoch"), "epoch", log.path)
                keep = np.ones(len(batch), dtype=bool)
                if epochs.start is not None:
                    keep &= epoch_of_row >= epochs.start
                if epochs.stop is not None:
                    keep &= epoch_of_row < epochs.stop
                if not keep.all():
                    rows = np.flatnonzero(keep) + start
                    batch = batch.filter(pa.array(keep))
                    epoch_of_row = epoch_of_row[keep]
            try:
                add_arrow_batch(accumulator, batch, log, number, settings, epoch_of_row)
            except _core.RowError as exc:
                row_map = rows if rows is not None else np.arange(start, start + len(batch))
                raise LogFormatError(row_error_message(exc, log.path, sources, row_map)) from None
            except LogFormatError as exc:
                raise LogFormatError(_shift_rows(str(exc), start, rows)) from None
            rows_read += len(batch)
            start += batch_file_rows
            if on_batch is not None:
                on_batch(batch.nbytes)
    return rows_read


def _shift_rows(message: str, start: int, rows: np.ndarray | None) -> str:
    """Errors raised on a batch name batch rows; make them file rows."""
    import re

    def shift(match: re.Match) -> str:
        row = int(match.group(1))
        return f"row {int(rows[row]) if rows is not None else start + row}"

    return re.sub(r"row (\d+)", shift, message, count=1)


def add_arrow_batch(
    accumulator: _core.Accumulator,
    batch: pa.RecordBatch,
    log: LogFile,
    source: int,
    settings: AddSettings,
    epoch_of_row: np.ndarray | None,
) -> None:
    keys = sample_keys(accumulator, batch.column("sample_id"), log.path)
    if log.has_labels:
        labels = integer_column(batch.column("label"), "label", log.path, nulls_to=NO_LABEL)
    else:
        labels = np.full(len(batch), NO_LABEL, dtype=np.int64)
    where = {"source": source, "epoch": log.epoch or 0, "epochs": epoch_of_row}
    if log.compact:
        accumulator.add_margins(
            compact_margins(batch, log.path), labels, keys, **where, **settings.kwargs()
        )
        return
    logits = logits_matrix(batch.column("logits"), accumulator.classes, log.path)
    if settings.margins is not None:
        margins = settings.margins(logits, labels, log.bfloat16)
        if margins is not None:  # the same margins as the core's kernel, and the same checks
            accumulator.add_margins(margins, labels, keys, **where, **settings.kwargs())
            return
    accumulator.add(logits, labels, keys, bfloat16=log.bfloat16, **where, **settings.kwargs())
