"""Labels given separately from the log: a table with `sample_id` and `label` columns."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from .errors import LogFormatError


def read_labels(path: str | os.PathLike, string_ids: bool) -> tuple[pa.Array, np.ndarray]:
    """(sample ids, int64 labels) from an Arrow, Parquet or CSV file.

    ``string_ids`` says what the log uses; integer ids in a CSV are read as strings then.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            types = {"sample_id": pa.string()} if string_ids else {}
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif suffix in (".arrow", ".feather", ".arrows", ".ipc"):
            from pyarrow import feather

            table = feather.read_table(path)
        else:
            raise LogFormatError(f"{path}: labels file must be .csv, .parquet, .arrow or .feather")
    except (pa.ArrowException, OSError) as exc:
        raise LogFormatError(f"{path}: cannot read labels file ({exc})") from None
    for column in ("sample_id", "label"):
        if column not in table.column_names:
            raise LogFormatError(
                f"{path}: labels file has no column '{column}' (columns: "
                f"{', '.join(table.column_names)})"
            )
    ids = table.column("sample_id").combine_chunks()
    labels = table.column("label").combine_chunks()
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if not pa.types.is_integer(labels.type):
        raise LogFormatError(f"{path}: column 'label' has type {labels.type}; expected integers")
    for name, column in (("sample_id", ids), ("label", labels)):
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise LogFormatError(f"{path}: column '{name}' is null in row {row}")
    if string_ids and pa.types.is_integer(ids.type):
        ids = ids.cast(pa.string())
    is_string = pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)
    if string_ids != is_string:
        want = "strings" if string_ids else "integers"
        raise LogFormatError(
            f"{path}: column 'sample_id' has type {ids.type} but the log's sample ids are {want}"
        )
    return ids, labels.to_numpy(zero_copy_only=False).astype(np.int64)
