"""Finding, validating and streaming logit logs (format v1, see the README).

A logit log is a directory or list of files. Each file is opened memory-mapped and its schema
checked before any scoring starts; batches are then streamed one at a time and handed to the core
as zero-copy numpy views of the Arrow buffers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import pyarrow as pa

from . import _core, mapped_files, storage
from .arrays import numpy_of
from .errors import LogFormatError
from .tables import refuse_repeated_columns

LOG_EXTENSIONS = (".arrow", ".feather", ".arrows", ".parquet")
PathLike = Union[str, os.PathLike]
NO_LABEL = _core.NO_LABEL
# Field metadata of a `logits` column of uint16 values that are bfloat16 bit patterns.
BFLOAT16_KEY = b"aum_score.dtype"
# What the scorer reads of a compact log besides ids and labels.
COMPACT_MARGIN_COLUMNS = ("label_logit", "other_logit")


def natural_key(path: str) -> list:
    """Sort key putting ``epoch_2`` before ``epoch_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def find_log_files(logs: PathLike | Sequence[PathLike]) -> list[str]:
    """The log files of a directory, a file, or a list of either, in natural name order
    (``epoch_2`` before ``epoch_10``, also for a shell glob). Files without a log extension
    (a README, an unfinished ``.partial`` epoch) are skipped in directories. Each may be a URL
    (``s3://bucket/logs/``, see :mod:`aum_score.storage`)."""
    items = [logs] if isinstance(logs, (str, os.PathLike)) else list(logs)
    files: list[str] = []
    for item in items:
        path = storage.local_path(item)
        if storage.is_remote(path):
            files.extend(_find_remote_log_files(path))
        elif os.path.isdir(path):
            found = [
                os.path.join(path, name)
                for name in os.listdir(path)
                if name.lower().endswith(LOG_EXTENSIONS) and not name.startswith(".")
            ]
            if not found:
                raise LogFormatError(
                    f"{path}: no log files in this directory (looked for "
                    f"{', '.join(LOG_EXTENSIONS)})"
                )
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise LogFormatError(f"{path}: no such file or directory")
    if not files:
        raise LogFormatError("no log files given")
    return sorted(dict.fromkeys(files), key=natural_key)


def _find_remote_log_files(url: str) -> list[str]:
    """A URL's log files: the object itself, or the log files directly under the prefix."""
    from pyarrow.fs import FileType

    info = storage.file_info(url)
    if info.type == FileType.File and not url.endswith("/"):
        return [url]
    if info.type == FileType.NotFound:
        raise LogFormatError(
            f"{url}: no such file or directory (bucket, object or prefix not found)"
        )
    found = [
        child
        for child, name in storage.list_files(url)
        if name.lower().endswith(LOG_EXTENSIONS) and not name.startswith(".")
    ]
    if not found:
        raise LogFormatError(
            f"{url}: no log files in this directory (looked for {', '.join(LOG_EXTENSIONS)})"
        )
    return found


def parse_epochs(epochs: str | slice | None) -> tuple[slice, bool]:
    """``"START:END"`` (Python slice semantics on epoch numbers; either side may be empty), or
    ``"auto"``/``"START:auto"``: the end is chosen from the memorisation monitor. Returns the
    window and whether its end is automatic."""
    if epochs is None:
        return slice(None, None), False
    auto = False
    if isinstance(epochs, slice):
        start, stop, step = epochs.start, epochs.stop, epochs.step
    else:
        text = str(epochs).strip()
        if text == "auto":
            text = ":auto"
        parts = text.split(":")
        if len(parts) != 2:
            raise LogFormatError(f"epochs {epochs!r}: expected START:END, e.g. 1:150, 1: or auto")
        auto = parts[1].strip() == "auto"
        if auto:
            parts[1] = ""
        try:
            start, stop = (int(p) if p.strip() else None for p in parts)
        except ValueError:
            raise LogFormatError(f"epochs {epochs!r}: START and END must be integers") from None
        step = None
    if step not in (None, 1) or any(v is not None and v < 0 for v in (start, stop)):
        raise LogFormatError(f"epochs {epochs!r}: use non-negative START:END without a step")
    return slice(start, stop), auto


def epoch_selected(epoch: int, epochs: slice) -> bool:
    return (epochs.start is None or epoch >= epochs.start) and (
        epochs.stop is None or epoch < epochs.stop
    )


