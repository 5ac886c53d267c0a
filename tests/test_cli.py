"""The `aum-score` command: default command, outputs, --json, --epochs, help, atomic output."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyarrow import feather, ipc
from reference import (
    RESULT_COLUMNS,
    assert_matches_reference,
    check_flags,
    make_epochs,
    rows_of,
    write_log,
)

import aum_score


@pytest.fixture
def log(tmp_path):
    rng = np.random.default_rng(11)
    epochs = make_epochs(rng, n_samples=200, num_classes=4, n_epochs=4)
    write_log(tmp_path / "log", epochs, batches_per_file=2)
    return tmp_path / "log", epochs


def read_any(path):
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix in (".arrow", ".feather"):
        try:
            with ipc.open_file(str(path)) as f:
                return f.read_all()
        except pa.ArrowInvalid:
            return feather.read_table(str(path))
    if path.suffix == ".csv":
        types = {
            "sample_id": pa.int64(),
            "label": pa.int64(),
            "aum": pa.float64(),
            "count": pa.int64(),
            "threshold_sample": pa.bool_(),
            "mislabeled": pa.bool_(),
        }
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    raise ValueError(path)


def test_default_command_is_score(cli, tmp_path, log):
    logdir, _ = log
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    r1 = cli(logdir, "-o", a, "--threshold-class", "3")
    r2 = cli("score", logdir, "-o", b, "--threshold-class", "3")
    assert r1.exit_code == 0 and r1.exception is None, r1
    assert r2.exit_code == 0 and r2.exception is None, r2
    ta, tb = pq.read_table(a), pq.read_table(b)
    assert ta.num_rows == 200
    assert ta.equals(tb)


def test_installed_command_default_and_score(cmd, tmp_path, log):
    logdir, epochs = log
    r = cmd(logdir, "-o", tmp_path / "a.parquet")
    assert r.exit_code == 0, r
    assert_matches_reference(pq.read_table(tmp_path / "a.parquet"), rows_of(epochs))
    r = cmd("score", logdir, "-o", tmp_path / "b.parquet")
    assert r.exit_code == 0, r
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".arrow", ".feather"])
def test_outputs_read_back_equal_score_table(cli, tmp_path, log, ext):
    logdir, epochs = log
    out = tmp_path / f"result{ext}"
    r = cli("score", logdir, "-o", out, "--threshold-class", "3", "--percentile", "90")
    assert r.exit_code == 0, r
    expected = aum_score.score(logdir, threshold_class=3, percentile=90).table
    got = read_any(out)
    assert got.column_names[:6] == RESULT_COLUMNS
    if ext == ".csv":
        # Text round trip: same values; floats must survive it exactly (shortest round-trip repr).
        for col in RESULT_COLUMNS:
            assert got.column(col).to_pylist() == expected.column(col).to_pylist(), col
    else:
        assert got.select(RESULT_COLUMNS).equals(expected.select(RESULT_COLUMNS))
    assert_matches_reference(got, rows_of(epochs))
    check_flags(got, 3, 90.0)
    # No temporary files left next to the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["log", out.name])


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".arrow"])
def test_result_write(tmp_path, log, ext):
    logdir, _ = log
    res = aum_score.score(logdir, threshold_class=3)
    out = tmp_path / f"w{ext}"
    res.write(out)
    got = read_any(out)
    for col in RESULT_COLUMNS:
        assert got.column(col).to_pylist() == res.table.column(col).to_pylist(), col


@pytest.mark.parametrize("ext", [".parquet", ".arrow"])
def test_all_null_mislabeled_keeps_bool_type(cli, tmp_path, log, ext):
    logdir, _ = log
    out = tmp_path / f"r{ext}"
    r = cli(logdir, "-o", out)  # no threshold class: mislabeled is all null
    assert r.exit_code == 0, r
    got = read_any(out)
    assert got.schema.field("mislabeled").type == pa.bool_()
    assert got.column("mislabeled").null_count == got.num_rows


def test_several_log_arguments(cli, tmp_path):
    rng = np.random.default_rng(4)
    epochs = make_epochs(rng, n_epochs=3)
    paths = write_log(tmp_path / "log", epochs)
    out = tmp_path / "r.parquet"
    # Two files of the log: epochs 0 and 2 only.
    r = cli(paths[0], paths[2], "-o", out)
    assert r.exit_code == 0, r
    assert_matches_reference(pq.read_table(out), rows_of(epochs, lambda e: e in (0, 2)))


def test_string_ids_csv_output(cli, tmp_path):
    rng = np.random.default_rng(5)
    epochs = make_epochs(rng, n_epochs=2, id_kind="str")
    write_log(tmp_path / "log", epochs)
    out = tmp_path / "r.csv"
    r = cli(tmp_path / "log", "-o", out)
    assert r.exit_code == 0, r
    got = pacsv.read_csv(
        out, convert_options=pacsv.ConvertOptions(column_types={"sample_id": pa.string()})
    )
    assert set(got.column("sample_id").to_pylist()) == set(rows_of(epochs).sample_ids.tolist())


def test_json_summary(cli, log):
    logdir, epochs = log
    r = cli("score", logdir, "--json", "--threshold-class", "3")
    assert r.exit_code == 0, r
    d = json.loads(r.stdout)  # the whole of stdout is one JSON object
    assert isinstance(d, dict)
    for key in (
        "samples",
        "rows",
        "epochs",
        "classes",
        "threshold",
        "flagged",
        "seconds",
        "rows_per_second",
    ):
        assert key in d, key
    rows = rows_of(epochs)
    assert d["samples"] == 200
    assert d["rows"] == len(rows)
    assert d["epochs"] == 4
    assert d["classes"] == 4
    res = aum_score.score(logdir, threshold_class=3)
    assert d["flagged"] == res.summary.flagged > 0
    assert d["threshold"] == pytest.approx(res.summary.threshold)


def test_json_with_output_file(cli, tmp_path, log):
    logdir, _ = log
    out = tmp_path / "o.parquet"
    r = cli(logdir, "--json", "-o", out)
    assert r.exit_code == 0, r
    d = json.loads(r.stdout)
    assert d["samples"] == pq.read_table(out).num_rows
    assert d["threshold"] is None


def test_installed_command_json(cmd, log):
    logdir, epochs = log
    r = cmd(logdir, "--json", "--epochs", "1:")
    assert r.exit_code == 0, r
    d = json.loads(r.stdout)
    assert d["epochs"] == 3
    assert d["rows"] == len(rows_of(epochs, lambda e: e >= 1))


@pytest.mark.parametrize(
    "spec,pick", [("1:", lambda e: e >= 1), (":2", lambda e: e < 2), ("1:3", lambda e: 1 <= e < 3)]
)
def test_epochs_option(cli, tmp_path, log, spec, pick):
    logdir, epochs = log
    out = tmp_path / "e.parquet"
    r = cli(logdir, "--epochs", spec, "-o", out)
    assert r.exit_code == 0, r
    got = pq.read_table(out)
    assert_matches_reference(got, rows_of(epochs, pick))
    assert got.equals(aum_score.score(logdir, epochs=spec).table)


def test_labels_option(cli, tmp_path):
    from reference import sample_labels, write_labels

    rng = np.random.default_rng(8)
    epochs = make_epochs(rng, n_epochs=2)
    write_log(tmp_path / "log", epochs, with_label=False)
    lab = write_labels(tmp_path / "labels.csv", *sample_labels(epochs))
    r = cli(tmp_path / "log", "--labels", lab, "-o", tmp_path / "o.parquet")
    assert r.exit_code == 0, r
    assert_matches_reference(pq.read_table(tmp_path / "o.parquet"), rows_of(epochs))


def test_report_to_stdout(cli, log):
    logdir, _ = log
    r = cli(logdir, "--threshold-class", "3", "--top", "5")
    assert r.exit_code == 0, r
    res = aum_score.score(logdir, threshold_class=3)
    ids = res.table.column("sample_id").to_pylist()
    # The most suspicious sample (lowest AUM) is listed; the 30th is not, with --top 5.
    assert str(ids[0]) in r.stdout
    assert str(ids[30]) not in r.stdout
    assert "Traceback" not in r.output


def test_quiet_json_keeps_stdout_clean(cli, log):
    logdir, _ = log
    r = cli(logdir, "--json", "--quiet")
    assert r.exit_code == 0, r
    json.loads(r.stdout)


def test_version(cli, cmd):
    r = cli("--version")
    assert r.exit_code == 0, r
    v = aum_score.build_info()["version"]
    assert v in r.stdout
    assert re.search(r"\d+\.\d+", r.stdout)
    r2 = cmd("--version")
    assert r2.exit_code == 0 and v in r2.stdout, r2


def test_help_has_examples(cli):
    from aum_score.cli import main

    r = cli("--help")
    assert r.exit_code == 0, r
    assert re.search(r"example", r.stdout, re.IGNORECASE), r.stdout
    assert "score" in r.stdout and "demo" in r.stdout
    assert set(main.commands) >= {"score", "demo"}
    for name in main.commands:
        r = cli(name, "--help")
        assert r.exit_code == 0, (name, r)
        assert re.search(r"example", r.stdout, re.IGNORECASE), (name, r.stdout)
        # An example is a command line a user can copy.
        assert re.search(rf"aum-score {name}\b|aum-score \S", r.stdout), (name, r.stdout)


def test_failed_run_does_not_clobber_existing_output(cli, tmp_path, log):
    logdir, _ = log
    out = tmp_path / "keep.parquet"
    r = cli(logdir, "-o", out)
    assert r.exit_code == 0, r
    before = out.read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.arrow").write_bytes(b"ARROW1\x00\x00not really")
    r = cli(bad, "-o", out)
    assert r.exit_code != 0 and r.exception is None, r
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "keep.parquet", "log"]


def test_output_to_existing_non_output_text_file_is_replaced_atomically(cli, tmp_path, log):
    logdir, epochs = log
    out = tmp_path / "r.csv"
    out.write_text("old contents\n")
    r = cli(logdir, "-o", out)
    assert r.exit_code == 0, r
    assert "old contents" not in out.read_text()
    assert_matches_reference(read_any(out), rows_of(epochs))


def test_unknown_output_extension(cli, tmp_path, log):
    logdir, _ = log
    r = cli(logdir, "-o", tmp_path / "r.xlsx")
    assert r.exit_code != 0 and r.exception is None, r
    assert "Traceback" not in r.output
    assert not (tmp_path / "r.xlsx").exists()


def test_threshold_class_without_samples_warns_on_stderr(cli, tmp_path, rng):
    # Labels use classes 0..3 of 5: class 4 (the usual threshold class) has no samples.
    epochs = make_epochs(rng, n_epochs=2, num_classes=5, labels=rng.integers(0, 4, 40))
    write_log(tmp_path, epochs)
    r = cli(tmp_path, "--threshold-class", "4", "--json")
    assert r.exit_code == 0, r
    assert "Warning: no sample has the threshold class 4" in r.stderr
    assert json.loads(r.stdout)["threshold"] is None
