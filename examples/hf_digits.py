"""Find mislabeled digits with aum-score while training a Hugging Face Transformers model.

A tiny BERT, randomly initialised from a config (no download), classifies the UCI digits that
ship with aum-score, each 8x8 image read as a sequence of 8 row embeddings. The whole method:
inject label noise, assign threshold samples, train while writing a logit log, score, evaluate.

    python examples/hf_digits.py --epochs 10 --workdir runs/hf

Needs torch and transformers (`pip install torch transformers`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification

import aum_score
from aum_score.demo import load_digits
from aum_score.evaluation import evaluate
from aum_score.noise import assign_threshold_samples, inject_noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("runs/hf"))
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)

    # 1. Data, label noise to find, and threshold samples (fake class C = 10).
    x, true_labels = load_digits()
    ids = np.arange(len(true_labels))
    noisy = inject_noise(ids, true_labels, rate=args.noise, kind="uniform", seed=args.seed)
    assigned = assign_threshold_samples(ids, noisy["label"], num_classes=10, seed=args.seed)
    labels = torch.tensor(assigned["label"].to_numpy())
    rows = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 8, 8)  # 8 "tokens" of 8 pixels

    # 2. A tiny randomly initialised model with one output more than there are real classes.
    config = BertConfig(
        vocab_size=2,  # unused: the model gets embeddings, not token ids
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=8,
        num_labels=11,
    )
    model = BertForSequenceClassification(config)
    embed = torch.nn.Linear(8, config.hidden_size)  # pixel row -> token embedding
    params = list(model.parameters()) + list(embed.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    logdir = args.workdir / "logs"
    for old in logdir.glob("epoch_*.arrow"):  # a log of an earlier, longer run
        old.unlink()
    generator = torch.Generator().manual_seed(args.seed)
    with aum_score.LogitWriter(logdir) as writer:
        for _ in range(args.epochs):
            model.train()
            for idx in torch.randperm(len(ids), generator=generator).split(32):
                out = model(inputs_embeds=embed(rows[idx]), labels=labels[idx])
                optimizer.zero_grad()
                out.loss.backward()
                optimizer.step()
                writer.write(idx, out.logits, labels[idx])  # train-mode logits of this step
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
