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
    rank = _rank_from_top(total, quantile)
    threshold = float(threshold_aums[total - rank]) if rank is not None else None
    return flags, threshold


def _rank_from_top(total: int, quantile: float) -> int | None:
    """m such that the cut-off is the m-th largest of ``total`` threshold AUMs (None: never)."""
    passing = np.nonzero(np.arange(1, total + 1) / total > quantile)[0]
    return int(passing[0]) + 1 if len(passing) else None


def bootstrap_thresholds(
    threshold_aums: np.ndarray, percentile: float, rounds: int = 1000, seed: int = 0
) -> np.ndarray:
    """The cut-off recomputed on ``rounds`` resamples (with replacement) of the threshold
    samples: its spread is the cut-off's uncertainty. Empty when there is no cut-off."""
    total = len(threshold_aums)
    rank = _rank_from_top(total, (100.0 - percentile) / 100.0) if total else None
    if rank is None or rounds <= 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    resampled = np.sort(threshold_aums[rng.integers(0, total, size=(rounds, total))], axis=1)
    return resampled[:, total - rank]


def flag_rates(aum: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """Per sample, the fraction of bootstrap cut-offs its AUM is below (how often it is flagged)."""
    cutoffs = np.sort(cutoffs)
    return (len(cutoffs) - np.searchsorted(cutoffs, aum, side="right")) / max(len(cutoffs), 1)


def fragility_warning(threshold_samples: int, percentile: float) -> str | None:
    """A warning when the cut-off rests on the few largest threshold AUMs."""
    if threshold_samples == 0:
        return None
    above = threshold_samples * (100.0 - percentile) / 100.0
    if above >= 5:
        return None
    rank = _rank_from_top(threshold_samples, (100.0 - percentile) / 100.0)
    where = "undefined" if rank is None else f"the {_ordinal(rank)}-largest threshold AUM"
    return (
        f"only {threshold_samples} threshold samples: the {percentile:g}th-percentile cut-off is "
        f"{where}, so a few atypical threshold samples move it a lot; see the cut-off's "
        "bootstrap interval and flag_rate, use more threshold samples, or a lower --percentile"
    )


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")
