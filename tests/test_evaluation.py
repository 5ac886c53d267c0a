"""`evaluate`: metrics cross-checked against scikit-learn (ties included), the `evaluate` command
on a real scoring result, and bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pytest

import aum_score


def random_result(rng, n=600, classes=5, threshold=60, tie_step=0.25, flag_nulls=True):
    """A result table (ids shuffled, AUMs rounded so that many tie) and a true_label truth."""
    ids = rng.permutation(10 * n)[:n]
    true = rng.integers(0, classes, n)
    noisy = rng.random(n) < 0.25
    label = np.where(noisy, (true + rng.integers(1, classes, n)) % classes, true)
    is_threshold = np.zeros(n, bool)
    is_threshold[rng.choice(n, threshold, replace=False)] = True
    label = np.where(is_threshold, classes, label)
    aum = np.round((rng.normal(1.0, 1.0, n) - 2.0 * noisy) / tie_step) * tie_step
    flags = (aum < 0.0) ^ (rng.random(n) < 0.1)
    result = pa.table(
        {
            "sample_id": ids,
            "label": label,
            "aum": aum,
            "count": np.full(n, 5),
            "threshold_sample": is_threshold,
            "mislabeled": pa.array(flags, mask=is_threshold if flag_nulls else None),
        }
    )
    truth = pa.table({"sample_id": ids, "true_label": true})
    return result, truth


def sklearn_metrics(y, aum, flags=None):
    metrics = pytest.importorskip("sklearn.metrics")
    out = {}
    if flags is not None:
        out.update(
            precision=metrics.precision_score(y, flags, zero_division=0),
            recall=metrics.recall_score(y, flags, zero_division=0),
            f1=metrics.f1_score(y, flags, zero_division=0),
        )
    p, r, _ = metrics.precision_recall_curve(y, -aum)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * p * r / (p + r))
    out.update(
        auroc=metrics.roc_auc_score(y, -aum),
        average_precision=metrics.average_precision_score(y, -aum),
        best_f1=f1.max(),
    )
    return out


@pytest.mark.parametrize("tie_step", [0.25, 1.0, 1e-9])
def test_metrics_match_sklearn(rng, tie_step):
    pytest.importorskip("sklearn")
    for _ in range(5):
        result, truth = random_result(rng, tie_step=tie_step)
        # The truth in another order, with samples the result does not have.
        extra = pa.table({"sample_id": [10**9, 10**9 + 1], "true_label": [0, 1]})
        truth = pa.concat_tables([truth, extra]).take(rng.permutation(truth.num_rows + 2))
        ev = aum_score.evaluate(result, truth)
        keep = ~result["threshold_sample"].to_numpy(zero_copy_only=False)
        y = (result["label"].to_numpy() != truth_labels(result, truth))[keep]
        aum = result["aum"].to_numpy()[keep]
        flags = result["mislabeled"].to_numpy(zero_copy_only=False)[keep].astype(bool)
        assert ev.samples == keep.sum() and ev.excluded == (~keep).sum()
        assert ev.mislabeled == y.sum() and ev.flagged == flags.sum()
        want = sklearn_metrics(y, aum, flags)
        for name, value in want.items():
            assert getattr(ev, name) == pytest.approx(value, abs=1e-12), name
        # The reported cut-off reaches the best F1: flag AUM <= cut-off.
        cut = aum <= ev.best_f1_cutoff
        assert cut.sum() == ev.best_f1_flagged
        assert 2 * (cut & y).sum() / (cut.sum() + y.sum()) == pytest.approx(ev.best_f1)


def truth_labels(result, truth):
    ids = truth["sample_id"].to_pylist()
    where = {sid: i for i, sid in enumerate(ids)}
    true = truth["true_label"].to_numpy()
    return np.array([true[where[s]] for s in result["sample_id"].to_pylist()])


def test_is_mislabeled_truth_and_string_ids(rng):
    pytest.importorskip("sklearn")
    result, truth = random_result(rng)
    y = result["label"].to_numpy() != truth_labels(result, truth)
    # String ids in the result; the truth as a CSV reader would guess them: integers.
    result = result.set_column(0, "sample_id", result["sample_id"].cast(pa.string()))
    flags_truth = pa.table({"sample_id": truth["sample_id"], "is_mislabeled": y})
    a = aum_score.evaluate(result, flags_truth)
    b = aum_score.evaluate(result, truth.set_column(0, "sample_id", result["sample_id"]))
    assert a == b


def test_without_flags_ranking_still_computed(rng):
    pytest.importorskip("sklearn")
    result, truth = random_result(rng)
    result = result.set_column(5, "mislabeled", pa.nulls(result.num_rows, pa.bool_()))
    ev = aum_score.evaluate(result, truth)
    assert ev.flagged is None and ev.precision is None and ev.recall is None and ev.f1 is None
    keep = ~result["threshold_sample"].to_numpy(zero_copy_only=False)
    y = (result["label"].to_numpy() != truth_labels(result, truth))[keep]
    want = sklearn_metrics(y, result["aum"].to_numpy()[keep])
    assert ev.samples == keep.sum()
    for name, value in want.items():
        assert getattr(ev, name) == pytest.approx(value, abs=1e-12), name


def test_undefined_metrics():
    result = pa.table(
        {"sample_id": [1, 2, 3], "label": [0, 1, 1], "aum": [0.5, -1.0, 2.0]}
    ).append_column("mislabeled", pa.array([False, False, False]))
    clean = pa.table({"sample_id": [1, 2, 3], "true_label": [0, 1, 1]})
    ev = aum_score.evaluate(result, clean)
    assert ev.mislabeled == 0 and ev.auroc is None and ev.average_precision is None
    assert ev.best_f1 is None and (ev.precision, ev.recall, ev.f1) == (0.0, 0.0, 0.0)
    all_bad = pa.table({"sample_id": [1, 2, 3], "is_mislabeled": [True, True, True]})
    ev = aum_score.evaluate(result, all_bad)
    assert ev.auroc is None and ev.average_precision == 1.0 and ev.best_f1 == 1.0


def test_evaluate_errors():
    result = pa.table(
        {"sample_id": [1, 2, 3], "label": [0, 1, 1], "aum": [0.5, -1.0, 2.0]}
    ).append_column("mislabeled", pa.array([False, True, False]))
    with pytest.raises(aum_score.LogFormatError, match=r"truth: sample 3 of result is not in"):
        aum_score.evaluate(result, pa.table({"sample_id": [1, 2], "true_label": [0, 1]}))
    with pytest.raises(aum_score.LogFormatError, match=r"'true_label' or 'is_mislabeled'"):
        aum_score.evaluate(result, pa.table({"sample_id": [1, 2, 3], "label": [0, 1, 1]}))
    with pytest.raises(aum_score.LogFormatError, match=r"result: .*no column 'aum'"):
        aum_score.evaluate(result.drop_columns(["aum"]), result)
    with pytest.raises(aum_score.LogFormatError, match=r"no column 'mislabeled_pooled'"):
        aum_score.evaluate(result, result, flag_column="mislabeled_pooled")
    twice = pa.table({"sample_id": [1, 2, 3, 2], "true_label": [0, 1, 1, 0]})
    with pytest.raises(aum_score.LogFormatError, match=r"sample 2 appears more than once"):
        aum_score.evaluate(result, twice)


def make_real_result(cli, tmp_path, rng, n=1200, classes=6):
    """Clean labels -> inject-noise -> threshold-samples -> a logit log -> `aum-score score -o`."""
    ids = rng.permutation(n) + 1000
    aum_score.write_table(
        pa.table({"sample_id": ids, "label": rng.integers(0, classes, n)}), tmp_path / "clean.csv"
    )
    noisy, assigned = tmp_path / "noisy.parquet", tmp_path / "assigned.parquet"
    r = cli("inject-noise", "--labels", tmp_path / "clean.csv", "--rate", 0.3, "-o", noisy)
    assert r.exit_code == 0, r
    r = cli("threshold-samples", "--labels", noisy, "--seed", 1, "-o", assigned)
    assert r.exit_code == 0, r
    table = aum_score.read_table(assigned)
    true = np.array(truth_labels(table, aum_score.read_table(noisy)))
    with aum_score.LogitWriter(tmp_path / "logs") as writer:
        for _ in range(4):
            logits = rng.normal(size=(n, classes + 1)).astype(np.float32)
            logits[np.arange(n), true] += 1.5  # the network learns the true class
            writer.write(table["sample_id"].to_numpy(), logits, table["label"].to_numpy())
            writer.end_epoch()
    out = tmp_path / "aum.parquet"
    r = cli("score", tmp_path / "logs", "--threshold-class", classes, "-o", out, "-q")
    assert r.exit_code == 0, r
    return out, noisy


def test_evaluate_command_on_a_real_result(cli, cmd, tmp_path, rng):
    pytest.importorskip("sklearn")
    out, noisy = make_real_result(cli, tmp_path, rng)
    r = cli("evaluate", out, "--truth", noisy, "--json")
    assert r.exit_code == 0, r
    got = json.loads(r.stdout)
    result = aum_score.read_table(out)
    assert got == aum_score.evaluate(result, aum_score.read_table(noisy)).to_dict()
    keep = result["mislabeled"].is_valid().to_numpy(zero_copy_only=False)
    y = (result["label"].to_numpy() != truth_labels(result, aum_score.read_table(noisy)))[keep]
    flags = result["mislabeled"].to_numpy(zero_copy_only=False)[keep].astype(bool)
    for name, value in sklearn_metrics(y, result["aum"].to_numpy()[keep], flags).items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert got["samples"] == 1200 - 1200 // 7 and got["auroc"] > 0.9
    # The text table: one aligned line per metric.
    r = cmd("evaluate", out, "--truth", noisy)
    assert r.exit_code == 0, r
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(got)
    assert len({len(line) for line in lines}) == 1
    assert re.search(r"^auroc\s+0\.\d{4}$", r.stdout, re.MULTILINE)


def test_evaluate_command_bad_input(cli, tmp_path, rng):
    out, noisy = make_real_result(cli, tmp_path, rng, n=300)

    def fails(*args, patterns):
        r = cli("evaluate", *args)
        assert r.exit_code != 0 and r.exception is None, r
        errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and r.stdout == "", r
        for pattern in patterns:
            assert re.search(pattern, errors[0]), (pattern, errors[0])

    partial = tmp_path / "partial.csv"
    truth = aum_score.read_table(noisy)
    aum_score.write_table(truth.slice(1), partial)
    missing_id = truth["sample_id"][0].as_py()
    fails(out, "--truth", partial, patterns=[r"partial\.csv", rf"\b{missing_id}\b"])
    fails(out, "--truth", tmp_path / "clean.csv", patterns=[r"clean\.csv", "true_label"])
    fails(tmp_path / "clean.csv", "--truth", noisy, patterns=[r"clean\.csv", "'aum'"])
    fails(out, "--truth", noisy, "--flag-column", "nope", patterns=[r"aum\.parquet", "'nope'"])
    fails(out, "--truth", tmp_path / "nope.csv", patterns=[r"nope\.csv"])
