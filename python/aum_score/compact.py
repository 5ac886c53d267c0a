"""Compact records: the per-row reductions AUM needs, instead of all C logits.

A full log costs 4 x C bytes per row (4 KB at C = 1000). AUM only needs, per row, the logit of
the assigned label and the largest other logit; we also keep that logit's class and the row's
log-sum-exp so that probability-based scores can be computed later
(p_label = exp(label_logit - logsumexp)). Computed where the logits are, in the training
framework, so only four numbers per row cross to the host.

The margin of a compact row is ``label_logit - other_logit`` in the stored dtype (float32 for
float16/float32 logits, float64 for float64): the same arithmetic as the full-logit kernel, so
compact and full logs give identical AUMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .arrays import to_numpy

COMPACT_COLUMNS = ("label_logit", "other_logit", "other_class", "logsumexp")
COMPACT_FORMAT = b"compact-1"


def compact_schema(id_type: pa.DataType, float_type: pa.DataType, classes: int, epoch: int):
    """Schema of a compact log file: C travels in the metadata, as no column shows it."""
    return pa.schema(
        [
            pa.field("sample_id", id_type, nullable=False),
            pa.field("label", pa.int64(), nullable=False),
            pa.field("label_logit", float_type, nullable=False),
            pa.field("other_logit", float_type, nullable=False),
            pa.field("other_class", pa.int32(), nullable=False),
            pa.field("logsumexp", float_type, nullable=False),
        ],
        metadata={
            b"epoch": str(epoch).encode(),
            b"aum_score_log": COMPACT_FORMAT,
            b"classes": str(classes).encode(),
        },
    )


@dataclass
class CompactRecords:
    """Per-row reductions of a batch of logits (numpy arrays of equal length)."""

    label_logit: np.ndarray  # float32 (float64 for float64 logits)
    other_logit: np.ndarray  # largest logit of the other classes
    other_class: np.ndarray  # int32: its class (the first one on ties)
    logsumexp: np.ndarray  # log(sum(exp(logits))) of the row
    num_classes: int

    def __len__(self) -> int:
        return len(self.label_logit)

    @property
    def margins(self) -> np.ndarray:
        """float64 margins, subtracted in the stored dtype (as the full-logit kernel does)."""
        return (self.label_logit - self.other_logit).astype(np.float64)


def compact_records(logits: Any, labels: Any) -> CompactRecords:
    """Compact records of a batch with numpy (any array-like; see :func:`compact_records_torch`
    for torch tensors on their device)."""
    z = to_numpy(logits)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must be 2-D with at least 2 classes, got shape {z.shape}")
    z = z.astype(np.float64 if z.dtype == np.float64 else np.float32, copy=False)
    y = to_numpy(labels).astype(np.int64, copy=False).reshape(-1)
    if len(y) != len(z):
        raise ValueError(f"{len(z)} rows of logits but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError(f"labels must be in [0, {z.shape[1]})")
    rows = np.arange(len(z))
    label_logit = z[rows, y]
    masked = z.copy()
    masked[rows, y] = -np.inf
    other_class = masked.argmax(axis=1)
    top = np.maximum(label_logit, masked[rows, other_class])
    with np.errstate(over="ignore", invalid="ignore"):
        lse = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    return CompactRecords(
        label_logit,
        masked[rows, other_class],
        other_class.astype(np.int32),
        lse.astype(z.dtype),
        z.shape[1],
    )


def compact_records_torch(logits: Any, labels: Any) -> CompactRecords:
    """Compact records computed with torch ops on the logits' own device (GPU included); one
    small copy to the host. float16/bfloat16 logits are widened to float32 first."""
    import torch

    z = logits.detach()
    if z.dtype not in (torch.float32, torch.float64):
        z = z.float()
    y = torch.as_tensor(labels, device=z.device).long().reshape(-1, 1)
    label_logit = z.gather(1, y).squeeze(1)
    other_logit, other_class = z.scatter(1, y, float("-inf")).max(dim=1)
    lse = torch.logsumexp(z, dim=1)
    out = torch.stack([label_logit, other_logit, lse]).cpu().numpy()
    return CompactRecords(
        out[0], out[1], other_class.to(torch.int32).cpu().numpy(), out[2], int(z.shape[1])
    )
