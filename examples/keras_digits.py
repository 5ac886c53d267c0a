"""Find mislabeled digits with aum-score in a Keras 3 (TensorFlow backend) training loop.

The whole method of Pleiss et al. (2020) on the UCI digits that ship with aum-score: inject label
noise, assign threshold samples, train while writing a logit log, score it, evaluate the flags.
The loop uses `tf.GradientTape` so the logits written are exactly the train-mode logits of each
SGD step (`model.fit` hides them; see the README).

    python examples/keras_digits.py --epochs 20 --workdir runs/keras

Needs keras and tensorflow (`pip install keras tensorflow-cpu`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import aum_score  # noqa: E402
from aum_score.demo import load_digits  # noqa: E402
from aum_score.evaluation import evaluate  # noqa: E402
from aum_score.noise import assign_threshold_samples, inject_noise  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("runs/keras"))
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)

    # 1. Data, label noise to find, and threshold samples (fake class C = 10).
    x, true_labels = load_digits()
    ids = np.arange(len(true_labels))
    noisy = inject_noise(ids, true_labels, rate=args.noise, kind="uniform", seed=args.seed)
    assigned = assign_threshold_samples(ids, noisy["label"], num_classes=10, seed=args.seed)
    labels = assigned["label"].to_numpy()

    # 2. Train, recording the train-mode logits of every step with the sample ids.
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(11)]
    )
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    data = tf.data.Dataset.from_tensor_slices((x.astype("float32") / 16.0, labels, ids))
    data = data.shuffle(len(ids), seed=args.seed).batch(32)
    logdir = args.workdir / "logs"
    for old in logdir.glob("epoch_*.arrow"):  # a log of an earlier, longer run
        old.unlink()
    with aum_score.LogitWriter(logdir) as writer:
        for _ in range(args.epochs):
            for xb, yb, idx in data:
                with tf.GradientTape() as tape:
                    logits = model(xb, training=True)
                    loss = loss_fn(yb, logits)
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
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
