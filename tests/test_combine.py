"""Combining runs with disjoint threshold sets, against a plain-Python reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from reference import make_epochs, reference_flags, write_log

import aum_score
from aum_score.combine import combine_runs

C = 5


def two_runs(tmp_path, rng, n=120):
    """The same samples scored twice, with disjoint threshold sets (label C - 1)."""
    epochs = make_epochs(rng, n_samples=n, num_classes=C - 1, n_epochs=3, missing=0.0)
    ids = np.unique(np.concatenate([r.sample_ids for r in epochs.values()]))
    order = rng.permutation(len(ids))
    sets = [set(ids[order[: n // C]].tolist()), set(ids[order[n // C : 2 * (n // C)]].tolist())]
    runs = []
    for k, chosen in enumerate(sets):
        relabelled = {}
        for e, rows in epochs.items():
            labels = rows.labels.copy()
            labels[np.isin(rows.sample_ids, list(chosen))] = C - 1
            logits = np.concatenate([rows.logits, rng.normal(size=(len(labels), 1))], axis=1)
            relabelled[e] = type(rows)(rows.sample_ids, logits.astype(np.float32), labels)
        write_log(tmp_path / f"run{k}", relabelled)
        runs.append(aum_score.score(tmp_path / f"run{k}", threshold_class=C - 1, percentile=90))
    return runs


def reference_combine(tables, percentile):
    normal, pooled = {}, []
    for table in tables:
        for row in table.to_pylist():
            if row["threshold_sample"]:
                pooled.append(row["aum"])
            else:
                normal.setdefault(row["sample_id"], []).append((row["aum"], row["mislabeled"]))
    means = {s: float(np.mean([a for a, _ in v])) for s, v in normal.items()}
    any_flag = {s: any(f for _, f in v) for s, v in normal.items()}
    ids = list(means)
    flags = reference_flags(
        np.array([means[s] for s in ids] + pooled),
        np.array([False] * len(ids) + [True] * len(pooled)),
        percentile,
    )
    pooled_flag = dict(zip(ids, flags[: len(ids)]))
    return means, any_flag, pooled_flag


def test_combine_equals_reference(tmp_path, rng):
    runs = two_runs(tmp_path, rng)
    combined = combine_runs([r.table for r in runs], percentile=90)
    means, any_flag, pooled_flag = reference_combine([r.table for r in runs], 90)
    rows = {r["sample_id"]: r for r in combined.table.to_pylist()}
    assert set(rows) == set(means)  # every sample was a normal sample in some run
    for sample, mean in means.items():
        assert rows[sample]["aum"] == pytest.approx(mean, rel=1e-12, abs=1e-12)
        assert rows[sample]["mislabeled"] == any_flag[sample]
        assert rows[sample]["mislabeled_pooled"] == pooled_flag[sample]
        assert rows[sample]["runs"] + rows[sample]["threshold_runs"] == 2
    aums = combined.table.column("aum").to_pylist()
    assert aums == sorted(aums)
    assert combined.summary.flagged == sum(any_flag.values())
    assert combined.summary.never_scored == 0


def test_samples_never_scored_are_reported(tmp_path, rng):
    runs = two_runs(tmp_path, rng)
    only_first = combine_runs([runs[0].table], percentile=90)
    thresholds = runs[0].table.filter(runs[0].table["threshold_sample"]).column("sample_id")
    assert only_first.summary.never_scored == len(thresholds)
    tail = only_first.table.slice(only_first.table.num_rows - len(thresholds))
    assert set(tail.column("sample_id").to_pylist()) == set(thresholds.to_pylist())
    assert tail.column("aum").null_count == len(thresholds)
    assert tail.column("mislabeled").null_count == len(thresholds)


def test_combine_rejects_disagreeing_labels():
    a = pa.table(
        {
            "sample_id": [1],
            "label": [0],
            "aum": [1.0],
            "threshold_sample": [False],
            "mislabeled": [False],
        }
    )
    b = a.set_column(1, "label", pa.array([2]))
    with pytest.raises(aum_score.LogFormatError, match="sample 1"):
        combine_runs([a, b])


def test_combine_missing_column():
    with pytest.raises(aum_score.LogFormatError, match="threshold_sample"):
        combine_runs([pa.table({"sample_id": [1], "aum": [0.0]})], names=["r.parquet"])
