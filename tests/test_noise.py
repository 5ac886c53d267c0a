"""Threshold-sample assignment, noise injection (checked statistically), their commands, and the
side-table reader they use."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import aum_score
from aum_score.tables import read_table, require_columns


def write_labels(path, ids, labels, **extra):
    aum_score.write_table(pa.table({"sample_id": ids, "label": labels, **extra}), path)
    return path


def by_id(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table["sample_id"]))


def only_error_line(r, *patterns):
    assert r.exit_code != 0 and r.exception is None, r
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, r
    for pattern in patterns:
        assert re.search(pattern, errors[0]), (pattern, errors[0])


# ------------------------------------------------------------------------------ threshold samples


def test_assignment_gives_class_c_to_n_over_c_plus_1(rng):
    n, c = 1100, 10
    ids = rng.permutation(5 * n)[:n]
    labels = rng.integers(0, c, n)
    t = aum_score.assign_threshold_samples(ids, labels, seed=3)
    assert t.column_names == ["sample_id", "label", "original_label", "threshold_sample"]
    chosen = t["threshold_sample"].to_numpy(zero_copy_only=False)
    assert chosen.sum() == n // (c + 1) == 100
    np.testing.assert_array_equal(t["sample_id"].to_numpy(), ids)  # input order kept
    np.testing.assert_array_equal(t["original_label"].to_numpy(), labels)
    np.testing.assert_array_equal(t["label"].to_numpy(), np.where(chosen, c, labels))
    assert aum_score.threshold_class_of(t) == c


def test_assignment_is_deterministic_and_independent_of_row_order(rng):
    n = 500
    ids = np.array([f"img_{i:04d}" for i in rng.permutation(n)])
    labels = rng.integers(0, 4, n)
    a = aum_score.assign_threshold_samples(ids, labels, seed=7)
    assert a.equals(aum_score.assign_threshold_samples(ids, labels, seed=7))
    shuffle = rng.permutation(n)
    b = aum_score.assign_threshold_samples(ids[shuffle], labels[shuffle], seed=7)
    assert by_id(a).equals(by_id(b))
    other = aum_score.assign_threshold_samples(ids, labels, seed=8)
    assert not a["threshold_sample"].equals(other["threshold_sample"])


def test_sets_are_disjoint_slices_of_one_permutation(rng):
    n, c = 1000, 9  # count 100: sets 1..10 partition the samples exactly
    ids, labels = np.arange(n) * 2 - 500, rng.integers(0, c, n)
    sets = [
        aum_score.assign_threshold_samples(ids, labels, seed=1, set_index=k)["threshold_sample"]
        .to_numpy(zero_copy_only=False)
        .astype(int)
        for k in range(1, 11)
    ]
    np.testing.assert_array_equal(np.sum(sets, axis=0), np.ones(n))  # disjoint and covering
    with pytest.raises(aum_score.LogFormatError, match=r"set 11 .*1100 samples; there are 1000"):
        aum_score.assign_threshold_samples(ids, labels, seed=1, set_index=11)


def test_count_rules(rng):
    n = 1003
    ids, labels = np.arange(n), rng.integers(0, 5, n)

    def chosen(**kwargs):
        t = aum_score.assign_threshold_samples(ids, labels, **kwargs)
        return int(t["threshold_sample"].to_numpy(zero_copy_only=False).sum()), t

    assert chosen()[0] == n // 6
    assert chosen(count=37)[0] == 37
    assert chosen(fraction=0.1)[0] == round(0.1 * n)
    count, t = chosen(num_classes=7)  # more classes than the labels show
    assert count == n // 8 and aum_score.threshold_class_of(t) == 7
    with pytest.raises(aum_score.LogFormatError, match="not both"):
        chosen(count=5, fraction=0.1)
    with pytest.raises(aum_score.LogFormatError, match=r"outside \[0, 3\)"):
        chosen(num_classes=3)
    with pytest.raises(aum_score.LogFormatError, match="0 threshold samples"):
        aum_score.assign_threshold_samples([1, 2, 3], [0, 1, 2])


def test_assignment_rejects_duplicates_and_nulls():
    with pytest.raises(aum_score.LogFormatError, match=r"sample 5 appears twice"):
        aum_score.assign_threshold_samples([1, 5, 2, 5], [0, 1, 0, 1], count=1)
    with pytest.raises(aum_score.LogFormatError, match=r"row 1 is null"):
        aum_score.assign_threshold_samples(pa.array([1, None, 2]), [0, 1, 0], count=1)


def test_threshold_class_of():
    plain = pa.table({"sample_id": [1, 2, 3], "label": [0, 1, 2]})
    assert aum_score.threshold_class_of(plain) is None
    none_true = plain.append_column("threshold_sample", pa.array([False, None, False]))
    assert aum_score.threshold_class_of(none_true) is None
    good = pa.table(
        {"sample_id": [1, 2, 3], "label": [0, 5, 5], "threshold_sample": [False, True, True]}
    )
    assert aum_score.threshold_class_of(good) == 5
    mixed = good.set_column(1, "label", pa.array([0, 5, 4]))
    with pytest.raises(aum_score.LogFormatError, match=r"x\.csv: .*labels 4, 5"):
        aum_score.threshold_class_of(mixed, "x.csv")
    clash = good.set_column(1, "label", pa.array([5, 5, 5]))
    with pytest.raises(aum_score.LogFormatError, match=r"row 0: label 5 is the threshold class"):
        aum_score.threshold_class_of(clash)
    as_ints = good.set_column(2, "threshold_sample", pa.array([0, 1, 1]))  # CSV tools' 0/1
    assert aum_score.threshold_class_of(as_ints) == 5


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".arrow"])
def test_threshold_samples_command(cli, tmp_path, rng, suffix):
    n = 400
    ids, labels = rng.permutation(n), rng.integers(0, 3, n)
    src = write_labels(tmp_path / "labels.csv", ids, labels)
    out = tmp_path / f"assigned{suffix}"
    r = cli("threshold-samples", "--labels", src, "--seed", 4, "--set", 2, "-o", out)
    assert r.exit_code == 0, r
    assert re.search(r"100 of 400 samples .*label 3; train with 4 outputs", r.stderr), r
    got = read_table(out)
    want = aum_score.assign_threshold_samples(ids, labels, seed=4, set_index=2)
    assert got.select(want.column_names).equals(want)
    assert aum_score.threshold_class_of(got) == 3
    # An assigned file is not a source: assigning again would make a second fake class.
    r = cli("threshold-samples", "--labels", out, "-o", tmp_path / "again.parquet")
    only_error_line(r, re.escape(out.name), "already has threshold samples")
    assert not (tmp_path / "again.parquet").exists()


def test_threshold_samples_installed_command(cmd, tmp_path):
    src = write_labels(tmp_path / "labels.parquet", np.arange(120), np.arange(120) % 5)
    out = tmp_path / "assigned.feather"
    r = cmd("threshold-samples", "--labels", src, "--fraction", "0.25", "-o", out)
    assert r.exit_code == 0, r
    assert int(pc.sum(read_table(out)["threshold_sample"]).as_py()) == 30


# ------------------------------------------------------------------------------- noise injection


def realised(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    return table["true_label"].to_numpy(), table["label"].to_numpy()


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.4])
@pytest.mark.parametrize("kind", ["uniform", "flip"])
def test_realised_noise_rate_is_binomial(rate, kind):
    n, c = 200_000, 10
    labels = np.random.default_rng(0).integers(0, c, n)
    true, noisy = realised(aum_score.inject_noise(np.arange(n), labels, rate=rate, kind=kind))
    np.testing.assert_array_equal(true, labels)
    changed = int((true != noisy).sum())
    sigma = np.sqrt(n * rate * (1 - rate))
    assert abs(changed - n * rate) < 5 * sigma, (changed, n * rate, sigma)
    # Per class too: the transition keeps each class with probability 1 - rate.
    for k in range(c):
        m = true == k
        kept = (noisy[m] == k).sum()
        assert abs(kept - m.sum() * (1 - rate)) < 5 * np.sqrt(m.sum() * rate * (1 - rate))


def test_flip_is_exactly_c_to_c_plus_1():
    n, c = 20_000, 7
    labels = np.random.default_rng(1).integers(0, c, n)
    true, noisy = realised(aum_score.inject_noise(np.arange(n), labels, rate=0.3, kind="flip"))
    changed = true != noisy
    np.testing.assert_array_equal(noisy[changed], (true[changed] + 1) % c)
    assert set(zip(true[changed] % c, noisy[changed])) == {(k, (k + 1) % c) for k in range(c)}


def test_uniform_spreads_evenly_over_the_other_classes():
    stats = pytest.importorskip("scipy.stats")
    n, c = 300_000, 6
    labels = np.random.default_rng(2).integers(0, c, n)
    true, noisy = realised(aum_score.inject_noise(np.arange(n), labels, rate=0.5, seed=5))
    changed = true != noisy
    for k in range(c):
        to = noisy[changed & (true == k)]
        counts = np.bincount(to, minlength=c)
        assert counts[k] == 0  # never "changed" to itself
        others = np.delete(counts, k)
        assert stats.chisquare(others).pvalue > 1e-4, (k, others)


def test_noise_determinism_and_edge_rates(rng):
    n = 3000
    ids = np.array([f"s{i}" for i in rng.permutation(n)])
    labels = rng.integers(0, 5, n)
    a = aum_score.inject_noise(ids, labels, rate=0.3, seed=11)
    assert a.equals(aum_score.inject_noise(ids, labels, rate=0.3, seed=11))
    shuffle = rng.permutation(n)
    b = aum_score.inject_noise(ids[shuffle], labels[shuffle], rate=0.3, seed=11)
    assert by_id(a).equals(by_id(b))
    assert not a.equals(aum_score.inject_noise(ids, labels, rate=0.3, seed=12))
    # One seed and rate corrupt the same samples whatever the kind.
    f = aum_score.inject_noise(ids, labels, rate=0.3, seed=11, kind="flip")
    np.testing.assert_array_equal(np.not_equal(*realised(a)), np.not_equal(*realised(f)))
    true, noisy = realised(aum_score.inject_noise(ids, labels, rate=0.0))
    np.testing.assert_array_equal(true, noisy)
    true, noisy = realised(aum_score.inject_noise(ids, labels, rate=1.0))
    assert (true != noisy).all()
    with pytest.raises(aum_score.LogFormatError, match="kind"):
        aum_score.inject_noise(ids, labels, rate=0.1, kind="pairs")
    with pytest.raises(aum_score.LogFormatError, match="at least 2 classes"):
        aum_score.inject_noise([1, 2], [0, 0], rate=0.1)


def test_inject_noise_command(cli, tmp_path, rng):
    n = 5000
    ids, labels = rng.permutation(n), rng.integers(0, 10, n)
    src = write_labels(tmp_path / "clean.parquet", ids, labels)
    out = tmp_path / "noisy.csv"
    args = ["--labels", src, "--rate", 0.2, "--kind", "flip", "--seed", 3, "-o", out]
    r = cli("inject-noise", *args)
    assert r.exit_code == 0, r
    assert re.search(r"changed \d+ of 5000 labels", r.stderr), r
    want = aum_score.inject_noise(ids, labels, rate=0.2, kind="flip", seed=3)
    assert read_table(out).equals(want)


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("command", ["threshold-samples", "inject-noise"])
def test_bad_labels_files(cli, tmp_path, command):
    extra = ["--rate", "0.1"] if command == "inject-noise" else []
    out = tmp_path / "out.parquet"

    def run(path):
        return cli(command, "--labels", path, *extra, "-o", out)

    (tmp_path / "klass.csv").write_text("sample_id,klass\n1,0\n2,1\n")
    only_error_line(run(tmp_path / "klass.csv"), r"klass\.csv", "'label'")
    (tmp_path / "float.csv").write_text("sample_id,label\n1,0.5\n2,1\n")
    only_error_line(run(tmp_path / "float.csv"), r"float\.csv", "'label'", "integers")
    (tmp_path / "null.csv").write_text("sample_id,label\n1,0\n2,\n3,1\n")
    only_error_line(run(tmp_path / "null.csv"), r"null\.csv", "'label'", "row 1")
    (tmp_path / "dup.csv").write_text("sample_id,label\n1,0\n2,1\n1,1\n")
    only_error_line(run(tmp_path / "dup.csv"), r"dup\.csv", r"sample 1 appears twice")
    (tmp_path / "neg.csv").write_text("sample_id,label\n1,0\n2,-1\n")
    only_error_line(run(tmp_path / "neg.csv"), r"neg\.csv", r"row 1: label -1")
    (tmp_path / "broken.arrow").write_bytes(b"ARROW1\x00\x00not really")
    only_error_line(run(tmp_path / "broken.arrow"), r"broken\.arrow")
    only_error_line(run(tmp_path / "nope.parquet"), r"nope\.parquet")
    only_error_line(run(tmp_path / "labels.txt"), r"labels\.txt")
    assert not out.exists()
    r = cli(command, "--labels", tmp_path / "klass.csv", *extra, "-o", tmp_path / "out.xlsx")
    only_error_line(r, r"out\.xlsx")


def test_set_past_the_end_is_an_error(cli, tmp_path):
    src = write_labels(tmp_path / "labels.csv", np.arange(50), np.arange(50) % 4)
    r = cli("threshold-samples", "--labels", src, "--set", 6, "-o", tmp_path / "out.parquet")
    only_error_line(r, r"labels\.csv", "set 6")
    both = ["--count", 3, "--fraction", 0.1]
    r = cli("threshold-samples", "--labels", src, *both, "-o", tmp_path / "out.parquet")
    assert r.exit_code != 0 and "not both" in r.stderr, r
    assert not (tmp_path / "out.parquet").exists()


# ----------------------------------------------------------------------------------- read_table


def test_read_table_formats(tmp_path):
    from pyarrow import feather, ipc

    table = pa.table({"sample_id": ["a", "b"], "label": [1, 2]})
    aum_score.write_table(table, tmp_path / "t.parquet")
    aum_score.write_table(table, tmp_path / "t.csv")
    feather.write_feather(table, tmp_path / "t.feather")
    for name in ("s.arrows", "s.arrow"):  # stream format, whatever the extension
        with ipc.new_stream(tmp_path / name, table.schema) as w:
            w.write_table(table)
    for name in ("t.parquet", "t.csv", "t.feather", "s.arrows", "s.arrow"):
        assert read_table(tmp_path / name).equals(table), name
    with pytest.raises(aum_score.LogFormatError, match=r"t\.json: file must be"):
        read_table(tmp_path / "t.json")
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(aum_score.LogFormatError, match=r"empty\.parquet: cannot read"):
        read_table(tmp_path / "empty.parquet")
    with pytest.raises(aum_score.LogFormatError, match=r"t\.csv: file has no column 'true_label'"):
        require_columns(table, tmp_path / "t.csv", "sample_id", "true_label")


def test_csv_ids_round_trip_exactly(cli, tmp_path):
    # "007" must not become 7: the commands write the ids back for the trainer to look up.
    (tmp_path / "padded.csv").write_text("sample_id,label\n007,1\n008,0\n010,2\n")
    (tmp_path / "plain.csv").write_text("sample_id,label\n7,1\n-8,0\n10,2\n")
    assert read_table(tmp_path / "padded.csv")["sample_id"].to_pylist() == ["007", "008", "010"]
    assert read_table(tmp_path / "plain.csv")["sample_id"].to_pylist() == [7, -8, 10]
    out = tmp_path / "noisy.csv"
    r = cli("inject-noise", "--labels", tmp_path / "padded.csv", "--rate", 0.5, "-o", out)
    assert r.exit_code == 0, r
    assert out.read_text().splitlines()[1].startswith('"007",')
