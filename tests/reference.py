"""Independent references for the tests: plain-numpy AUM and a pyarrow log writer.

Nothing here imports aum_score: the package is checked against the paper's definitions
(design.md sections 1 and 2) and against files written by pyarrow directly, so a bug shared by
the package's reader and its LogitWriter cannot hide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import ipc

# --------------------------------------------------------------------------------------------
# Numerics
# --------------------------------------------------------------------------------------------


def work_dtype(dtype) -> np.dtype:
    """float64 logits are handled in float64; float16/float32 in float32 (design.md, README)."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def reference_margins(logits, labels) -> np.ndarray:
    """margin = z[y] - max_{j != y} z[j], in the working precision, returned as float64."""
    z = np.asarray(logits)
    z = z.astype(work_dtype(z.dtype), copy=True)
    y = np.asarray(labels, dtype=np.int64)
    n = z.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    rows = np.arange(n)
    target = z[rows, y].copy()
    z[rows, y] = -np.inf
    # The subtraction happens in z's dtype: that rounding is part of the contract.
    return (target - z.max(axis=1)).astype(np.float64)


def reference_aum(sample_ids, logits, labels) -> dict:
    """sample_id -> (label, aum, count) over rows concatenated across the whole log.

    Sums are float64 in row order (like the `aum` library's Python-float sums). The label reported
    is the sample's first label (rows of one sample agree unless label changes are allowed).
    """
    ids = list(np.asarray(sample_ids, dtype=object).tolist())
    m = reference_margins(logits, labels)
    y = np.asarray(labels, dtype=np.int64).tolist()
    sums: dict = {}
    counts: dict = {}
    first_label: dict = {}
    for sid, margin, lab in zip(ids, m.tolist(), y):
        if sid not in sums:
            sums[sid] = 0.0
            counts[sid] = 0
            first_label[sid] = lab
        sums[sid] += margin
        counts[sid] += 1
    return {sid: (first_label[sid], sums[sid] / counts[sid], counts[sid]) for sid in sums}


def reference_abs_scale(sample_ids, logits, labels) -> dict:
    """sample_id -> mean |margin|: the scale a summation-order difference is measured against."""
    ids = list(np.asarray(sample_ids, dtype=object).tolist())
    m = np.abs(reference_margins(logits, labels)).tolist()
    acc: dict = {}
    for sid, a in zip(ids, m):
        s, c = acc.get(sid, (0.0, 0))
        acc[sid] = (s + a, c + 1)
    return {sid: s / c for sid, (s, c) in acc.items()}


def reference_flags(aum, is_threshold, percentile: float) -> list:
    """design.md section 1: non-threshold i is flagged iff
    (#threshold j with aum_j > aum_i) / T > (100 - percentile) / 100.

    Returns a list of True/False, None for threshold samples, all None when T == 0.
    """
    aum = np.asarray(aum, dtype=np.float64)
    is_thr = np.asarray(is_threshold, dtype=bool)
    thr = np.sort(aum[is_thr])
    T = thr.size
    if T == 0:
        return [None] * aum.size
    cut = (100.0 - percentile) / 100.0
    out: list = []
    for a, t in zip(aum.tolist(), is_thr.tolist()):
        if t:
            out.append(None)
        else:
            above = T - int(np.searchsorted(thr, a, side="right"))
            out.append(above / T > cut)
    return out


# --------------------------------------------------------------------------------------------
# Synthetic rows
# --------------------------------------------------------------------------------------------


@dataclass
class Rows:
    """Rows of one epoch (or any chunk): ids (int64 or object str), logits (N, C), labels."""

    sample_ids: np.ndarray
    logits: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def take(self, idx) -> Rows:
        return Rows(self.sample_ids[idx], self.logits[idx], self.labels[idx])


def concat_rows(chunks: Iterable[Rows]) -> Rows:
    chunks = list(chunks)
    return Rows(
        np.concatenate([c.sample_ids for c in chunks]),
        np.concatenate([c.logits for c in chunks]),
        np.concatenate([c.labels for c in chunks]),
    )


