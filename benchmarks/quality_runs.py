"""One benchmark task: a dataset with injected noise, two logged training runs with disjoint
threshold sets, their AUM scores, and cleanlab on out-of-fold probabilities."""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from quality_lib import (
    inject_noise,
    load_dataset,
    out_of_fold_probs,
    per_epoch_margins_and_losses,
    threshold_mask,
    train_logged,
)

import aum_score


def _score(files, c, epochs=None):
    """(aum, flags, seconds, epoch window) from aum_score.score (p99), indexed by sample id."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fragile-cut-off warning is what we measure
        kwargs = {} if epochs is None else {"epochs": epochs}
        result = aum_score.score(files, threshold_class=c, threads=1, **kwargs)
    seconds = time.perf_counter() - started
    table = result.table
    ids = table["sample_id"].to_numpy()
    aum = np.empty(len(ids))
    flags = np.zeros(len(ids), bool)
    aum[ids] = table["aum"].to_numpy()
    flags[ids] = table["mislabeled"].fill_null(False).to_numpy(zero_copy_only=False)
    window = getattr(result.summary, "epoch_window", None)
    return aum, flags, seconds, window


def run_task(
    dataset: str, rate: float, kind: str, seed: int, short: int, long: int, full: bool = True
) -> dict:
    """Everything the analysis needs for one (dataset, noise, seed), as plain arrays.

    The short schedule is the first `short` epochs of the long run: with a constant learning
    rate, training for `short` epochs is exactly that prefix, so one long run serves both.
    `full=False`: run 1 only and no cleanlab (the few-class stress test of the window rules)."""
    x, y = load_dataset(dataset)
    n, C = len(y), int(y.max()) + 1
    noisy = inject_noise(y, rate, kind, C, seed)
    out = {"true": y, "noisy": noisy}
    for run in (1, 2) if full else (1,):
        thr = threshold_mask(n, C, seed, run)
        with tempfile.TemporaryDirectory(prefix="aum-quality-") as tmp:
            started = time.perf_counter()
            train_logged(x, np.where(thr, C, noisy), C + 1, long, seed * 10 + run, Path(tmp))
            out[f"train_s{run}"] = time.perf_counter() - started
            files = sorted(str(p) for p in Path(tmp).glob("*.arrow"))
            for name, epochs in (("short", short), ("long", long)):
                aum, flags, secs, _ = _score(files[:epochs], C)
                out[f"aum_{name}{run}"], out[f"paper_{name}{run}"] = aum, flags
                out[f"score_s_{name}{run}"] = secs
                try:  # the library's own automatic window, when it has one
                    aum, flags, secs, window = _score(files[:epochs], C, "auto")
                except (TypeError, ValueError):
                    continue
                out[f"libauto_{name}{run}"], out[f"libauto_s_{name}{run}"] = flags, secs
                out[f"libauto_end_{name}{run}"] = (
                    -1 if window is None or window[1] is None else window[1]
                )
            margins, losses = per_epoch_margins_and_losses(Path(tmp), n)
        out[f"thr{run}"] = thr
        out[f"margins{run}"] = margins
        if run == 1:
            # Mean training loss over each schedule, the cheapest baseline from the same log.
            out["loss_short1"] = losses[:short].mean(axis=0)
            out["loss_long1"] = losses.mean(axis=0)

    if not full:
        return out
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    started = time.perf_counter()
    probs = out_of_fold_probs(x, noisy, C, short, seed)
    out["cl_train_s"] = time.perf_counter() - started
    started = time.perf_counter()
    out["cleanlab"] = find_label_issues(noisy, probs, n_jobs=1)
    out["cleanlab_quality"] = get_label_quality_scores(noisy, probs)
    out["cl_find_s"] = time.perf_counter() - started
    return out
