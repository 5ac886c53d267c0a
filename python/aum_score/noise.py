"""Label tables for the method and its experiments: threshold-sample assignment and injected noise.

Both are deterministic for a seed and the *set* of (sample_id, label) rows: samples are put in
sample-id order before the seeded draws, so shuffling the input file does not change the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .errors import LogFormatError
from .tables import bool_column, first_null_row


def _ids_and_labels(
    sample_ids: Any, labels: Any, num_classes: int | None
) -> tuple[pa.Array, np.ndarray, int, np.ndarray]:
    """(ids, int64 labels, C, order): validated, with ``order`` the positions in id order."""
    import pyarrow.compute as pc  # here, not at the top: 60 ms of every command's start-up

    ids = sample_ids.combine_chunks() if isinstance(sample_ids, pa.ChunkedArray) else sample_ids
    ids = ids if isinstance(ids, pa.Array) else pa.array(np.asarray(ids))
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if not (
        pa.types.is_integer(ids.type)
        or pa.types.is_string(ids.type)
        or pa.types.is_large_string(ids.type)
    ):
        raise LogFormatError(f"sample ids have type {ids.type}; expected integers or strings")
    if ids.null_count:
        raise LogFormatError(f"sample id in row {first_null_row(ids)} is null")
    if isinstance(labels, (pa.Array, pa.ChunkedArray)):
        if labels.null_count:
            raise LogFormatError(f"label in row {first_null_row(labels)} is null")
        labels = labels.to_numpy()
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise LogFormatError(f"labels must be integers, got {labels.dtype}")
    labels = labels.astype(np.int64).reshape(-1)
    if len(labels) != len(ids):
        raise LogFormatError(f"{len(ids)} sample ids but {len(labels)} labels")
    if len(ids) == 0:
        raise LogFormatError("no samples")
    classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if len(bad):
        row = int(bad[0])
        raise LogFormatError(
            f"row {row}: label {labels[row]} of sample {ids[row].as_py()} is outside [0, {classes})"
        )
    order = pc.sort_indices(ids).to_numpy()
    sorted_ids = ids.take(order)
    same = pc.equal(sorted_ids[1:], sorted_ids[:-1]).to_numpy(zero_copy_only=False)
    if same.any():
        raise LogFormatError(f"sample {sorted_ids[int(np.argmax(same))].as_py()} appears twice")
    return ids, labels, classes, order


def threshold_count(
    samples: int, num_classes: int, count: int | None = None, fraction: float | None = None
) -> int:
    """How many threshold samples: ``count``, else round(fraction * N), else N // (C + 1)."""
    if count is not None and fraction is not None:
        raise LogFormatError("give a count or a fraction of threshold samples, not both")
    if count is not None:
        chosen = int(count)
    elif fraction is not None:
        if not 0.0 < fraction < 1.0:
            raise LogFormatError(f"fraction must be between 0 and 1, got {fraction}")
        chosen = round(fraction * samples)
    else:
        chosen = samples // (num_classes + 1)  # the paper's N / (C + 1)
    if chosen < 1:
        raise LogFormatError(
            f"{samples} samples and {num_classes} classes give {chosen} threshold samples; "
            "give --count or --fraction"
        )
    return chosen


def assign_threshold_samples(
    sample_ids: Any,
    labels: Any,
    *,
    num_classes: int | None = None,
    seed: int = 0,
    set_index: int = 1,
    count: int | None = None,
    fraction: float | None = None,
) -> pa.Table:
    """Give a seeded random subset of samples the extra label C (they become threshold samples).

    C is ``num_classes`` or max(label) + 1. ``count`` threshold samples (default N // (C + 1);
    ``fraction`` gives round(fraction * N)) are taken as slice ``set_index`` (1-based) of one
    seeded permutation of the samples in id order, so sets 1, 2, ... of one seed are disjoint.

    Returns ``sample_id``, ``label`` (C for the chosen samples), ``original_label`` and
    ``threshold_sample`` (bool), rows in the input order. Train with C + 1 outputs.
    """
    ids, original, classes, order = _ids_and_labels(sample_ids, labels, num_classes)
    n = len(original)
    chosen_count = threshold_count(n, classes, count, fraction)
    if set_index < 1:
        raise LogFormatError(f"set must be 1 or more, got {set_index}")
    start, stop = (set_index - 1) * chosen_count, set_index * chosen_count
    if stop > n:
        raise LogFormatError(
            f"set {set_index} of {chosen_count} threshold samples needs {stop} samples; "
            f"there are {n}"
        )
    permutation = np.random.default_rng(seed).permutation(n)
    is_threshold = np.zeros(n, dtype=bool)
    is_threshold[order[permutation[start:stop]]] = True  # positions in id order -> input rows
    return pa.table(
        {
            "sample_id": ids,
            "label": pa.array(np.where(is_threshold, classes, original), pa.int64()),
            "original_label": pa.array(original, pa.int64()),
            "threshold_sample": pa.array(is_threshold, pa.bool_()),
        }
    )