@dataclass
class LogFile:
    """One validated file of a logit log."""

    path: str
    position: int  # in natural name order: the epoch when no column or metadata gives one
    format: str  # "file", "stream" or "parquet"
    schema: pa.Schema
    classes: int
    string_ids: bool
    has_labels: bool
    has_epoch_column: bool
    epoch: int | None  # from metadata or position; None when an `epoch` column gives it per row
    bfloat16: bool = False  # logits are uint16 bfloat16 bit patterns (see BFLOAT16_KEY)
    compact: bool = False  # label_logit/other_logit columns instead of logits

    def batches(self, batch_rows: int = 1 << 16) -> Iterator[pa.RecordBatch]:
        """Record batches of the columns scoring needs, memory-mapped (zero-copy for Arrow IPC)."""
        columns = ["sample_id", *(COMPACT_MARGIN_COLUMNS if self.compact else ["logits"])]
        columns += ["label"] if self.has_labels else []
        columns += ["epoch"] if self.has_epoch_column else []
        return read_batches(self.path, self.format, columns, batch_rows)


def read_batches(
    path: str, fmt: str, columns: list[str], batch_rows: int = 1 << 16
) -> Iterator[pa.RecordBatch]:
    """Stream record batches of ``path``; any read failure names the file."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            remote = storage.is_remote(path)
            source = storage.open_input(path) if remote else path
            with pq.ParquetFile(source, memory_map=not remote) as reader:
                yield from reader.iter_batches(batch_size=batch_rows, columns=columns)
            return
        if storage.is_remote(path):
            source, mapping = storage.open_input(path), None
        else:
            source, mapping = mapped_files.open_mapped(path)
        try:
            with source:
                if fmt == "file":
                    reader = pa.ipc.open_file(source)
                    batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                else:
                    batches = pa.ipc.open_stream(source)
                for batch in batches:
                    batch.validate()  # buffer sizes match the declared lengths: no reads past
                    yield batch
        finally:
            mapped_files.close_when_unused(mapping)
    except (pa.ArrowException, OSError) as exc:
        raise LogFormatError(f"{path}: cannot read ({exc}); truncated or corrupt?") from None


def _sniff_format(path: str) -> str:
    if storage.is_remote(path):
        with storage.open_input(path) as f:
            head = f.read(8)
    else:
        with open(path, "rb") as f:
            head = f.read(8)
    if not head:
        raise LogFormatError(f"{path}: file is empty")
    if head.startswith(b"ARROW1"):
        return "file"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head[:4] == b"\xff\xff\xff\xff":  # an IPC stream message starts with this marker
        return "stream"
    raise LogFormatError(f"{path}: not an Arrow IPC or Parquet file")


def _read_schema(path: str, fmt: str) -> pa.Schema:
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            remote = storage.is_remote(path)
            source = storage.open_input(path) if remote else path
            schema = pq.read_schema(source, memory_map=not remote)
        else:
            with storage.open_input(path) as source:  # memory-mapped when local
                reader = pa.ipc.open_file(source) if fmt == "file" else pa.ipc.open_stream(source)
                schema = reader.schema
        schema.names, schema.metadata  # noqa: B018 - decode now: names may be corrupt bytes
        return schema
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise LogFormatError(
            f"{path}: not a valid Arrow IPC or Parquet file ({exc}); was it truncated while "
            "being written?"
        ) from None


def _list_classes(path: str, fmt: str) -> int:
    """C for `list` logits: the length of the first row (every row is checked while scoring)."""
    for batch in read_batches(path, fmt, ["logits"], 1024):
        column = batch.column("logits")
        if len(column):
            return int(column.value_lengths()[0].as_py() or 0)
    return 0


def _logits_classes(path: str, fmt: str, schema: pa.Schema) -> tuple[int, bool]:
    """C of a full log's `logits` column, and whether it holds bfloat16 bit patterns."""
    logits_type = schema.field("logits").type
    # bfloat16 (no Arrow type): uint16 bit patterns, field metadata aum_score.dtype=bfloat16.
    bfloat16 = (schema.field("logits").metadata or {}).get(BFLOAT16_KEY) == b"bfloat16"
    is_list = (
        pa.types.is_fixed_size_list(logits_type)
        or pa.types.is_list(logits_type)
        or pa.types.is_large_list(logits_type)
    )
    value_ok = is_list and (
        pa.types.is_uint16(logits_type.value_type)
        if bfloat16
        else pa.types.is_floating(logits_type.value_type)
    )
    if not value_ok:
        raise LogFormatError(
            f"{path}: column 'logits' has type {logits_type}; expected "
            + (
                "fixed_size_list<uint16>[C] (bfloat16 bit patterns)"
                if bfloat16
                else "fixed_size_list<float16|float32|float64>[C]"
            )
        )
    if pa.types.is_fixed_size_list(logits_type):
        classes = logits_type.list_size
    else:
        classes = _list_classes(path, fmt)
    return classes, bfloat16


