"""Labels given separately from the log: a table with `sample_id` and `label` columns."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .errors import LogFormatError
from .noise import threshold_class_of
from .tables import id_column, int_column, read_table, require_columns


@dataclass
class LabelsFile:
    path: str
    sample_ids: pa.Array
    labels: np.ndarray  # int64
    threshold_class: int | None  # from a `threshold_sample` column (aum-score threshold-samples)


def read_labels(path: str | os.PathLike, string_ids: bool) -> LabelsFile:
    """Sample ids and int64 labels from an Arrow, Parquet or CSV file, and the threshold class
    when the file marks threshold samples.

    ``string_ids`` says what the log uses; integer ids in a CSV are read as strings then.
    """
    path = os.fspath(path)
    # Integer-looking ids follow the log's kind, as before: "007" matches integer id 7.
    types = {"sample_id": pa.string()} if string_ids else None
    table = read_table(path, what="labels file", column_types=types, exact_ids=False)
    require_columns(table, path, "sample_id", "label", what="labels file")
    ids = id_column(table, path)
    labels = int_column(table, path, "label")
    if string_ids and pa.types.is_integer(ids.type):
        ids = ids.cast(pa.string())
    is_string = pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)
    if string_ids != is_string:
        want = "strings" if string_ids else "integers"
        raise LogFormatError(
            f"{path}: column 'sample_id' has type {ids.type} but the log's sample ids are {want}"
        )
    return LabelsFile(path, ids, labels, threshold_class_of(table, path))
