"""`filter_result` and `aum-score filter`: kept and removed ids, the retraining batch size."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest

import aum_score
from aum_score.filtering import suggested_batch_size


def result_table(rng, n=400):
    ids = rng.permutation(n) * 7
    is_threshold = rng.random(n) < 0.1
    flags = rng.random(n) < 0.25
    return pa.table(
        {
            "sample_id": ids,
            "label": np.where(is_threshold, 4, rng.integers(0, 4, n)),
            "aum": rng.normal(size=n),
            "threshold_sample": is_threshold,
            "mislabeled": pa.array(flags, mask=is_threshold),
        }
    )


def test_filter_result_splits_by_flag(rng):
    result = result_table(rng)
    f = aum_score.filter_result(result, batch_size=128)
    removed_ids = set(result.filter(result["mislabeled"].fill_null(False))["sample_id"].to_pylist())
    all_ids = set(result["sample_id"].to_pylist())
    assert set(f.removed["sample_id"].to_pylist()) == removed_ids
    assert set(f.kept["sample_id"].to_pylist()) == all_ids - removed_ids
    assert f.kept.column_names == ["sample_id", "label"]
    kept_ids = f.kept["sample_id"].to_numpy()
    assert (np.diff(kept_ids) > 0).all()  # sample-id order
    assert f.kept_fraction == pytest.approx(1 - len(removed_ids) / result.num_rows)
    assert f.batch_size == round(128 * f.kept_fraction)
    # Threshold samples are kept (null flag) but without their fake class as a label.
    thr = set(result.filter(result["threshold_sample"])["sample_id"].to_pylist())
    assert f.threshold_samples == len(thr)
    kept = dict(zip(f.kept["sample_id"].to_pylist(), f.kept["label"].to_pylist()))
    assert all(kept[s] is None for s in thr)
    assert None not in f.removed["label"].to_pylist()
    assert 4 not in kept.values()


def test_batch_size_rule():
    assert suggested_batch_size(256, 0.75) == 192  # the example
    assert suggested_batch_size(100, 0.625) == 63  # half rounds up
    assert suggested_batch_size(4, 0.01) == 1
    result = pa.table(
        {"sample_id": np.arange(8), "mislabeled": [True, True, False, False] + [None] * 4}
    )
    f = aum_score.filter_result(result, batch_size=256)
    assert f.batch_size == 192 and f.kept_fraction == 0.75 and f.kept.column_names == ["sample_id"]
    assert aum_score.filter_result(result).batch_size is None
    with pytest.raises(aum_score.LogFormatError, match="batch size"):
        aum_score.filter_result(result, batch_size=0)


def test_filter_errors():
    result = pa.table({"sample_id": [1, 2], "mislabeled": [True, False]})
    with pytest.raises(aum_score.LogFormatError, match=r"no column 'mislabeled_pooled'"):
        aum_score.filter_result(result, flag_column="mislabeled_pooled")
    with pytest.raises(aum_score.LogFormatError, match=r"'mislabeled' has type double"):
        aum_score.filter_result(result.set_column(1, "mislabeled", pa.array([0.5, 1.0])))


def test_filter_command(cli, cmd, tmp_path, rng):
    result = result_table(rng)
    src = tmp_path / "aum.parquet"
    aum_score.write_table(result, src)
    r = cli("filter", src, "-o", tmp_path / "kept.csv", "--batch-size", 256)
    assert r.exit_code == 0, r
    want = aum_score.filter_result(result, batch_size=256)
    assert aum_score.read_table(tmp_path / "kept.csv").equals(want.kept)
    assert aum_score.read_table(tmp_path / "kept.removed.csv").equals(want.removed)
    assert re.search(rf"kept {want.kept.num_rows} of 400 samples", r.stdout), r
    assert f"batch size: 256 -> {want.batch_size} " in r.stdout, r
    # Another flag column and an explicit removed file, through the installed command.
    pooled = result.append_column("mislabeled_pooled", pa.array(np.arange(400) < 100))
    aum_score.write_table(pooled, src)
    kept, removed = tmp_path / "k.arrow", tmp_path / "r.parquet"
    r = cmd("filter", src, "-o", kept, "--removed", removed, "--flag-column", "mislabeled_pooled")
    assert r.exit_code == 0, r
    assert aum_score.read_table(removed).num_rows == 100
    assert aum_score.read_table(kept).num_rows == 300
    assert "batch size" not in r.stdout


def test_filter_command_bad_input(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,aum\n1,0.5\n")
    r = cli("filter", bad, "-o", tmp_path / "out.parquet")
    assert r.exit_code != 0 and r.exception is None, r
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "bad.csv" in errors[0] and "'mislabeled'" in errors[0], r
    r = cli("filter", tmp_path / "missing.parquet", "-o", tmp_path / "out.parquet")
    assert r.exit_code != 0 and "missing.parquet" in r.stderr, r
    r = cli("filter", bad, "-o", tmp_path / "out.txt")
    assert r.exit_code != 0 and "out.txt" in r.stderr, r
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("out")]
