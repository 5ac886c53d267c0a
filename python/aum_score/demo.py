"""Self-contained demo of the whole method on real data: find injected label noise in the UCI
digits with a numpy MLP.

Runs offline with numpy only. Steps (Pleiss et al., 2020): load the 1797 shipped digits, flip
``noise_rate`` of the labels to a different class, then twice - with disjoint threshold sets
(slices 1 and 2 of one seeded permutation, N // (C + 1) samples given the fake class C) - train a
small MLP with SGD while recording every minibatch's train-mode logits with ``LogitWriter`` and
score the log (AUM window ending where memorisation starts). The two runs are combined so every
sample is scored as a normal sample, and the flags are evaluated against the injected flips.
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from .writer import LogitWriter

__all__ = ["DemoReport", "load_digits", "run_demo"]

NUM_CLASSES = 10
# Short and fairly gentle on purpose: AUM separates clean from flipped samples while the network
# is still learning the majority (clean) signal. Train much longer and the MLP memorises the
# flipped labels *and* the threshold samples; the threshold AUMs then rise and far too many
# samples fall below the cut-off.
# `epochs="auto"` guards the AUM window against that; 20 epochs stay before memorisation.
DEFAULT_EPOCHS = 20
_HIDDEN = 128
_BATCH = 32
_LR = 0.05
_MOMENTUM = 0.9
_WEIGHT_DECAY = 5e-4


@dataclass
class DemoReport:
    """Outcome of :func:`run_demo`. Metrics compare the combined ``mislabeled`` flags (flagged in
    any run where the sample was not a threshold sample) with the injected flips."""

    samples: int
    classes: int
    flips: int  # labels flipped
    threshold_samples: int  # per run
    flagged: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    auroc: float | None  # of the combined AUM ranking
    pooled_f1: float  # the alternative rule: mean AUM against the pooled threshold samples
    thresholds: list[float | None]  # each run's cut-off AUM
    epoch_windows: list[list[int | None]]  # each run's AUM window [start, stop)
    epochs: int
    seed: int
    noise_rate: float
    seconds: float
    workdir: str | None  # None: a temporary directory, deleted at the end
    top: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (for ``aum-score demo --json``)."""
        return asdict(self)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The shipped UCI digits: ``(X float64 (1797, 64) in [0, 16], y int64 (1797,))``."""
    ref = importlib.resources.files("aum_score") / "data" / "digits.csv.gz"
    with gzip.open(io.BytesIO(ref.read_bytes()), "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return data[:, :-1].astype(np.float64), data[:, -1]


def _train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    num_outputs: int,
    epochs: int,
    rng: np.random.Generator,
    record: Callable[[np.ndarray, np.ndarray, np.ndarray], None],
    end_epoch: Callable[[], None],
) -> None:
    """SGD (momentum, weight decay) on a 1-hidden-layer ReLU MLP with softmax cross-entropy.

    ``record(ids, logits, labels)`` gets the logits of each minibatch's training forward pass,
    before the update, exactly what a training loop hooked up to AUM would see.
    """
    n, d = x.shape
    params = [
        rng.normal(0, np.sqrt(2 / d), (d, _HIDDEN)),  # He init for ReLU
        np.zeros(_HIDDEN),
        rng.normal(0, np.sqrt(1 / _HIDDEN), (_HIDDEN, num_outputs)),
        np.zeros(num_outputs),
    ]
    velocity = [np.zeros_like(p) for p in params]
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, _BATCH):
            idx = order[start : start + _BATCH]
            xb, yb = x[idx], y[idx]
            w1, b1, w2, b2 = params
            h = np.maximum(xb @ w1 + b1, 0.0)
            z = h @ w2 + b2
            record(idx, z.astype(np.float32), yb)
            # softmax cross-entropy gradient: (softmax - onehot) / batch
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), yb] -= 1.0
            p /= len(idx)
            dh = (p @ w2.T) * (h > 0)
            grads = [xb.T @ dh, dh.sum(0), h.T @ p, p.sum(0)]
            for prm, vel, g in zip(params, velocity, grads):
                if prm.ndim == 2:
                    g = g + _WEIGHT_DECAY * prm
                vel *= _MOMENTUM
                vel -= _LR * g
                prm += vel
        end_epoch()


def _clear_old_log(logdir: Path) -> None:
    """Remove epoch files of an earlier demo run so they are not scored with the new ones."""
    for old in list(logdir.glob("epoch_*.arrow")) + list(logdir.glob("epoch_*.arrow.partial")):
        old.unlink()


def run_demo(
    workdir: str | Path | None = None,
    noise_rate: float = 0.2,
    seed: int = 0,
    epochs: int = DEFAULT_EPOCHS,
    echo: Callable[[str], Any] = print,
) -> DemoReport:
    """Inject label noise into the UCI digits and find it with AUM: two runs with disjoint
    threshold sets, the memorisation monitor, run combination and evaluation.

    Args:
        workdir: directory for the logs (``run1/logs``, ``run2/logs``), each run's result and
            assigned labels, ``combined.parquet`` and ``truth.csv``. None: a temporary
            directory, deleted afterwards.
        noise_rate: fraction of samples whose label is changed to another class, in [0, 1].
        seed: seeds the noise, the threshold samples and training (same seed, same result).
        epochs: training epochs per run.
        echo: receives progress and result lines (``print``, ``click.echo``, ...).
    """
    import aum_score  # late: the package's __init__ imports this module's names

    from .combine import combine_runs
    from .evaluation import evaluate
    from .memorisation import sparkline
    from .noise import assign_threshold_samples, inject_noise

    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {noise_rate}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    t0 = time.perf_counter()
    x, y_true = load_digits()
    x /= 16.0  # pixel counts 0..16 -> [0, 1]
    n, c = len(y_true), NUM_CLASSES
    ids = np.arange(n)
    noisy = inject_noise(ids, y_true, rate=noise_rate, kind="uniform", num_classes=c, seed=seed)
    given = noisy.column("label").to_numpy()
    flipped = given != y_true
    echo(f"Digits: {n} samples, {c} classes; flipped {flipped.sum()} labels ({noise_rate:.0%}).")

    tmp = tempfile.TemporaryDirectory(prefix="aum-demo-") if workdir is None else None
    root = Path(tmp.name if tmp is not None else workdir)
    runs = []
    try:
        for k in (1, 2):
            assigned = assign_threshold_samples(ids, given, num_classes=c, seed=seed, set_index=k)
            logdir = root / f"run{k}" / "logs"
            logdir.mkdir(parents=True, exist_ok=True)
            _clear_old_log(logdir)
            rng = np.random.default_rng([seed, k])
            labels = assigned.column("label").to_numpy()
            with LogitWriter(logdir) as writer:
                _train_mlp(x, labels, c + 1, epochs, rng, writer.write, writer.end_epoch)
            with warnings.catch_warnings():  # the fragile cut-off: its interval is shown below
                warnings.simplefilter("ignore", aum_score.FragileCutoffWarning)
                result = aum_score.score(logdir, threshold_class=c, epochs="auto", bootstrap=200)
            runs.append(result)
            s = result.summary
            fitted = result.monitor.column("threshold_fitted").to_pylist()
            low, high = s.threshold_interval or (float("nan"), float("nan"))
            echo(
                f"Run {k}: {s.threshold_samples} threshold samples (label {c}), {epochs} epochs "
                f"of a 64-{_HIDDEN}-{c + 1} MLP; threshold samples fitted by epoch "
                f"{sparkline(fitted)}; AUM window {_window(s.epoch_window)}; cut-off "
                f"{s.threshold:.3f} (95% interval {low:.3f} to {high:.3f}); flagged {s.flagged}"
            )
            if tmp is None:
                result.write(root / f"run{k}" / "aum.parquet")
                aum_score.write_table(assigned, root / f"run{k}" / "assigned.parquet")

        combined = combine_runs([r.table for r in runs])
        truth = pa.table({"sample_id": ids, "true_label": y_true})
        paper = evaluate(combined.table, truth)
        pooled = evaluate(combined.table, truth, flag_column="mislabeled_pooled")
        if tmp is None:
            aum_score.write_table(combined.table, root / "combined.parquet")
            aum_score.write_table(
                pa.table({"sample_id": ids, "label": given, "true_label": y_true}),
                root / "truth.csv",
            )
    finally:
        if tmp is not None:
            tmp.cleanup()

    top = []
    for row in combined.table.slice(0, 10).to_pylist():  # sorted by AUM: most suspicious first
        sid = row["sample_id"]
        top.append(
            {
                "sample_id": int(sid),
                "given_label": int(given[sid]),
                "true_label": int(y_true[sid]),
                "aum": float(row["aum"]),
                "flipped": bool(flipped[sid]),
                "flagged": bool(row["mislabeled"]),
            }
        )
    report = DemoReport(
        samples=n,
        classes=c,
        flips=int(flipped.sum()),
        threshold_samples=runs[0].summary.threshold_samples,
        flagged=paper.flagged,
        true_positives=int(round(paper.recall * paper.mislabeled)),
        precision=paper.precision,
        recall=paper.recall,
        f1=paper.f1,
        auroc=paper.auroc,
        pooled_f1=pooled.f1,
        thresholds=[r.summary.threshold for r in runs],
        epoch_windows=[r.summary.epoch_window for r in runs],
        epochs=epochs,
        seed=seed,
        noise_rate=noise_rate,
        seconds=time.perf_counter() - t0,
        workdir=None if tmp is not None else str(root),
        top=top,
    )
    echo("Most suspicious samples (both runs combined):")
    echo(f"  {'sample':>6}  {'given':>5}  {'true':>4}  {'aum':>8}  flipped")
    for row in top:
        echo(
            f"  {row['sample_id']:>6}  {row['given_label']:>5}  {row['true_label']:>4}  "
            f"{row['aum']:>8.3f}  {'yes' if row['flipped'] else 'no'}"
        )
    echo(
        f"Flagged {report.flagged} of {n} samples (flagged in any run where they were not a "
        f"threshold sample); {report.true_positives} of {report.flips} flipped labels found."
    )
    echo(
        f"Precision {report.precision:.3f}  recall {report.recall:.3f}  F1 {report.f1:.3f}  "
        f"AUROC {report.auroc:.3f}  (pooled-threshold rule: F1 {report.pooled_f1:.3f})  "
        f"({report.seconds:.1f} s)"
    )
    if report.workdir:
        echo(f"Logs, scores and truth are in {report.workdir}")
    return report


def _window(window) -> str:
    start, stop = window or (None, None)
    if start is None and stop is None:
        return "all epochs (no memorisation seen)"
    return f"epochs {'' if start is None else start}:{'' if stop is None else stop}"
