"""Find mislabeled digits with aum-score in a plain PyTorch training loop.

The whole method of Pleiss et al. (2020) on real data that ships with aum-score (UCI digits):
inject label noise (to have something to find), assign threshold samples, train while writing a
logit log, score it, and check the flags against the injected noise.

    python examples/torch_digits.py --epochs 20 --workdir runs/torch

Needs torch (`pip install torch`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

import aum_score
from aum_score.demo import load_digits
from aum_score.evaluation import evaluate
from aum_score.noise import assign_threshold_samples, inject_noise


class WithIndex(torch.utils.data.Dataset):
    """Adds the sample index to each item, so the training loop knows which rows it sees."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i], i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("runs/torch"))
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)

    # 1. Data, label noise to find, and threshold samples (fake class C = 10).
    x, true_labels = load_digits()
    ids = np.arange(len(true_labels))
    noisy = inject_noise(ids, true_labels, rate=args.noise, kind="uniform", seed=args.seed)
    assigned = assign_threshold_samples(ids, noisy["label"], num_classes=10, seed=args.seed)
    labels = assigned["label"].to_numpy()
    classes = 11  # the network gets one output more than there are real classes

    # 2. Train, recording the train-mode logits of every SGD step.
    data = WithIndex(torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(labels))
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    logdir = args.workdir / "logs"
    for old in logdir.glob("epoch_*.arrow"):  # a log of an earlier, longer run
        old.unlink()
    with aum_score.LogitWriter(logdir) as writer:
        for _ in range(args.epochs):
            model.train()
            for xb, yb, idx in loader:
                logits = model(xb)
                loss = nn.functional.cross_entropy(logits, yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                writer.write(idx, logits, yb)
            writer.end_epoch()

    # 3. Score, with the AUM window ending where memorisation starts.
    result = aum_score.score(logdir, threshold_class=10, epochs="auto")
    result.write(args.workdir / "aum.parquet")
    print(f"cut-off AUM {result.summary.threshold:.3f}, flagged {result.summary.flagged}")

    # 4. Compare with the injected noise (only possible because we injected it).
    report = evaluate(result.table, noisy.select(["sample_id", "true_label"]))
    print(f"precision {report.precision:.3f} recall {report.recall:.3f} F1 {report.f1:.3f}")


if __name__ == "__main__":
    main()
