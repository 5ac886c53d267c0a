"""The cleaned training set: which samples to keep for retraining, and the batch size that keeps
the number of iterations per epoch (as Pleiss et al. do when they retrain)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .errors import LogFormatError
from .tables import bool_column, id_column, require_columns


@dataclass
class FilterResult:
    """``kept`` and ``removed``: ``sample_id`` (and ``label`` when the result has one), in sample
    id order. Threshold samples are kept with a null ``label``: the result holds their fake
    threshold class, not the label to retrain them with."""

    kept: pa.Table
    removed: pa.Table
    kept_fraction: float
    batch_size: int | None = None  #: suggested batch size (None without ``batch_size``)
    threshold_samples: int = 0  #: kept threshold samples (their labels are null)

    def summary(self) -> str:
        """One or two lines for a person: counts, and the batch size if one was asked for."""
        total = self.kept.num_rows + self.removed.num_rows
        line = (
            f"kept {self.kept.num_rows} of {total} samples ({100 * self.kept_fraction:.1f}%), "
            f"removed {self.removed.num_rows}"
        )
        if self.threshold_samples:
            line += (
                f"; {self.threshold_samples} threshold samples kept with label null (take "
                "their labels from your original labels)"
            )
        return line


def suggested_batch_size(batch_size: int, kept_fraction: float) -> int:
    """B x kept fraction, rounded half up, at least 1: the same iterations per epoch."""
    if batch_size < 1:
        raise LogFormatError(f"batch size must be 1 or more, got {batch_size}")
    return max(1, math.floor(batch_size * kept_fraction + 0.5))


def filter_result(
    result: pa.Table,
    *,
    flag_column: str = "mislabeled",
    batch_size: int | None = None,
    result_name: str = "result",
) -> FilterResult:
    """Split a scoring (or combined) result into kept and removed samples.

    A sample is removed iff its bool ``flag_column`` is true; a null flag (a threshold sample,
    or no threshold samples at all) keeps it. With ``batch_size`` B, also suggests
    round(B x kept fraction): 256 becomes 192 when 25% are removed.
    """
    import pyarrow.compute as pc  # here, not at the top: 60 ms of every command's start-up

    require_columns(result, result_name, "sample_id", flag_column)
    if result.num_rows == 0:
        raise LogFormatError(f"{result_name}: no samples")
    ids = id_column(result, result_name)
    removed = bool_column(result, result_name, flag_column).fill_null(False)
    removed = removed.to_numpy(zero_copy_only=False).astype(bool)
    columns = {"sample_id": ids}
    threshold = np.zeros(result.num_rows, dtype=bool)
    if "label" in result.column_names:
        if "threshold_sample" in result.column_names:
            flags = bool_column(result, result_name, "threshold_sample").fill_null(False)
            threshold = flags.to_numpy(zero_copy_only=False).astype(bool)
        labels = result.column("label").combine_chunks()
        # Null, not the fake class: retraining on label C would be silently wrong.
        columns["label"] = pc.if_else(pa.array(threshold), pa.scalar(None, labels.type), labels)
    # Sample-id order: a stable, readable order for a dataset subset (the result is by AUM).
    order = pc.sort_indices(ids).to_numpy()
    table, removed, threshold = pa.table(columns).take(order), removed[order], threshold[order]
    kept_fraction = float(1.0 - removed.mean())
    return FilterResult(
        kept=table.filter(pa.array(~removed)),
        removed=table.filter(pa.array(removed)),
        kept_fraction=kept_fraction,
        batch_size=None if batch_size is None else suggested_batch_size(batch_size, kept_fraction),
        threshold_samples=int((threshold & ~removed).sum()),
    )