def rows_of(epochs: Mapping[int, Rows], selected: Callable[[int], bool] = lambda e: True) -> Rows:
    """All rows of the selected epochs, in epoch order then row order."""
    return concat_rows(epochs[e] for e in sorted(epochs) if selected(e))


def make_ids(rng: np.random.Generator, n: int, kind: str = "int") -> np.ndarray:
    """Distinct ids: 'int' = sparse int64 with negatives and both extremes, 'str' = strings."""
    if kind == "int":
        ids = set()
        ids.update([np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1, 0][: max(0, min(4, n))])
        while len(ids) < n:
            ids.update(rng.integers(-(2**62), 2**62, size=n - len(ids)).tolist())
        out = np.array(sorted(ids)[:n], dtype=np.int64)
        rng.shuffle(out)
        return out
    if kind == "str":
        # Mixed lengths and a non-ASCII id; none parse as a number.
        base = [f"img_{int(v):x}" for v in rng.choice(10**9, size=n, replace=False)]
        if n:
            base[0] = "éclair/äöü"
        return np.array(base, dtype=object)
    raise ValueError(kind)


def make_epochs(
    rng: np.random.Generator,
    *,
    n_samples: int = 40,
    num_classes: int = 5,
    n_epochs: int = 4,
    dtype=np.float32,
    id_kind: str = "int",
    missing: float = 0.15,
    duplicates: float = 0.1,
    first_epoch: int = 0,
    labels: np.ndarray | None = None,
) -> dict[int, Rows]:
    """A shuffled log: some samples missing from some epochs, some repeated within an epoch."""
    ids = make_ids(rng, n_samples, id_kind)
    if labels is None:
        labels = rng.integers(0, num_classes, size=n_samples)
    labels = np.asarray(labels, dtype=np.int64)
    # A per-sample "difficulty" so AUMs spread over both signs.
    bias = rng.normal(0.0, 2.0, size=n_samples)
    out: dict[int, Rows] = {}
    for e in range(first_epoch, first_epoch + n_epochs):
        present = np.flatnonzero(rng.random(n_samples) >= missing)
        dup = present[rng.random(present.size) < duplicates]
        idx = np.concatenate([present, dup])
        rng.shuffle(idx)
        z = rng.normal(0.0, 1.5, size=(idx.size, num_classes))
        z[np.arange(idx.size), labels[idx]] += bias[idx]
        out[e] = Rows(ids[idx].copy(), z.astype(dtype), labels[idx].copy())
    return out


# --------------------------------------------------------------------------------------------
# Writing logs with pyarrow directly
# --------------------------------------------------------------------------------------------

FORMAT_EXT = {"file": ".arrow", "feather": ".feather", "stream": ".arrows", "parquet": ".parquet"}


def id_array(ids, id_type: pa.DataType | None = None) -> pa.Array:
    ids = np.asarray(ids)
    if id_type is None:
        id_type = pa.string() if ids.dtype == object or ids.dtype.kind in "US" else pa.int64()
    return pa.array(ids.tolist(), type=id_type)


def logits_array(logits: np.ndarray, list_type: str = "fixed") -> pa.Array:
    z = np.ascontiguousarray(logits)
    n, c = z.shape
    values = pa.array(z.reshape(-1))
    if list_type == "fixed":
        return pa.FixedSizeListArray.from_arrays(values, c)
    if list_type == "list":
        return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * c), values)
    if list_type == "large_list":
        return pa.LargeListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int64) * c), values)
    raise ValueError(list_type)


