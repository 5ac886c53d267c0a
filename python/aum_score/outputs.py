"""Writing result tables: format by extension, atomically (temporary file, then rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa

from . import storage
from .errors import LogFormatError

OUTPUT_FORMATS = {".parquet": "parquet", ".csv": "csv", ".arrow": "arrow", ".feather": "arrow"}


def output_format(path: str | os.PathLike) -> str:
    """The format for an output path, checked before any work is done."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        known = ", ".join(sorted(OUTPUT_FORMATS))
        raise LogFormatError(f"{path}: unknown output format {suffix!r} (use one of {known})")
    if storage.is_remote(path):  # the bucket is checked when the result is uploaded
        return OUTPUT_FORMATS[suffix]
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise LogFormatError(f"{path}: directory {parent} does not exist")
    return OUTPUT_FORMATS[suffix]


def write_table(table: pa.Table, path: str | os.PathLike) -> None:
    """Write ``table`` to ``path`` (.parquet/.csv/.arrow/.feather); no partial file on failure."""
    fmt = output_format(path)
    if storage.is_remote(path):
        _upload_table(table, str(path), fmt)
        return
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    os.close(fd)
    try:
        _write(table, tmp, fmt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _upload_table(table: pa.Table, url: str, fmt: str) -> None:
    """Serialise in memory (a result has one row per sample), then upload in one piece: an
    object store shows the object only once the upload completes, so no partial result."""
    sink = pa.BufferOutputStream()
    _write(table, sink, fmt)
    storage.write_bytes_atomic(url, sink.getvalue().to_pybytes())


def _write(table: pa.Table, where: str | pa.NativeFile, fmt: str) -> None:
    """``table`` in ``fmt`` to a path or an output stream."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, where)
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, where)
    else:  # Arrow IPC file (Feather v2), uncompressed; not feather.write_feather, which
        # imports pandas to see whether `table` is a DataFrame (see arrays.numpy_of)
        with pa.ipc.new_file(where, table.schema) as writer:
            writer.write_table(table)
