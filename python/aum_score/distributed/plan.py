"""Planning a distributed run: the log cut into pieces (one task each), and the run's size.

A piece is a whole file, or for a large file a range of its record batches (Arrow IPC file
format) or row groups (Parquet), so that one task reads about ``task_bytes``. Arrow IPC streams
and URLs are read whole: a stream has no index of its batches, and remote files are opened by
:mod:`aum_score.logs`, whatever storage it supports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import pyarrow as pa

from ..errors import LogFormatError
from ..logs import COMPACT_MARGIN_COLUMNS, LogFile, epoch_selected

#: Bytes of log one task reads, by default: large enough that scheduling costs little (a task
#: is a few ms of scheduler time), small enough that a run has many tasks to balance.
TASK_BYTES = 256 << 20


@dataclass
class LogPiece(LogFile):
    """A file of the log, or a range ``units`` of its record batches / row groups."""

    units: tuple[int, int] | None = None  # [first, stop); None: the whole file
    first_row: int = 0  # the file row of the piece's first row (errors name file rows)
    rows: int | None = None  # rows in the piece, when known from the file's metadata

    def batches(self, batch_rows: int = 1 << 16) -> Iterator[pa.RecordBatch]:
        if self.units is None:
            return super().batches(batch_rows)
        columns = ["sample_id", *(COMPACT_MARGIN_COLUMNS if self.compact else ["logits"])]
        columns += ["label"] if self.has_labels else []
        columns += ["epoch"] if self.has_epoch_column else []
        return _range_batches(self.path, self.format, columns, self.units, batch_rows)


def whole(log: LogFile, **extra) -> LogPiece:
    return LogPiece(**{f.name: getattr(log, f.name) for f in fields(LogFile)}, **extra)


def _range_batches(
    path: str, fmt: str, columns: list[str], units: tuple[int, int], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(path, memory_map=True) as reader:
                yield from reader.iter_batches(
                    batch_size=batch_rows, columns=columns, row_groups=range(*units)
                )
            return
        with pa.memory_map(path) as source:
            reader = pa.ipc.open_file(source)
            for i in range(*units):
                batch = reader.get_batch(i)
                batch.validate()  # as logs.read_batches: no reads past the buffers
                yield batch
    except (pa.ArrowException, OSError) as exc:
        raise LogFormatError(f"{path}: cannot read ({exc}); truncated or corrupt?") from None


def _units(log: LogFile) -> list[tuple[int, int]]:
    """(rows, bytes) of each record batch (IPC file) or row group (Parquet) of a local file."""
    try:
        if log.format == "parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(log.path, memory_map=True).metadata
            return [
                (meta.row_group(i).num_rows, meta.row_group(i).total_byte_size)
                for i in range(meta.num_row_groups)
            ]
        with pa.memory_map(log.path) as source:
            reader = pa.ipc.open_file(source)
            # Memory-mapped: get_batch reads the batch's metadata, not its buffers.
            return [
                (b.num_rows, b.nbytes)
                for b in (reader.get_batch(i) for i in range(reader.num_record_batches))
            ]
    except (pa.ArrowException, OSError) as exc:
        raise LogFormatError(f"{log.path}: cannot read ({exc}); truncated or corrupt?") from None


def is_local(path: str) -> bool:
    return "://" not in path


def plan_pieces(
    files: Sequence[LogFile], window: slice, task_bytes: int = TASK_BYTES
) -> list[LogPiece]:
    """The pieces of the files in the epoch window, in log order."""
    pieces: list[LogPiece] = []
    for log in files:
        if log.epoch is not None and not epoch_selected(log.epoch, window):
            continue  # as accumulate_log: a file outside the window is not read
        splittable = is_local(log.path) and log.format in ("file", "parquet")
        if not splittable or os.path.getsize(log.path) <= task_bytes:
            rows = _units_rows(log) if splittable else None
            pieces.append(whole(log, rows=rows))
            continue
        units = _units(log)
        start = first_row = size = rows = 0
        for i, (unit_rows, unit_bytes) in enumerate(units):
            size += unit_bytes
            rows += unit_rows
            if size >= task_bytes or i == len(units) - 1:
                pieces.append(whole(log, units=(start, i + 1), first_row=first_row, rows=rows))
                start, first_row, size, rows = i + 1, first_row + rows, 0, 0
    return pieces


def _units_rows(log: LogFile) -> int:
    return sum(rows for rows, _ in _units(log))


def estimate_samples(pieces: Sequence[LogPiece], labelled: int | None) -> int | None:
    """Samples a run will hold, for choosing the mode: the labels file's rows when one is given,
    else the rows of the largest file (one epoch of every sample, if files are epochs; an
    overestimate when a file holds several epochs). None when the files do not say."""
    if labelled is not None:
        return labelled
    per_file: dict[str, int] = {}
    for piece in pieces:
        if piece.rows is None:
            return None
        per_file[piece.path] = per_file.get(piece.path, 0) + piece.rows
    return max(per_file.values(), default=0)
