"""The memorisation monitor, --epochs auto, the cut-off's bootstrap interval and its warning."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reference import Rows, make_epochs, reference_flags, write_log

import aum_score
from aum_score.memorisation import auto_window_end, sparkline
from aum_score.thresholds import bootstrap_thresholds, flag_mislabeled, fragility_warning

C = 5  # class 4 is the threshold class


def memorising_log(rng, n=200, epochs=12, onset=6, level=0.9):
    """Threshold samples (label 4) get negative margins until `onset`, then `level` of them
    positive; normal samples positive throughout. Exact fitted fractions are known."""
    labels = rng.integers(0, C - 1, n)
    labels[: n // 5] = C - 1
    out = {}
    for e in range(epochs):
        z = np.zeros((n, C), np.float32)
        z[np.arange(n), labels] = 2.0
        thr = np.flatnonzero(labels == C - 1)
        z[thr, C - 1] = -1.0  # the threshold class logit is below the others: margin -1
        if e >= onset:
            fitted = thr[: int(round(level * len(thr)))]
            z[fitted, C - 1] = 3.0
        order = rng.permutation(n)
        out[e] = Rows(np.arange(n)[order], z[order], labels[order])
    return out, labels


def test_monitor_counts_fitted_threshold_samples(tmp_path, rng):
    epochs, labels = memorising_log(rng)
    write_log(tmp_path, epochs)
    result = aum_score.score(tmp_path, threshold_class=C - 1)
    monitor = result.monitor.to_pydict()
    assert monitor["epoch"] == list(range(12))
    assert monitor["threshold_rows"] == [40] * 12
    assert monitor["threshold_fitted"] == [0.0] * 6 + [36 / 40] * 6
    assert monitor["threshold_mean_margin"][0] == pytest.approx(-1.0)
    assert monitor["rows"] == [200] * 12


@pytest.mark.parametrize("epoch_in", ["metadata", "column", "filename"])
def test_epochs_auto_ends_at_memorisation(tmp_path, rng, epoch_in):
    epochs, _ = memorising_log(rng, onset=7)
    write_log(tmp_path, epochs, epoch_in=epoch_in)
    auto = aum_score.score(tmp_path, threshold_class=C - 1, epochs="auto")
    fixed = aum_score.score(tmp_path, threshold_class=C - 1, epochs=":7")
    assert auto.summary.epoch_window == [None, 7]
    assert auto.table.equals(fixed.table)
    # The monitor still covers the whole run, showing why the window ends.
    assert auto.monitor.num_rows == 12


def test_epochs_start_auto(tmp_path, rng):
    epochs, _ = memorising_log(rng, onset=7)
    write_log(tmp_path, epochs)
    auto = aum_score.score(tmp_path, threshold_class=C - 1, epochs="2:auto")
    assert auto.summary.epoch_window == [2, 7]
    assert auto.table.equals(aum_score.score(tmp_path, threshold_class=C - 1, epochs="2:7").table)


def test_epochs_auto_keeps_everything_without_memorisation(tmp_path, rng):
    epochs, _ = memorising_log(rng, onset=99)
    write_log(tmp_path, epochs)
    auto = aum_score.score(tmp_path, threshold_class=C - 1, epochs="auto")
    assert auto.summary.epoch_window == [None, None]
    assert auto.table.equals(aum_score.score(tmp_path, threshold_class=C - 1).table)


def test_epochs_auto_needs_threshold_samples(tmp_path, rng):
    write_log(tmp_path, make_epochs(rng))
    with pytest.raises(aum_score.LogFormatError, match="threshold"):
        aum_score.score(tmp_path, epochs="auto")


def test_auto_window_end_rule():
    import pyarrow as pa

    def monitor(fitted, rows=None):
        rows = rows or [10] * len(fitted)
        return pa.table(
            {"epoch": list(range(len(fitted))), "threshold_rows": rows, "threshold_fitted": fitted}
        )

    # Epoch 0 only sets the baseline; the window ends where the fraction rises 0.1 above the
    # lowest value so far.
    assert auto_window_end(monitor([0.9, 0.0, 0.05, 0.2, 0.7])) == 3
    assert auto_window_end(monitor([0.3, 0.3, 0.35, 0.39, 0.38])) is None  # few classes: high base
    assert auto_window_end(monitor([0.3, 0.3, 0.35, 0.45])) == 3
    assert auto_window_end(monitor([0.0, 0.05, 0.2], rows=[10, 0, 10])) == 2  # no rows: skipped
    assert auto_window_end(monitor([0.0])) is None
    assert auto_window_end(monitor([0.0, 0.5]), rise=0.6) is None


def test_scorer_monitor_and_state_roundtrip(rng):
    scorer = aum_score.Scorer(C, threshold_class=C - 1)
    epochs, _ = memorising_log(rng, epochs=4, onset=2)
    for e in sorted(epochs):
        rows = epochs[e]
        scorer.update(rows.logits, rows.labels, rows.sample_ids)
        scorer.end_epoch()
    monitor = scorer.result().monitor
    assert monitor.column("epoch").to_pylist() == [0, 1, 2, 3]
    assert monitor.column("threshold_fitted").to_pylist() == [0.0, 0.0, 0.9, 0.9]
    again = aum_score.Scorer.from_bytes(scorer.to_bytes(), threshold_class=C - 1)
    assert again.result().monitor.equals(monitor)
    assert again.result().table.equals(scorer.result().table)


def test_sparkline():
    assert sparkline([0.0, 0.5, 1.0, None]) == "▁▅█ "


def test_cli_monitor_and_json(cli, tmp_path, rng):
    epochs, _ = memorising_log(rng, onset=7)
    write_log(tmp_path, epochs)
    r = cli(tmp_path, "--threshold-class", "4", "--monitor", "--top", "3")
    assert r.exit_code == 0, r
    assert "threshold fitted" in r.stdout and "(after the window)" not in r.stdout
    r = cli(tmp_path, "--threshold-class", "4", "--epochs", "auto", "--json")
    assert r.exit_code == 0, r
    report = json.loads(r.stdout)
    assert report["epoch_window"] == [None, 7]
    assert [m["epoch"] for m in report["monitor"]] == list(range(12))


# --- the cut-off: bootstrap interval, flag_rate, fragility warning ------------------------------


def test_bootstrap_interval_and_flag_rate(tmp_path, rng):
    epochs = make_epochs(rng, n_samples=300, num_classes=C, n_epochs=3)
    write_log(tmp_path, epochs)
    result = aum_score.score(tmp_path, threshold_class=C - 1, percentile=90)
    table = result.table.to_pydict()
    low, high = result.summary.threshold_interval
    assert low <= result.summary.threshold <= high
    for aum, thr, rate in zip(table["aum"], table["threshold_sample"], table["flag_rate"]):
        if thr:
            assert rate is None
        else:
            assert 0.0 <= rate <= 1.0
            if aum < low:
                assert rate > 0.9
            if aum >= high:
                assert rate < 0.1
    again = aum_score.score(tmp_path, threshold_class=C - 1, percentile=90)
    assert again.table.equals(result.table)  # the bootstrap is seeded: deterministic
    none = aum_score.score(tmp_path, threshold_class=C - 1, percentile=90, bootstrap=0)
    assert "flag_rate" not in none.table.column_names


def test_bootstrap_cutoffs_follow_the_rule():
    rng = np.random.default_rng(1)
    aums = rng.normal(size=50)
    cutoffs = bootstrap_thresholds(aums, 90.0, rounds=20, seed=3)
    # Each resample's cut-off is what flag_mislabeled computes on that resample.
    again = np.random.default_rng(3).integers(0, 50, size=(20, 50))
    for cutoff, idx in zip(cutoffs, again):
        _, expected = flag_mislabeled(aums[idx], np.ones(50, bool), 90.0)
        assert cutoff == expected


def test_flags_still_follow_reference_rule_with_bootstrap(tmp_path, rng):
    epochs = make_epochs(rng, n_samples=200, num_classes=C, n_epochs=2)
    write_log(tmp_path, epochs)
    table = aum_score.score(tmp_path, threshold_class=C - 1, percentile=95).table.to_pydict()
    is_thr = np.array(table["threshold_sample"])
    expected = reference_flags(np.array(table["aum"]), is_thr, 95)
    assert table["mislabeled"] == expected


def test_fragility_warning():
    assert "2nd-largest" in fragility_warning(163, 99.0)
    assert fragility_warning(1000, 99.0) is None
    assert fragility_warning(100, 90.0) is None
    assert fragility_warning(0, 99.0) is None


def test_fragile_cutoff_warns_in_api_and_cli(tmp_path, rng, cli):
    epochs = make_epochs(rng, n_samples=100, num_classes=C, n_epochs=2)
    write_log(tmp_path, epochs)
    with pytest.warns(UserWarning, match="threshold samples: the 99th-percentile cut-off"):
        aum_score.score(tmp_path, threshold_class=C - 1)
    r = cli(tmp_path, "--threshold-class", "4", "--json")
    assert r.exit_code == 0, r
    assert "Warning: only" in r.stderr
    assert json.loads(r.stdout)["warnings"]
