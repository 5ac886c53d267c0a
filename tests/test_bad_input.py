"""Bad input: one clear error line naming file/column/row, exit != 0, no traceback, no output."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from reference import (
    Rows,
    assert_matches_reference,
    make_epochs,
    rows_of,
    rows_table,
    write_labels,
    write_log,
    write_table,
)

import aum_score

C = 5
LOG = "trainlog"  # distinctive: pytest tmp dir names never contain it


def good_rows(n=20, seed=0, C=C):
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) * 3 - 7
    return Rows(ids, rng.normal(size=(n, C)).astype(np.float32), (ids % C).astype(np.int64))


def base_log(d: Path, fmt="file"):
    """Two good epoch files; cases add or replace files."""
    d.mkdir(parents=True, exist_ok=True)
    ext = {"file": ".arrow", "stream": ".arrows", "parquet": ".parquet"}[fmt]
    for e in range(2):
        write_table(
            d / f"epoch_{e}{ext}",
            rows_table(good_rows(seed=e), metadata={b"epoch": str(e).encode()}),
            fmt,
            batches=2,
        )


# Each case builds tmp/log and returns (extra CLI args, strings the error must contain).
def case_empty_dir(tmp):
    (tmp / LOG).mkdir()
    return [], [LOG]


def case_only_non_log_files(tmp):
    (tmp / LOG).mkdir()
    (tmp / LOG / "meta.json").write_text("{}")
    return [], [LOG]


def case_not_arrow(tmp):
    base_log(tmp / LOG)
    (tmp / LOG / "notes.arrow").write_text("this is not an Arrow file\n" * 20)
    return [], ["notes.arrow"]


def case_not_parquet(tmp):
    base_log(tmp / LOG)
    (tmp / LOG / "junk.parquet").write_bytes(b"\x00\x01garbage" * 100)
    return [], ["junk.parquet"]


def _truncate(path: Path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def case_truncated_file(tmp):
    base_log(tmp / LOG)
    _truncate(tmp / LOG / "epoch_1.arrow")
    return [], ["epoch_1.arrow"]


def case_truncated_stream(tmp):
    base_log(tmp / LOG, fmt="stream")
    _truncate(tmp / LOG / "epoch_1.arrows")
    return [], ["epoch_1.arrows"]


def case_truncated_parquet(tmp):
    base_log(tmp / LOG, fmt="parquet")
    _truncate(tmp / LOG / "epoch_1.parquet")
    return [], ["epoch_1.parquet"]


def case_num_classes_differ(tmp):
    base_log(tmp / LOG)
    write_table(
        tmp / LOG / "epoch_2.arrow", rows_table(good_rows(C=C + 1), metadata={b"epoch": b"2"})
    )
    return [], ["epoch_2.arrow", "logits"]


def case_missing_logits(tmp):
    base_log(tmp / LOG)
    t = rows_table(good_rows(), metadata={b"epoch": b"2"}).drop_columns(["logits"])
    write_table(tmp / LOG / "epoch_2.arrow", t)
    return [], ["epoch_2.arrow", "logits"]


def case_missing_sample_id(tmp):
    base_log(tmp / LOG)
    t = rows_table(good_rows(), metadata={b"epoch": b"2"}).drop_columns(["sample_id"])
    write_table(tmp / LOG / "epoch_2.arrow", t)
    return [], ["epoch_2.arrow", "sample_id"]


def case_logits_as_string(tmp):
    base_log(tmp / LOG)
    r = good_rows()
    t = pa.table(
        {
            "sample_id": pa.array(r.sample_ids),
            "logits": pa.array([str(list(z)) for z in r.logits]),
            "label": pa.array(r.labels),
        }
    )
    write_table(tmp / LOG / "epoch_2.arrow", t)
    return [], ["epoch_2.arrow", "logits"]


def case_logits_of_integers(tmp):
    base_log(tmp / LOG)
    r = good_rows()
    t = pa.table(
        {
            "sample_id": pa.array(r.sample_ids),
            "logits": pa.FixedSizeListArray.from_arrays(
                pa.array(np.arange(20 * C, dtype=np.int32)), C
            ),
            "label": pa.array(r.labels),
        }
    )
    write_table(tmp / LOG / "epoch_2.arrow", t)
    return [], ["epoch_2.arrow", "logits"]


def case_sample_id_float(tmp):
    base_log(tmp / LOG)
    r = good_rows()
    t = rows_table(r, id_type=pa.float64())
    write_table(tmp / LOG / "epoch_2.arrow", t)
    return [], ["epoch_2.arrow", "sample_id"]


def case_single_class(tmp):
    (tmp / LOG).mkdir()
    r = good_rows(C=1)
    r.labels[:] = 0
    write_table(tmp / LOG / "one.arrow", rows_table(r))
    return [], ["one.arrow", "logits"]


def case_null_sample_id(tmp):
    base_log(tmp / LOG)
    r = good_rows()
    t = rows_table(r)
    ids = pa.array([None if i == 3 else v for i, v in enumerate(r.sample_ids.tolist())], pa.int64())
    t = t.set_column(0, "sample_id", ids)
    write_table(tmp / LOG / "epoch_2.arrow", t)
    return [], ["epoch_2.arrow", "sample_id"]


def case_null_logits(tmp):
    base_log(tmp / LOG)
    r = good_rows()
    t = rows_table(r)
    vals = pa.array(r.logits.reshape(-1))
    mask = pa.array([i == 6 for i in range(len(r))])
    logits = pa.FixedSizeListArray.from_arrays(vals, C, mask=mask)
    t = t.set_column(1, "logits", logits)
    write_table(tmp / LOG / "epoch_2.arrow", t)
    return [], ["epoch_2.arrow", "logits"]


def _with_value(tmp, value, row, col=2):
    base_log(tmp / LOG)
    r = good_rows()
    r.logits[row, col] = value
    # Two record batches of 10 rows: row 13 is in the second batch, so a per-batch row number
    # would be wrong.
    write_table(tmp / LOG / "epoch_2.arrow", rows_table(r, metadata={b"epoch": b"2"}), batches=2)


def case_nan_logits(tmp):
    _with_value(tmp, np.nan, 13)
    return [], ["epoch_2.arrow", r"\brow 13\b"]


def case_inf_logits(tmp):
    _with_value(tmp, np.inf, 4)
    return [], ["epoch_2.arrow", r"\brow 4\b"]


def case_neg_inf_logits(tmp):
    _with_value(tmp, -np.inf, 17, col=0)
    return [], ["epoch_2.arrow", r"\brow 17\b"]


def _with_label(tmp, value, row):
    base_log(tmp / LOG)
    r = good_rows()
    r.labels[row] = value
    write_table(tmp / LOG / "epoch_2.arrow", rows_table(r, metadata={b"epoch": b"2"}), batches=2)


def case_label_too_large(tmp):
    _with_label(tmp, C, 11)
    return [], ["epoch_2.arrow", "label", r"\brow 11\b"]


def case_label_negative(tmp):
    _with_label(tmp, -1, 2)
    return [], ["epoch_2.arrow", "label", r"\brow 2\b"]


def case_labels_file_out_of_range(tmp):
    r = good_rows()
    (tmp / LOG).mkdir()
    write_table(tmp / LOG / "single.arrow", rows_table(r, with_label=False))
    labels = r.labels.copy()
    labels[5] = 99
    lab = write_labels(tmp / "labels.csv", r.sample_ids, labels)
    return ["--labels", lab], ["labels.csv", "label"]


def case_sample_without_label(tmp):
    r = good_rows()
    (tmp / LOG).mkdir()
    write_table(tmp / LOG / "single.arrow", rows_table(r, with_label=False))
    # Sample id 17 (row 8) is missing from the labels file.
    keep = r.sample_ids != 17
    lab = write_labels(tmp / "labels.parquet", r.sample_ids[keep], r.labels[keep])
    return ["--labels", lab], [r"\b17\b", r"(single\.arrow|labels\.parquet)"]


def case_no_labels_at_all(tmp):
    (tmp / LOG).mkdir()
    write_table(tmp / LOG / "single.arrow", rows_table(good_rows(), with_label=False))
    return [], ["single.arrow", "label"]


def case_labels_file_missing_column(tmp):
    r = good_rows()
    (tmp / LOG).mkdir()
    write_table(tmp / LOG / "single.arrow", rows_table(r, with_label=False))
    lab = tmp / "labels.csv"
    lab.write_text(
        "sample_id,klass\n" + "".join(f"{i},{y}\n" for i, y in zip(r.sample_ids, r.labels))
    )
    return ["--labels", lab], ["labels.csv", "label"]


def case_repeated_log_column(tmp):
    base_log(tmp / LOG)
    t = rows_table(good_rows(), metadata={b"epoch": b"2"})
    t = t.append_column("label", t.column("label"))  # which 'label' would be meant?
    write_table(tmp / LOG / "epoch_2.parquet", t, "parquet")
    return [], ["epoch_2.parquet", "2 columns", "'label'"]


def case_repeated_labels_file_column(tmp):
    r = good_rows()
    (tmp / LOG).mkdir()
    write_table(tmp / LOG / "single.arrow", rows_table(r, with_label=False))
    lab = tmp / "labels.parquet"
    ids = pa.array(r.sample_ids)
    t = pa.Table.from_arrays(
        [ids, ids, pa.array(r.labels)], names=["sample_id", "sample_id", "label"]
    )
    write_table(lab, t, "parquet")
    return ["--labels", lab], ["labels.parquet", "2 columns", "'sample_id'"]


def case_labels_file_does_not_exist(tmp):
    base_log(tmp / LOG)
    return ["--labels", tmp / "nope.parquet"], ["nope.parquet"]


def case_label_conflict(tmp):
    (tmp / LOG).mkdir()
    r = good_rows()
    write_table(tmp / LOG / "single.arrow", rows_table(r))
    labels = r.labels.copy()
    labels[8] = (labels[8] + 1) % C  # sample 17
    lab = write_labels(tmp / "labels.arrow", r.sample_ids, labels)
    return ["--labels", lab], [r"\b17\b", "single.arrow", "labels.arrow"]


def case_bad_epoch_metadata(tmp):
    base_log(tmp / LOG)
    write_table(tmp / LOG / "epoch_2.arrow", rows_table(good_rows(), metadata={b"epoch": b"two"}))
    return [], ["epoch_2.arrow", "epoch"]


def case_null_label(tmp):
    # The null is the only label the sample has (its id appears in no other file).
    base_log(tmp / LOG)
    r = good_rows()
    r.sample_ids += 1000
    t = rows_table(r)
    t = t.set_column(
        2,
        "label",
        pa.array([None if i == 9 else v for i, v in enumerate(r.labels.tolist())], pa.int64()),
    )
    write_table(tmp / LOG / "epoch_2.arrow", t)
    return [], ["epoch_2.arrow", r"\brow 9\b"]


def case_labels_file_contradicts_itself(tmp):
    r = good_rows()
    (tmp / LOG).mkdir()
    write_table(tmp / LOG / "single.arrow", rows_table(r, with_label=False))
    ids = np.concatenate([r.sample_ids, [17]])
    labels = np.concatenate([r.labels, [(17 % C + 1) % C]])
    lab = write_labels(tmp / "labels.parquet", ids, labels)
    return ["--labels", lab], ["labels.parquet", r"\b17\b"]


def case_log_path_does_not_exist(tmp):
    return [], [LOG]


CASES = {name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


def assert_clean_failure(r, tmp, must):
    assert r.exit_code != 0, r
    assert r.exception is None, f"uncaught exception escaped the CLI: {r.exception!r}"
    assert "Traceback" not in r.stdout and "Traceback" not in r.stderr, r
    err_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(err_lines) == 1, r
    for pattern in must:
        assert re.search(pattern, err_lines[0]), (pattern, err_lines[0])
    assert not (tmp / "out.parquet").exists(), "a failed run must leave no output file"
    assert not [p for p in tmp.iterdir() if p.name.startswith("out")], list(tmp.iterdir())


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_bad_input(cli, tmp_path, name):
    extra, must = CASES[name](tmp_path)
    r = cli("score", tmp_path / LOG, "-o", tmp_path / "out.parquet", *extra)
    assert_clean_failure(r, tmp_path, must)


@pytest.mark.parametrize(
    "name",
    [
        "empty_dir",
        "truncated_file",
        "nan_logits",
        "label_negative",
        "sample_id_float",
        "label_conflict",
    ],
)
def test_installed_command_bad_input(cmd, tmp_path, name):
    extra, must = CASES[name](tmp_path)
    r = cmd(tmp_path / LOG, "-o", tmp_path / "out.parquet", *extra)
    assert_clean_failure(r, tmp_path, must)


@pytest.mark.parametrize("name", sorted(CASES))
def test_api_raises_logformaterror(tmp_path, name):
    extra, must = CASES[name](tmp_path)
    labels = extra[1] if extra[:1] == ["--labels"] else None
    with pytest.raises((aum_score.LogFormatError, OSError)) as info:
        aum_score.score(tmp_path / LOG, labels=labels)
    # The same context reaches API users, not only CLI users.
    for pattern in must:
        assert re.search(pattern, str(info.value)), (pattern, str(info.value))


@pytest.mark.parametrize("name", ["nan_logits", "inf_logits", "neg_inf_logits"])
def test_nonfinite_skip_succeeds(cli, tmp_path, name):
    CASES[name](tmp_path)
    out = tmp_path / "out.parquet"
    r = cli("score", tmp_path / LOG, "--nonfinite", "skip", "-o", out)
    assert r.exit_code == 0, r
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    res = aum_score.score(tmp_path / LOG, nonfinite="skip")
    assert table.equals(res.table)
    assert res.summary.skipped_rows == 1
    # 3 files of 20 rows, one skipped.
    assert res.summary.rows == 59


def test_nonfinite_skip_installed_command(cmd, tmp_path):
    case_nan_logits(tmp_path)
    r = cmd(tmp_path / LOG, "--nonfinite", "skip", "--json")
    assert r.exit_code == 0, r
    import json

    d = json.loads(r.stdout)
    assert d["rows"] == 59


def test_non_log_files_are_skipped(cli, cmd, tmp_path):
    rng = np.random.default_rng(3)
    epochs = make_epochs(rng, n_epochs=2)
    write_log(tmp_path / LOG, epochs)
    (tmp_path / LOG / "meta.json").write_text('{"lr": 0.1}')
    (tmp_path / LOG / "README.md").write_text("# logs\n")
    (tmp_path / LOG / "epoch_9.arrow.partial").write_bytes(b"half-written")
    out = tmp_path / "out.parquet"
    r = cli(tmp_path / LOG, "-o", out)
    assert r.exit_code == 0, r
    import pyarrow.parquet as pq

    assert_matches_reference(pq.read_table(out), rows_of(epochs))
    r2 = cmd(tmp_path / LOG, "--json")
    assert r2.exit_code == 0, r2


# ---------------------------------------------------------------------------- Scorer input checks


def test_scorer_rejects_bad_shapes_and_values():
    sc = aum_score.Scorer(3)
    z = np.zeros((4, 3), np.float32)
    y = np.array([0, 1, 2, 0])
    ids = np.arange(4)
    with pytest.raises(ValueError):
        sc.update(np.zeros((4, 4), np.float32), y, ids)  # C differs from num_classes
    with pytest.raises(ValueError):
        sc.update(np.zeros(4, np.float32), y, ids)  # 1-D logits
    with pytest.raises(ValueError):
        sc.update(z, y[:3], ids)  # length mismatch
    with pytest.raises(ValueError):
        sc.update(z, y, ids[:3])
    with pytest.raises(ValueError, match=r"\brow 2\b"):
        sc.update(z, np.array([0, 1, 3, 0]), ids)  # label out of range
    with pytest.raises(ValueError, match=r"\brow 1\b"):
        sc.update(z, np.array([0, -1, 0, 0]), ids)
    bad = z.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"\brow 3\b"):
        sc.update(bad, y, ids)
    # Rejected batches left no trace: the scorer is still empty and usable.
    assert sc.result().table.num_rows == 0
    sc.update(z, y, ids)
    assert sc.result().summary.rows == 4


def test_scorer_nonfinite_skip_counts():
    sc = aum_score.Scorer(2, nonfinite="skip")
    z = np.array([[1.0, 0.0], [np.inf, 0.0], [0.0, np.nan], [2.0, 1.0]], np.float32)
    sc.update(z, np.array([0, 0, 0, 0]), np.array([1, 1, 2, 2]))
    res = sc.result()
    d = {
        s: (a, c)
        for s, a, c in zip(
            *[res.table.column(k).to_pylist() for k in ("sample_id", "aum", "count")]
        )
    }
    assert d == {1: (1.0, 1), 2: (1.0, 1)}
    assert res.summary.skipped_rows == 2


@pytest.mark.parametrize(
    "opt", [["--nonfinite", "ignore"], ["--percentile", "150"], ["--epochs", "a:b"]]
)
def test_bad_options(cli, tmp_path, opt):
    base_log(tmp_path / LOG)
    r = cli("score", tmp_path / LOG, "-o", tmp_path / "out.parquet", *opt)
    assert r.exit_code != 0, r
    assert r.exception is None, r
    assert "Traceback" not in r.output
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize(
    "bad",
    [b"\xff", b"ab\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"],
    ids=["invalid byte", "truncated", "overlong", "surrogate", "above U+10FFFF", "short"],
)
def test_sample_ids_that_are_not_utf8_are_refused_naming_the_row(tmp_path, bad):
    # Arrow string buffers built by hand: the writer would refuse these bytes.
    good = [b"img_0", b"img_1", b"\xc3\xa9t\xc3\xa9 \xf0\x9f\x90\x88"]  # two multi-byte ids
    ids = good + [bad]
    offsets = np.cumsum([0] + [len(i) for i in ids]).astype(np.int32)
    column = pa.StringArray.from_buffers(
        len(ids), pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(ids))
    )
    logits = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(12, np.float32)), 3)
    table = pa.table({"sample_id": column, "label": pa.array([0, 1, 2, 0]), "logits": logits})
    path = tmp_path / "log.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(
        aum_score.LogFormatError, match=r"log\.arrow: row 3: sample_id is not valid UTF-8"
    ):
        aum_score.score(path)
    # The same ids without the bad one score (the multi-byte ones are valid UTF-8).
    ok = table.slice(0, 3)
    path2 = tmp_path / "ok.arrow"
    with pa.OSFile(str(path2), "wb") as sink, pa.ipc.new_file(sink, ok.schema) as writer:
        writer.write_table(ok)
    assert aum_score.score(path2).table.num_rows == 3
