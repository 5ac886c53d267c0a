"""The threshold-sample cut-off of Pleiss et al. (2020), exactly as the reference implements it.

A non-threshold sample i is flagged as mislabeled iff the fraction of threshold samples j with
AUM_j > AUM_i is greater than (100 - percentile) / 100.
"""

from __future__ import annotations

import numpy as np

from .errors import LogFormatError


def check_percentile(percentile: float) -> float:
    percentile = float(percentile)
    if not 0.0 <= percentile <= 100.0:
        raise LogFormatError(f"percentile must be between 0 and 100, got {percentile}")
    return percentile


def flag_mislabeled(
    aum: np.ndarray, is_threshold: np.ndarray, percentile: float = 99.0
) -> tuple[np.ndarray, float | None]:
    """Flags for every sample and the cut-off value.

    Returns ``(flags, threshold)``: ``flags[i]`` is the rule above for non-threshold samples (all
    False for threshold samples; the caller nulls them), and ``threshold`` is the AUM below which
    samples are flagged (None when there are no threshold samples or nothing can be flagged).
    """
    quantile = (100.0 - check_percentile(percentile)) / 100.0
    threshold_aums = np.sort(aum[is_threshold])
    total = len(threshold_aums)
    if total == 0:
        return np.zeros(len(aum), dtype=bool), None
    # Threshold samples strictly above each AUM, via one binary search per sample.
    above = total - np.searchsorted(threshold_aums, aum, side="right")
    flags = (above / total > quantile) & ~is_threshold
    # The cut-off is the m-th largest threshold AUM for the smallest m with m / total > quantile.
    passing = np.nonzero(np.arange(1, total + 1) / total > quantile)[0]
    threshold = float(threshold_aums[total - 1 - passing[0]]) if len(passing) else None
    return flags, threshold