def _compact_classes(path: str, schema: pa.Schema) -> int:
    """C of a compact log: its schema metadata says (no column shows it)."""
    for name in COMPACT_MARGIN_COLUMNS:
        if not pa.types.is_floating(schema.field(name).type):
            raise LogFormatError(
                f"{path}: column '{name}' has type {schema.field(name).type}; expected floats"
            )
    try:
        return int((schema.metadata or {})[b"classes"])
    except (KeyError, ValueError):
        raise LogFormatError(
            f"{path}: a compact log needs the number of classes in its schema metadata 'classes'"
        ) from None


def open_log_file(path: str, position: int) -> LogFile:
    """Open ``path`` and check its schema against the v1 log format."""
    fmt = _sniff_format(path)
    schema = _read_schema(path, fmt)
    names = schema.names
    # A compact log (see aum_score.compact) has per-row reductions instead of `logits`.
    compact = "logits" not in names and {"label_logit", "other_logit"} <= set(names)
    columns = (
        ("sample_id", "label", *COMPACT_MARGIN_COLUMNS) if compact else ("sample_id", "logits")
    )
    for required in columns:
        if required not in names:
            raise LogFormatError(
                f"{path}: missing column '{required}' (columns: {', '.join(names) or 'none'})"
            )
    refuse_repeated_columns(names, path, ("sample_id", "logits", "label", "epoch", *columns))
    id_type = schema.field("sample_id").type
    if pa.types.is_dictionary(id_type):
        id_type = id_type.value_type
    if pa.types.is_integer(id_type):
        string_ids = False
    elif (
        pa.types.is_string(id_type)
        or pa.types.is_large_string(id_type)
        or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(id_type))
    ):
        string_ids = True
    else:
        raise LogFormatError(
            f"{path}: column 'sample_id' has type {id_type}; expected an integer or string type"
        )
    if compact:
        classes, bfloat16 = _compact_classes(path, schema), False
    else:
        classes, bfloat16 = _logits_classes(path, fmt, schema)
    for name in ("label", "epoch"):
        if name in names and not pa.types.is_integer(schema.field(name).type):
            raise LogFormatError(
                f"{path}: column '{name}' has type {schema.field(name).type}; expected integers"
            )
    has_epoch_column = "epoch" in names
    epoch = None
    if not has_epoch_column:
        meta = schema.metadata or {}
        if b"epoch" in meta:
            try:
                epoch = int(meta[b"epoch"])
            except ValueError:
                raise LogFormatError(
                    f"{path}: schema metadata 'epoch' is {meta[b'epoch']!r}, not an integer"
                ) from None
        else:
            epoch = position
    return LogFile(
        path=path,
        position=position,
        format=fmt,
        schema=schema,
        classes=classes,
        string_ids=string_ids,
        has_labels="label" in names,
        has_epoch_column=has_epoch_column,
        epoch=epoch,
        bfloat16=bfloat16,
        compact=compact,
    )


def file_rows(log: LogFile) -> int | None:
    """Rows of a local Arrow IPC file or Parquet file from its metadata (the buffers are not
    read), or None where that costs a read (streams, URLs) or the file is unreadable (its batches
    report that later, with the file and row)."""
    if log.format == "stream" or storage.is_remote(log.path):
        return None
    try:
        if log.format == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(log.path, memory_map=True).metadata.num_rows
        with mapped_files.open_mapped(log.path)[0] as source:
            reader = pa.ipc.open_file(source)
            return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    except (pa.ArrowException, OSError):
        return None


