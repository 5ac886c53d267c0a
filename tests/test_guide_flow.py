"""The command sequence of docs/guide.md, end to end through the CLI, on a synthetic run."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from reference import Rows, write_log


def fake_training_log(directory, assigned: pa.Table, true_labels, rng, epochs=4):
    """Logits where a sample's true class wins: flipped and threshold samples get low margins."""
    ids = assigned.column("sample_id").to_numpy()
    labels = assigned.column("label").to_numpy()
    classes = int(labels.max()) + 1
    out = {}
    for e in range(epochs):
        z = rng.normal(0, 0.5, size=(len(ids), classes)).astype(np.float32)
        z[np.arange(len(ids)), true_labels] += 3.0
        order = rng.permutation(len(ids))
        out[e] = Rows(ids[order], z[order], labels[order])
    write_log(directory, out)


def test_guide_commands(cli, tmp_path, rng):
    n, c = 600, 5
    true = rng.integers(0, c, n)
    pq.write_table(
        pa.table({"sample_id": np.arange(n), "label": true}), tmp_path / "labels.parquet"
    )
    r = cli(
        "inject-noise",
        "--labels",
        tmp_path / "labels.parquet",
        "--rate",
        "0.2",
        "--seed",
        "1",
        "-o",
        tmp_path / "noisy.parquet",
    )
    assert r.exit_code == 0, r
    noisy = pq.read_table(tmp_path / "noisy.parquet")
    for k in (1, 2):
        r = cli(
            "threshold-samples",
            "--labels",
            tmp_path / "noisy.parquet",
            "--seed",
            "0",
            "--set",
            str(k),
            "-o",
            tmp_path / f"assigned{k}.parquet",
        )
        assert r.exit_code == 0, r
        assigned = pq.read_table(tmp_path / f"assigned{k}.parquet").sort_by("sample_id")
        fake_training_log(tmp_path / f"run{k}", assigned, true, rng)
        # The threshold class comes from the assigned file: no --threshold-class.
        r = cli(
            tmp_path / f"run{k}",
            "--labels",
            tmp_path / f"assigned{k}.parquet",
            "--epochs",
            "auto",
            "-o",
            tmp_path / f"run{k}.parquet",
        )
        assert r.exit_code == 0, r
        run = pq.read_table(tmp_path / f"run{k}.parquet")
        assert sum(run.column("threshold_sample").to_pylist()) == n // (c + 1)
    r = cli(
        "combine",
        tmp_path / "run1.parquet",
        tmp_path / "run2.parquet",
        "-o",
        tmp_path / "combined.parquet",
    )
    assert r.exit_code == 0, r
    combined = pq.read_table(tmp_path / "combined.parquet")
    assert combined.num_rows == n and combined.column("aum").null_count == 0
    r = cli(
        "evaluate", tmp_path / "combined.parquet", "--truth", tmp_path / "noisy.parquet", "--json"
    )
    assert r.exit_code == 0, r
    metrics = json.loads(r.stdout)
    assert metrics["recall"] > 0.9 and metrics["auroc"] > 0.95
    r = cli(
        "filter",
        tmp_path / "combined.parquet",
        "-o",
        tmp_path / "kept.parquet",
        "--batch-size",
        "256",
    )
    assert r.exit_code == 0, r
    kept = pq.read_table(tmp_path / "kept.parquet")
    removed = pq.read_table(tmp_path / "kept.removed.parquet")
    assert kept.num_rows + removed.num_rows == n
    assert removed.num_rows == combined.column("mislabeled").to_numpy(zero_copy_only=False).sum()
    assert f"{round(256 * kept.num_rows / n)}" in r.stdout
    is_flipped = pa.compute.not_equal(noisy["label"], noisy["true_label"])
    flipped = set(noisy.filter(is_flipped).column("sample_id").to_pylist())
    found = flipped & set(removed.column("sample_id").to_pylist())
    assert len(found) > 0.9 * len(flipped)
