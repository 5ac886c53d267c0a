"""Reading small side tables (labels, truth, results) by extension, with errors that name the file.

Logit logs have their own streaming reader (:mod:`aum_score.logs`); these tables are read whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from . import storage
from .arrays import numpy_of
from .errors import LogFormatError

TABLE_SUFFIXES = (".csv", ".parquet", ".arrow", ".feather", ".arrows", ".ipc")


def read_table(
    path: str | os.PathLike,
    *,
    what: str = "file",
    column_types: dict[str, pa.DataType] | None = None,
    exact_ids: bool = True,
) -> pa.Table:
    """The whole table in ``path``: .csv, .parquet, or Arrow IPC (.arrow/.feather/.arrows/.ipc,
    file or stream format, whatever the extension says).

    ``what`` names the file in messages ("labels file"); ``column_types`` fixes the types of CSV
    columns. With ``exact_ids``, a CSV ``sample_id`` column is integers only when every id is
    written as a plain integer, so ids like "007" stay strings and are written back unchanged.
    Raises :class:`LogFormatError` naming the file when it cannot be read. ``path`` may be a URL
    (``s3://bucket/labels.parquet``, see :mod:`aum_score.storage`).
    """
    path = storage.local_path(path)
    suffix = os.path.splitext(storage.base_name(path))[1].lower()
    if suffix not in TABLE_SUFFIXES:
        raise LogFormatError(f"{path}: {what} must be .csv, .parquet, .arrow or .feather")
    source = path
    if storage.is_remote(path):  # side tables are small and read whole: fetch once
        source = pa.BufferReader(storage.read_bytes(path))
    try:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            types = dict(column_types or {})
            exact = exact_ids and "sample_id" not in types
            if exact:
                types["sample_id"] = pa.string()
            table = pacsv.read_csv(source, convert_options=pacsv.ConvertOptions(column_types=types))
            if exact and "sample_id" in table.column_names:
                table = _integer_ids_if_exact(table)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.ParquetFile(source).read()  # (read_table refuses repeated names)
        else:
            table = _read_ipc(source)
        table.validate(full=True)  # hostile files: fail here, not in a compute kernel later
    except (pa.ArrowException, OSError) as exc:
        raise LogFormatError(f"{path}: cannot read {what} ({exc})") from None
    return table


def _integer_ids_if_exact(table: pa.Table) -> pa.Table:
    """A CSV's string ``sample_id`` column as int64 if no id changes in the conversion."""
    import pyarrow.compute as pc

    ids = table.column("sample_id")
    ids = pc.if_else(pc.equal(ids, ""), pa.scalar(None, pa.string()), ids)  # empty = missing
    if pc.all(pc.match_substring_regex(ids, r"^(0|-?[1-9][0-9]*)$")).as_py() is not False:
        try:
            ids = ids.cast(pa.int64())
        except pa.ArrowInvalid:  # beyond int64: keep the strings
            pass
    return table.set_column(table.column_names.index("sample_id"), "sample_id", ids)


def _read_ipc(path: str | pa.NativeFile) -> pa.Table:
    # Sniff rather than trust the extension: writers disagree on .arrow (file) vs stream.
    if isinstance(path, pa.NativeFile):  # an object fetched from a URL
        is_file_format = path.read(6) == b"ARROW1"
        path.seek(0)
        reader = pa.ipc.open_file(path) if is_file_format else pa.ipc.open_stream(path)
        return reader.read_all()
    with open(path, "rb") as f:
        is_file_format = f.read(6) == b"ARROW1"
    with pa.memory_map(path) as source:
        reader = pa.ipc.open_file(source) if is_file_format else pa.ipc.open_stream(source)
        return reader.read_all()


def require_columns(
    table: pa.Table, path: str | os.PathLike, *names: str, what: str = "file"
) -> None:
    """Raise :class:`LogFormatError` naming ``path`` and the first of ``names`` missing or
    given more than once."""
    for name in names:
        if name not in table.column_names:
            raise LogFormatError(
                f"{os.fspath(path)}: {what} has no column '{name}' (columns: "
                f"{', '.join(table.column_names)})"
            )
    refuse_repeated_columns(table.column_names, path, names)


def refuse_repeated_columns(
    column_names: list[str], path: str | os.PathLike, names: Iterable[str]
) -> None:
    """Raise :class:`LogFormatError` naming ``path`` and the first of ``names`` that is the name
    of more than one column (which of them would be meant?)."""
    for name in names:
        times = column_names.count(name)
        if times > 1:
            raise LogFormatError(f"{os.fspath(path)}: {times} columns are named '{name}'")


def first_null_row(column: pa.Array | pa.ChunkedArray) -> int | None:
    """Row number of the first null, or None."""
    if not column.null_count:
        return None
    return int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])


def id_column(table: pa.Table, path: str | os.PathLike, name: str = "sample_id") -> pa.Array:
    """Sample ids as one integer or string array, no nulls (dictionaries decoded)."""
    ids = table.column(name).combine_chunks()
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if not (
        pa.types.is_integer(ids.type)
        or pa.types.is_string(ids.type)
        or pa.types.is_large_string(ids.type)
    ):
        raise LogFormatError(
            f"{os.fspath(path)}: column '{name}' has type {ids.type}; expected integers or strings"
        )
    row = first_null_row(ids)
    if row is not None:
        raise LogFormatError(f"{os.fspath(path)}: column '{name}' is null in row {row}")
    return ids


def int_column(table: pa.Table, path: str | os.PathLike, name: str) -> np.ndarray:
    """An integer column as int64, no nulls."""
    column = table.column(name)
    if not pa.types.is_integer(column.type):
        raise LogFormatError(
            f"{os.fspath(path)}: column '{name}' has type {column.type}; expected integers"
        )
    row = first_null_row(column)
    if row is not None:
        raise LogFormatError(f"{os.fspath(path)}: column '{name}' is null in row {row}")
    return numpy_of(column).astype(np.int64)


def bool_column(table: pa.Table, path: str | os.PathLike, name: str) -> pa.Array:
    """A boolean column (nulls kept); 0/1 integers, as CSV tools often write them, accepted."""
    column = table.column(name).combine_chunks()
    if pa.types.is_integer(column.type):
        values = column.to_numpy(zero_copy_only=False)
        valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False))
        if np.isin(values[valid], (0, 1)).all():
            return column.cast(pa.bool_())
    if not pa.types.is_boolean(column.type):
        raise LogFormatError(
            f"{os.fspath(path)}: column '{name}' has type {column.type}; expected booleans"
        )
    return column