def open_log(logs: PathLike | Sequence[PathLike], first_position: int = 0) -> list[LogFile]:
    """Find and validate every file of a log: all must agree on C and on the sample id type.
    ``first_position``: the position of the first file in the whole log (files an earlier state
    consumed come first), the epoch of files that carry none."""
    files = [open_log_file(path, first_position + i) for i, path in enumerate(find_log_files(logs))]
    first = files[0]
    for log in files[1:]:
        if log.classes != first.classes:
            raise LogFormatError(
                f"{log.path}: logits have {log.classes} classes, but {first.path} has "
                f"{first.classes}; all files of a log must agree"
            )
        if log.string_ids != first.string_ids:
            kinds = {True: "strings", False: "integers"}
            raise LogFormatError(
                f"{log.path}: sample ids are {kinds[log.string_ids]}, but in {first.path} they "
                f"are {kinds[first.string_ids]}"
            )
    if first.classes < 2:
        raise LogFormatError(f"{first.path}: logits need at least 2 classes, got {first.classes}")
    return files


# --- Arrow columns -> numpy views --------------------------------------------------------------


def logits_matrix(column: pa.Array, classes: int, where: str) -> np.ndarray:
    """rows x C view of a (fixed_size_)list<float> column, zero-copy when the column allows."""
    rows = len(column)
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise LogFormatError(f"{where}: column 'logits' is null in row {row}")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        if column.type.list_size != classes:
            raise LogFormatError(
                f"{where}: column 'logits' has {column.type.list_size} classes, expected {classes}"
            )
        # Not flatten(): it imports pyarrow.compute, 60 ms of every start-up (no nulls here).
        values = column.values.slice(column.offset * classes, rows * classes)
    else:
        offsets = numpy_of(column.offsets)
        lengths = np.diff(offsets)
        bad = np.flatnonzero(lengths != classes)
        if len(bad):
            raise LogFormatError(
                f"{where}: column 'logits' row {int(bad[0])} has {int(lengths[bad[0]])} values, "
                f"expected {classes}"
            )
        values = column.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    if values.null_count:
        flat = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise LogFormatError(f"{where}: column 'logits' has a null value in row {flat // classes}")
    array = numpy_of(values)
    if len(array) != rows * classes:
        raise LogFormatError(f"{where}: column 'logits' has an inconsistent length")
    return array.reshape(rows, classes)


def integer_column(
    column: pa.Array, name: str, where: str, nulls_to: int | None = None
) -> np.ndarray:
    """int64 numpy array of an integer column; nulls become ``nulls_to`` or are an error."""
    if column.null_count:
        if nulls_to is None:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise LogFormatError(f"{where}: column '{name}' is null in row {row}")
        column = column.cast(pa.int64()).fill_null(nulls_to)
    array = numpy_of(column)
    if array.dtype == np.uint64 and len(array) and array.max() > np.iinfo(np.int64).max:
        row = int(np.argmax(array > np.iinfo(np.int64).max))
        raise LogFormatError(f"{where}: column '{name}' row {row} does not fit in int64")
    return array.astype(np.int64, copy=False)


def string_buffers(column: pa.Array, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) numpy views of a string column's Arrow buffers, for the core's interner."""
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise LogFormatError(f"{where}: column 'sample_id' is null in row {row}")
    try:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            # Buffer sizes only: the core checks each string's offsets, and the UTF-8 of each id
            # the first time it sees it (a full check here redoes that every row, every epoch).
            column.validate()
        else:  # dictionary or view layouts: indices and views checked before the cast reads them
            column.validate(full=True)
            column = column.cast(pa.string())
    except pa.ArrowInvalid as exc:
        raise LogFormatError(f"{where}: column 'sample_id' is corrupt ({exc})") from None
    _, offsets_buf, data_buf = column.buffers()
    offset_type = np.int64 if pa.types.is_large_string(column.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[
        column.offset : column.offset + len(column) + 1
    ]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    return offsets, data


def compact_margins(batch: pa.RecordBatch, where: str) -> np.ndarray:
    """float64 margins of a compact batch, subtracted in the stored dtype (float32 for
    float16/float32 logits), exactly as the full-logit kernel subtracts."""
    label_logit, other_logit = (batch.column(name) for name in COMPACT_MARGIN_COLUMNS)
    for name, column in zip(COMPACT_MARGIN_COLUMNS, (label_logit, other_logit)):
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise LogFormatError(f"{where}: column '{name}' is null in row {row}")
    a, b = numpy_of(label_logit), numpy_of(other_logit)
    work = np.float64 if np.float64 in (a.dtype, b.dtype) else np.float32
    with np.errstate(invalid="ignore", over="ignore"):
        return (a.astype(work) - b.astype(work)).astype(np.float64)
