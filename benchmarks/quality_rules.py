"""Metrics, cut-off rules and epoch-window rules compared by benchmarks/quality.py."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from aum_score.thresholds import flag_mislabeled

# ---------------------------------------------------------------- metrics


def prf(flags: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = int((flags & truth).sum())
    p = tp / flags.sum() if flags.any() else 0.0
    r = tp / truth.sum() if truth.any() else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def auroc(suspicion: np.ndarray, truth: np.ndarray) -> float:
    """Probability that a mislabeled sample is more suspicious than a clean one (ties 1/2)."""
    ranks = _average_ranks(suspicion)
    pos = truth.sum()
    neg = len(truth) - pos
    return float((ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _average_ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    # Tied values share the mean of their 1-based ranks.
    starts = np.r_[0, np.nonzero(np.diff(sorted_v))[0] + 1]
    ends = np.r_[starts[1:], len(v)]
    ranks = np.empty(len(v))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def best_f1(suspicion: np.ndarray, truth: np.ndarray) -> float:
    """The F1 of the best 'flag the k most suspicious' cut-off (an oracle, for rankings)."""
    hits = np.cumsum(truth[np.argsort(-suspicion, kind="stable")])
    k = np.arange(1, len(hits) + 1)
    return float((2 * hits / (k + truth.sum())).max())


def top_k(suspicion: np.ndarray, k: int) -> np.ndarray:
    flags = np.zeros(len(suspicion), bool)
    flags[np.argsort(-suspicion, kind="stable")[:k]] = True
    return flags


# ---------------------------------------------------------------- cut-offs
# Each takes the AUMs of the samples to judge and of the threshold samples and returns flags.


def cut_percentile(aum, thr_aum, p=99.0):
    """The reference rule (aum_score.thresholds) at percentile p."""
    both = np.r_[aum, thr_aum]
    is_thr = np.r_[np.zeros(len(aum), bool), np.ones(len(thr_aum), bool)]
    return flag_mislabeled(both, is_thr, p)[0][: len(aum)]


def cut_mad(aum, thr_aum, p=99.0):
    """median + z_p * 1.4826 * MAD of the threshold AUMs: a normal quantile with robust
    location and scale, so one or two extreme threshold samples barely move it."""
    med = np.median(thr_aum)
    scale = 1.4826 * np.median(np.abs(thr_aum - med))
    return aum < med + norm.ppf(p / 100) * scale


def cut_bootstrap(aum, thr_aum, p=99.0, draws=200, seed=0):
    """Median over bootstrap resamples of the threshold set of the reference p-cut-off value."""
    rng = np.random.default_rng(seed)
    m = len(thr_aum)
    q = (100.0 - p) / 100.0
    # The reference cut-off is the j-th largest value, j the smallest with j / m > q.
    j = int(np.floor(q * m)) + 1
    samples = np.sort(thr_aum[rng.integers(0, m, size=(draws, m))], axis=1)
    return aum < np.median(samples[:, m - j])


CUTOFFS = {
    "p99": lambda a, t: cut_percentile(a, t, 99.0),
    "p95": lambda a, t: cut_percentile(a, t, 95.0),
    "p90": lambda a, t: cut_percentile(a, t, 90.0),
    "p50": lambda a, t: cut_percentile(a, t, 50.0),
    "mad99": lambda a, t: cut_mad(a, t, 99.0),
    "mad95": lambda a, t: cut_mad(a, t, 95.0),
    "boot99": lambda a, t: cut_bootstrap(a, t, 99.0),
}


# ---------------------------------------------------------------- epoch windows
# A rule sees one run's per-epoch threshold statistics (fraction of threshold samples with
# margin > 0, their mean margin; one value per epoch) and returns where the AUM window ends
# (exclusive): the first epoch judged to be memorising is left out, and all after it. Rules
# judge from epoch 1 on: epoch 0's margins come from a randomly initialised network, and a
# chance 10% of fitted threshold samples there would otherwise end the window at once.


def _first(cond: np.ndarray) -> int:
    """Index of the first True, judged from epoch 1; len(cond) (keep all) if none."""
    hits = np.nonzero(cond[1:])[0]
    return int(hits[0]) + 1 if len(hits) else len(cond)


def end_level(frac, mean, level, from_epoch_0=False):
    if from_epoch_0:  # shown only to measure the failure described above
        hits = np.nonzero(frac > level)[0]
        return max(1, int(hits[0])) if len(hits) else len(frac)
    return _first(frac > level)


def end_rise(frac, mean, delta):
    """First epoch whose fitted fraction is `delta` above its lowest value so far."""
    return _first(frac > np.minimum.accumulate(frac) + delta)


def end_mean_rise(frac, mean, delta):
    """First epoch whose mean threshold margin is `delta` above its lowest value so far."""
    return _first(mean > np.minimum.accumulate(mean) + delta)


def end_mean_zero(frac, mean):
    """First epoch where the threshold samples' mean margin is back above 0 after its dip."""
    return _first((np.minimum.accumulate(mean) < 0) & (mean > 0))


def _mean3(v: np.ndarray) -> np.ndarray:
    """Mean of each epoch and the (up to) two before it: causal, so usable while training."""
    c = np.r_[0.0, np.cumsum(v)]
    i = np.arange(1, len(v) + 1)
    lo = np.maximum(i - 3, 0)
    return (c[i] - c[lo]) / (i - lo)


# The recommended rule (see RESULTS.md): stop before the first epoch >= 1 in which the fraction
# of fitted threshold samples is more than 0.1 above its lowest value so far. Relative to the
# running minimum because the chance level differs with the number of classes (about 0.25 of
# the threshold samples are "fitted" from the start with 2 classes, near 0 with 10).
AUTO_DELTA = 0.1


def end_auto(frac, mean):
    return end_rise(frac, mean, AUTO_DELTA)


WINDOW_RULES = {
    **{
        f"fitted > {lv}": (lambda f, m, lv=lv: end_level(f, m, lv))
        for lv in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
    },
    "fitted > 0.1, epoch 0 included": lambda f, m: end_level(f, m, 0.1, from_epoch_0=True),
    # Averaging 3 epochs guards against a chance spike with few threshold samples, at a lag.
    **{
        f"fitted > {lv}, 3-epoch mean": (lambda f, m, lv=lv: end_level(_mean3(f), m, lv))
        for lv in (0.1, 0.15)
    },
    **{
        f"fitted > running min + {d}": (lambda f, m, d=d: end_rise(f, m, d))
        for d in (0.05, 0.1, 0.15)
    },
    **{
        f"mean margin > running min + {d}": (lambda f, m, d=d: end_mean_rise(f, m, d))
        for d in (0.25, 0.5, 1.0)
    },
    "mean margin back above 0": end_mean_zero,
}