def rows_table(
    rows: Rows,
    *,
    with_label: bool = True,
    epoch: int | None = None,
    list_type: str = "fixed",
    id_type: pa.DataType | None = None,
    label_type: pa.DataType | None = None,
    metadata: Mapping[bytes, bytes] | None = None,
) -> pa.Table:
    cols = {
        "sample_id": id_array(rows.sample_ids, id_type),
        "logits": logits_array(rows.logits, list_type),
    }
    if with_label:
        cols["label"] = pa.array(np.asarray(rows.labels).tolist(), type=label_type or pa.int64())
    if epoch is not None:
        cols["epoch"] = pa.array([epoch] * len(rows), type=pa.int64())
    table = pa.table(cols)
    if metadata:
        table = table.replace_schema_metadata(dict(metadata))
    return table


def write_table(path: Path, table: pa.Table, fmt: str = "file", batches: int = 1) -> Path:
    """Write `table` to `path` as Arrow IPC file/stream or Parquet, split into `batches` pieces."""
    path = Path(path)
    n = table.num_rows
    step = max(1, -(-n // max(1, batches)))
    pieces = [table.slice(i, step) for i in range(0, n, step)] or [table]
    if fmt in ("file", "feather"):
        with ipc.new_file(str(path), table.schema) as w:
            for p in pieces:
                w.write_table(p)
    elif fmt == "stream":
        with ipc.new_stream(str(path), table.schema) as w:
            for p in pieces:
                w.write_table(p)
    elif fmt == "parquet":
        pq.write_table(table, str(path), row_group_size=step)
    else:
        raise ValueError(fmt)
    return path


def write_log(
    directory: Path,
    epochs: Mapping[int, Rows],
    *,
    fmt: str = "file",
    epoch_in: str = "metadata",
    with_label: bool = True,
    list_type: str = "fixed",
    batches_per_file: int = 1,
    files_per_epoch: int = 1,
    single_file: bool = False,
    id_type: pa.DataType | None = None,
    name: Callable[[int, int], str] | None = None,
) -> list[Path]:
    """Write a logit log directory and return the files written.

    epoch_in: 'column' (an `epoch` column), 'metadata' (schema metadata b"epoch"), or 'filename'
    (nothing but the file name: files are named `epoch_{e}` unpadded, so natural order differs
    from lexicographic order once there are >= 11 epochs; epochs must then be 0..n-1).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ext = FORMAT_EXT[fmt]
    if epoch_in == "filename":
        assert sorted(epochs) == list(range(len(epochs))), "file order gives 0-based positions"
        assert files_per_epoch == 1 and not single_file
    if single_file:
        assert epoch_in == "column"
        tables = [
            rows_table(
                epochs[e], with_label=with_label, epoch=e, list_type=list_type, id_type=id_type
            )
            for e in sorted(epochs)
        ]
        path = directory / ((name(-1, 0) if name else "log") + ext)
        return [write_table(path, pa.concat_tables(tables), fmt, batches_per_file)]
    paths = []
    for e in sorted(epochs):
        rows = epochs[e]
        parts = np.array_split(np.arange(len(rows)), files_per_epoch)
        for p, idx in enumerate(parts):
            meta = {b"epoch": str(e).encode()} if epoch_in == "metadata" else None
            table = rows_table(
                rows.take(idx),
                with_label=with_label,
                epoch=e if epoch_in == "column" else None,
                list_type=list_type,
                id_type=id_type,
                metadata=meta,
            )
            stem = (
                name(e, p)
                if name
                else (f"epoch_{e}" if files_per_epoch == 1 else f"epoch_{e}_part{p}")
            )
            paths.append(write_table(directory / (stem + ext), table, fmt, batches_per_file))
    return paths


def write_labels(path: Path, sample_ids, labels, id_type: pa.DataType | None = None) -> Path:
    """A separate labels file (sample_id, label) in the format its extension names."""
    path = Path(path)
    table = pa.table(
        {
            "sample_id": id_array(sample_ids, id_type),
            "label": pa.array(np.asarray(labels).tolist(), type=pa.int64()),
        }
    )
    suffix = path.suffix
    if suffix == ".parquet":
        pq.write_table(table, str(path))
    elif suffix in (".arrow", ".feather"):
        with ipc.new_file(str(path), table.schema) as w:
            w.write_table(table)
    elif suffix == ".csv":
        pacsv.write_csv(table, str(path))
    else:
        raise ValueError(suffix)
    return path


def sample_labels(epochs: Mapping[int, Rows]) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's (first) label over the log, as (ids, labels) arrays."""
    seen: dict = {}
    for e in sorted(epochs):
        r = epochs[e]
        for sid, lab in zip(r.sample_ids.tolist(), r.labels.tolist()):
            seen.setdefault(sid, lab)
    ids = list(seen)
    dtype = object if ids and isinstance(ids[0], str) else np.int64
    return np.array(ids, dtype=dtype), np.array([seen[i] for i in ids], dtype=np.int64)


def as_rows_dict(table: pa.Table) -> dict:
    """Result table -> sample_id -> dict of the row's columns."""
    d = table.to_pydict()
    return {sid: {k: d[k][i] for k in d} for i, sid in enumerate(d["sample_id"])}


def sequence_is_sorted(values: Sequence[float]) -> bool:
    return all(a <= b for a, b in zip(values, values[1:]))


# --------------------------------------------------------------------------------------------
# Assertions on a result table
# --------------------------------------------------------------------------------------------

RESULT_COLUMNS = ["sample_id", "label", "aum", "count", "threshold_sample", "mislabeled"]


def check_result_schema(table: pa.Table, string_ids: bool = False) -> None:
    """The spec's columns, in order, with the spec's types (more columns may follow)."""
    assert table.column_names[:6] == RESULT_COLUMNS, table.schema
    expected = [
        pa.string() if string_ids else pa.int64(),
        pa.int64(),
        pa.float64(),
        pa.int64(),
        pa.bool_(),
        pa.bool_(),
    ]
    got = [table.schema.field(n).type for n in RESULT_COLUMNS]
    assert got == expected, table.schema
    aums = table.column("aum").to_pylist()
    assert sequence_is_sorted(aums), "result must be sorted by aum ascending"


def assert_matches_reference(
    table: pa.Table, rows: Rows, rtol: float = 1e-12, check_label: bool = True
) -> None:
    """Same samples, labels and counts as the reference; AUM equal up to `rtol` of the sample's
    mean |margin| (the scale at which float64 summation order can matter)."""
    ref = reference_aum(rows.sample_ids, rows.logits, rows.labels)
    scale = reference_abs_scale(rows.sample_ids, rows.logits, rows.labels)
    got = as_rows_dict(table)
    assert len(got) == table.num_rows, "sample ids in the result must be unique"
    assert set(got) == set(ref), set(got) ^ set(ref)
    for sid, (label, aum, count) in ref.items():
        g = got[sid]
        assert g["count"] == count, (sid, g, count)
        if check_label:
            assert g["label"] == label, (sid, g, label)
        assert abs(g["aum"] - aum) <= rtol * scale[sid], (sid, g["aum"], aum)


def check_flags(
    table: pa.Table, threshold_class: int | None, percentile: float, summary=None
) -> None:
    """threshold_sample / mislabeled columns follow design.md section 1 given the table's AUMs."""
    d = table.to_pydict()
    labels = np.array(d["label"], dtype=np.int64)
    is_thr = (
        labels == threshold_class if threshold_class is not None else np.zeros(len(labels), bool)
    )
    assert d["threshold_sample"] == is_thr.tolist()
    expected = reference_flags(d["aum"], is_thr, percentile)
    assert d["mislabeled"] == expected
    if summary is not None:
        assert summary.threshold_samples == int(is_thr.sum())
        assert summary.flagged == sum(1 for x in expected if x)
        if is_thr.sum() == 0:
            assert summary.threshold is None
        elif summary.threshold is not None:
            # "AUMs strictly below it are flagged".
            for a, t, m in zip(d["aum"], is_thr.tolist(), expected):
                if not t:
                    assert m == (a < summary.threshold), (a, summary.threshold, m)
        else:
            assert summary.flagged == 0