NOISE_KINDS = ("uniform", "flip")


def inject_noise(
    sample_ids: Any,
    labels: Any,
    *,
    rate: float,
    kind: str = "uniform",
    num_classes: int | None = None,
    seed: int = 0,
) -> pa.Table:
    """Corrupt labels with the paper's transition matrices.

    Each sample independently keeps its label with probability 1 - ``rate``; otherwise
    ``uniform`` gives it one of the other C - 1 classes uniformly at random and ``flip`` gives
    class c the label (c + 1) mod C. C is ``num_classes`` or max(label) + 1.

    Returns ``sample_id``, ``label`` (noisy) and ``true_label``, rows in the input order.
    """
    if kind not in NOISE_KINDS:
        raise LogFormatError(f"noise kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    if not 0.0 <= rate <= 1.0:
        raise LogFormatError(f"noise rate must be between 0 and 1, got {rate}")
    ids, true, classes, order = _ids_and_labels(sample_ids, labels, num_classes)
    if classes < 2:
        raise LogFormatError(f"noise needs at least 2 classes, got {classes}")
    rng = np.random.default_rng(seed)
    n = len(true)
    # Both draws are made whatever the kind, so one seed and rate corrupt the same samples with
    # either kind (the two experiments differ only in where the labels go).
    corrupt_sorted = rng.random(n) < rate
    offset_sorted = rng.integers(1, classes, size=n)
    if kind == "flip":
        offset_sorted[:] = 1
    corrupt = np.empty(n, dtype=bool)
    offset = np.empty(n, dtype=np.int64)
    corrupt[order], offset[order] = corrupt_sorted, offset_sorted  # id order -> input rows
    # A nonzero offset mod C never lands on the true class, and 1..C-1 are equally likely.
    noisy = np.where(corrupt, (true + offset) % classes, true)
    return pa.table(
        {
            "sample_id": ids,
            "label": pa.array(noisy, pa.int64()),
            "true_label": pa.array(true, pa.int64()),
        }
    )


def threshold_class_of(labels_table: pa.Table, path: str | None = None) -> int | None:
    """The threshold class of an assigned labels table (see :func:`assign_threshold_samples`).

    None when the table has no ``threshold_sample`` column or no row with it true; else the one
    label the threshold rows carry. Raises :class:`LogFormatError` (naming ``path`` if given)
    when they carry several labels, or when another row carries that label too (the scorer
    would count it as a threshold sample).
    """
    where = f"{path}: " if path else ""
    if "threshold_sample" not in labels_table.column_names:
        return None
    flags = bool_column(labels_table, path or "labels table", "threshold_sample").fill_null(False)
    flags = flags.to_numpy(zero_copy_only=False)
    if not flags.any():
        return None
    if "label" not in labels_table.column_names:
        raise LogFormatError(f"{where}column 'threshold_sample' but no column 'label'")
    column = labels_table.column("label")
    if not pa.types.is_integer(column.type):
        raise LogFormatError(f"{where}column 'label' has type {column.type}; expected integers")
    labels = column.cast(pa.int64()).fill_null(-1).to_numpy()  # -1 (no class): null never matches
    values = np.unique(labels[flags])
    if len(values) != 1 or values[0] < 0:
        shown = ", ".join("null" if v < 0 else str(v) for v in values[:5])
        raise LogFormatError(
            f"{where}threshold samples carry labels {shown}; expected one class for all"
        )
    value = int(values[0])
    clash = np.flatnonzero(~flags & (labels == value))
    if len(clash):
        row = int(clash[0])
        raise LogFormatError(
            f"{where}row {row}: label {value} is the threshold class but "
            "'threshold_sample' is false"
        )
    return value
