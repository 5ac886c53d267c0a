"""aum_score.score()/Scorer/margins against the independent numpy reference (tests/reference.py)."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import feather, ipc
from reference import (
    Rows,
    as_rows_dict,
    assert_matches_reference,
    check_flags,
    check_result_schema,
    concat_rows,
    make_epochs,
    reference_margins,
    rows_of,
    rows_table,
    sample_labels,
    write_labels,
    write_log,
    write_table,
)

import aum_score

DTYPES = [np.float16, np.float32, np.float64]


# --------------------------------------------------------------------------------------------
# Formats, dtypes, ids, layouts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["file", "feather", "stream", "parquet"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_score_matches_reference(tmp_path, rng, fmt, dtype, id_kind):
    epochs = make_epochs(rng, n_samples=50, num_classes=7, n_epochs=3, dtype=dtype, id_kind=id_kind)
    # Several files per epoch and several record batches per file.
    write_log(tmp_path / "log", epochs, fmt=fmt, batches_per_file=3, files_per_epoch=2)
    res = aum_score.score(tmp_path / "log")
    check_result_schema(res.table, string_ids=id_kind == "str")
    rows = rows_of(epochs)
    assert_matches_reference(res.table, rows)
    s = res.summary
    assert s.samples == res.table.num_rows == len(set(rows.sample_ids.tolist()))
    assert s.rows == len(rows)
    assert s.epochs == 3
    assert s.classes == 7
    assert s.skipped_rows == 0
    assert s.threshold is None and s.flagged == 0 and s.threshold_samples == 0


def test_log_really_has_shuffles_duplicates_and_missing(rng):
    # Guard that the generator exercises what the correctness tests claim to exercise.
    epochs = make_epochs(rng, n_samples=50, n_epochs=3)
    all_ids = set(rows_of(epochs).sample_ids.tolist())
    for r in epochs.values():
        ids = r.sample_ids.tolist()
        assert len(ids) > len(set(ids)), "some sample repeated within an epoch"
        assert set(ids) < all_ids, "some sample missing from the epoch"
        assert ids != sorted(ids)
    assert any(i < 0 for i in all_ids)


def test_single_file_list_and_path_inputs(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=3)
    paths = write_log(tmp_path / "log", epochs, fmt="file")
    rows = rows_of(epochs)
    # A list of paths (str and Path mixed) and a directory give the same result.
    res_list = aum_score.score([str(paths[0]), *paths[1:]])
    assert_matches_reference(res_list.table, rows)
    res_dir = aum_score.score(str(tmp_path / "log"))
    assert res_dir.table.equals(res_list.table)
    # One file alone.
    one = aum_score.score(paths[1])
    assert_matches_reference(one.table, epochs[1])


def test_single_file_with_epoch_column_many_batches(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=5, dtype=np.float64)
    write_log(tmp_path / "log", epochs, epoch_in="column", single_file=True, batches_per_file=7)
    res = aum_score.score(tmp_path / "log", epochs="1:3")
    assert_matches_reference(res.table, rows_of(epochs, lambda e: 1 <= e < 3))
    assert res.summary.epochs == 2


@pytest.mark.parametrize(
    "id_type", [pa.int8(), pa.int32(), pa.uint16(), pa.uint32(), pa.int64()], ids=str
)
def test_integer_id_types_widen_to_int64(tmp_path, rng, id_type):
    ids = np.array([0, 3, 5, 100, 1, 7, 2, 120] * 2, dtype=np.int64)
    z = rng.normal(size=(ids.size, 3)).astype(np.float32)
    y = (ids % 3).astype(np.int64)
    rows = Rows(ids, z, y)
    write_table(tmp_path / "a.arrow", rows_table(rows, id_type=id_type))
    res = aum_score.score(tmp_path / "a.arrow")
    check_result_schema(res.table)
    assert_matches_reference(res.table, rows)


def test_int32_label_column(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2)
    for e, r in epochs.items():
        write_table(tmp_path / f"e{e}.arrow", rows_table(r, label_type=pa.int32(), epoch=e))
    res = aum_score.score(tmp_path)
    assert_matches_reference(res.table, rows_of(epochs))


def test_non_log_files_beside_the_log_are_skipped(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2)
    write_log(tmp_path, epochs)
    (tmp_path / "meta.json").write_text('{"run": 1}')
    (tmp_path / "README.md").write_text("# training logs\n")
    res = aum_score.score(tmp_path)
    assert_matches_reference(res.table, rows_of(epochs))


def test_threads_do_not_change_the_result(tmp_path, rng):
    epochs = make_epochs(rng, n_samples=300, n_epochs=3, num_classes=10)
    write_log(tmp_path, epochs, batches_per_file=4)
    a = aum_score.score(tmp_path, threads=1)
    b = aum_score.score(tmp_path, threads=2)
    assert_matches_reference(a.table, rows_of(epochs))
    assert_matches_reference(b.table, rows_of(epochs))
    da, db = as_rows_dict(a.table), as_rows_dict(b.table)
    assert set(da) == set(db)
    for k in da:
        assert da[k]["count"] == db[k]["count"]
        assert da[k]["aum"] == pytest.approx(db[k]["aum"], rel=1e-12, abs=1e-12)


def test_large_string_ids(tmp_path, rng):
    # Polars and pandas>=2 write large_string; ids are still strings.
    epochs = make_epochs(rng, n_epochs=2, id_kind="str")
    write_log(tmp_path, epochs, id_type=pa.large_string())
    res = aum_score.score(tmp_path)
    assert pa.types.is_string(res.table.schema.field("sample_id").type) or pa.types.is_large_string(
        res.table.schema.field("sample_id").type
    )
    assert_matches_reference(res.table, rows_of(epochs))


def test_compressed_ipc_files(tmp_path, rng):
    # feather.write_feather compresses with LZ4 by default; IPC files may also use ZSTD.
    epochs = make_epochs(rng, n_epochs=2)
    feather.write_feather(rows_table(epochs[0], epoch=0), str(tmp_path / "e0.feather"))
    t = rows_table(epochs[1], epoch=1)
    opts = ipc.IpcWriteOptions(compression="zstd")
    with ipc.new_file(str(tmp_path / "e1.arrow"), t.schema, options=opts) as w:
        w.write_table(t, max_chunksize=9)
    assert_matches_reference(aum_score.score(tmp_path).table, rows_of(epochs))


def test_mixed_formats_in_one_directory(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=3)
    write_table(tmp_path / "a.arrow", rows_table(epochs[0], epoch=0))
    write_table(tmp_path / "b.arrows", rows_table(epochs[1], epoch=1), "stream", batches=2)
    write_table(tmp_path / "c.parquet", rows_table(epochs[2], epoch=2), "parquet", batches=2)
    assert_matches_reference(aum_score.score(tmp_path).table, rows_of(epochs))
    assert_matches_reference(
        aum_score.score(tmp_path, epochs="1:").table, rows_of(epochs, lambda e: e >= 1)
    )


def test_stream_format_under_arrow_extension(tmp_path, rng):
    # ipc.new_stream to a file named .arrow is a common mistake; the reader can tell by content.
    epochs = make_epochs(rng, n_epochs=2)
    for e, r in epochs.items():
        write_table(
            tmp_path / f"epoch_{e}.arrow",
            rows_table(r, metadata={b"epoch": str(e).encode()}),
            "stream",
        )
    assert_matches_reference(aum_score.score(tmp_path).table, rows_of(epochs))


def test_larger_log_in_parallel(tmp_path, rng):
    # Enough rows for the threaded kernel to split work.
    epochs = make_epochs(rng, n_samples=20000, num_classes=10, n_epochs=3)
    write_log(tmp_path, epochs, batches_per_file=5)
    res = aum_score.score(tmp_path, threads=2, threshold_class=9, percentile=95)
    assert_matches_reference(res.table, rows_of(epochs))
    check_flags(res.table, 9, 95.0, res.summary)


def test_score_accepts_progress_flag(tmp_path, rng, capsys):
    # score(..., threads=None, progress=False) is public API.
    epochs = make_epochs(rng, n_epochs=2)
    write_log(tmp_path, epochs)
    res = aum_score.score(tmp_path, progress=True)
    assert_matches_reference(res.table, rows_of(epochs))
    assert capsys.readouterr().out == "", "progress goes to stderr, never stdout"


# --------------------------------------------------------------------------------------------
# Logits as list<...> rather than fixed_size_list
# --------------------------------------------------------------------------------------------


def test_uniform_list_logits_accepted_or_rejected_cleanly(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2)
    write_log(tmp_path, epochs, list_type="list")
    # design.md: a uniform-length list "may be accepted after validation".
    try:
        res = aum_score.score(tmp_path)
    except aum_score.LogFormatError as e:
        assert "logits" in str(e)
    else:
        assert_matches_reference(res.table, rows_of(epochs))


def test_ragged_list_logits_rejected(tmp_path):
    table = pa.table(
        {
            "sample_id": pa.array([1, 2, 3], pa.int64()),
            "logits": pa.array(
                [[0.1, 0.2, 0.3], [0.5, 0.1], [1.0, 2.0, 3.0]], pa.list_(pa.float32())
            ),
            "label": pa.array([0, 1, 2], pa.int64()),
        }
    )
    write_table(tmp_path / "ragged.arrow", table)
    with pytest.raises(aum_score.LogFormatError, match="logits"):
        aum_score.score(tmp_path)


# --------------------------------------------------------------------------------------------
# Epochs: where they come from and how they are selected
# --------------------------------------------------------------------------------------------

SELECTIONS = [
    (None, lambda e: True),
    ("1:", lambda e: e >= 1),
    (":3", lambda e: e < 3),
    ("1:3", lambda e: 1 <= e < 3),
    ("2:10", lambda e: 2 <= e < 10),
    (slice(1, None), lambda e: e >= 1),
    (slice(None, 3), lambda e: e < 3),
    (slice(9, 11), lambda e: 9 <= e < 11),
]


@pytest.mark.parametrize("epoch_in", ["column", "metadata", "filename"])
@pytest.mark.parametrize("sel", SELECTIONS, ids=lambda s: repr(s[0]))
def test_epoch_selection(tmp_path, epoch_in, sel):
    rng = np.random.default_rng(7)
    # 12 epochs: with unpadded names, natural order (epoch_2 < epoch_10) differs from lexicographic.
    epochs = make_epochs(rng, n_samples=12, num_classes=3, n_epochs=12, missing=0.2)
    # Make epochs distinguishable: epoch e shifts every margin by e, so a wrong epoch mapping shows.
    for e, r in epochs.items():
        r.logits[np.arange(len(r)), r.labels] += np.float32(e)
    write_log(tmp_path, epochs, epoch_in=epoch_in)
    spec, pick = sel
    res = aum_score.score(tmp_path, epochs=spec)
    rows = rows_of(epochs, pick)
    assert_matches_reference(res.table, rows)
    assert res.summary.epochs == sum(1 for e in epochs if pick(e))
    assert res.summary.rows == len(rows)


def test_file_order_epochs_from_a_shell_glob(tmp_path):
    # `aum-score run/epoch_*.arrow` passes files in lexicographic order (epoch_10 before epoch_2);
    # epochs by position must still follow natural name order.
    rng = np.random.default_rng(3)
    epochs = make_epochs(rng, n_samples=10, num_classes=3, n_epochs=12)
    for e, r in epochs.items():
        r.logits[np.arange(len(r)), r.labels] += np.float32(10 * e)
    paths = write_log(tmp_path, epochs, epoch_in="filename")
    glob_order = sorted(map(str, paths))
    assert glob_order[2].endswith("epoch_10.arrow")
    res = aum_score.score(glob_order, epochs="9:")
    assert_matches_reference(res.table, rows_of(epochs, lambda e: e >= 9))


def test_epoch_column_wins_over_metadata(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=4)
    for e, r in epochs.items():
        # The metadata lies; the column is what counts.
        write_table(tmp_path / f"x{e}.arrow", rows_table(r, epoch=e, metadata={b"epoch": b"99"}))
    res = aum_score.score(tmp_path, epochs="2:")
    assert_matches_reference(res.table, rows_of(epochs, lambda e: e >= 2))


def test_metadata_wins_over_file_order(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=4)
    # Names sort in the reverse of the epoch order.
    write_log(tmp_path, epochs, epoch_in="metadata", name=lambda e, p: f"run_{9 - e}")
    res = aum_score.score(tmp_path, epochs=":2")
    assert_matches_reference(res.table, rows_of(epochs, lambda e: e < 2))


def test_epoch_selection_that_matches_nothing_is_not_silent(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=3)
    write_log(tmp_path, epochs)
    # Either an error or an empty result, never rows from outside the selection.
    try:
        res = aum_score.score(tmp_path, epochs="50:")
    except (aum_score.LogFormatError, ValueError):
        return
    assert res.table.num_rows == 0 and res.summary.rows == 0


# --------------------------------------------------------------------------------------------
# Labels given in a separate file
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".parquet", ".arrow", ".feather", ".csv"])
@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_labels_file(tmp_path, rng, ext, id_kind):
    epochs = make_epochs(rng, n_epochs=3, id_kind=id_kind)
    write_log(tmp_path / "log", epochs, with_label=False)
    ids, labels = sample_labels(epochs)
    order = rng.permutation(ids.size)
    lab = write_labels(tmp_path / f"labels{ext}", ids[order], labels[order])
    # Threshold samples are found through the labels file's labels too.
    res = aum_score.score(tmp_path / "log", labels=lab, threshold_class=4, percentile=90)
    check_result_schema(res.table, string_ids=id_kind == "str")
    assert_matches_reference(res.table, rows_of(epochs))
    check_flags(res.table, 4, 90.0, res.summary)
    assert res.summary.threshold_samples == int((labels == 4).sum()) > 0


def test_labels_csv_with_numeric_looking_string_ids(tmp_path, rng):
    # "001" must stay the string "001" when the log's ids are strings, not become the integer 1.
    ids = np.array(["001", "002", "010", "001", "10"], dtype=object)
    rows = Rows(ids, rng.normal(size=(5, 3)).astype(np.float32), np.array([0, 1, 2, 0, 1]))
    write_table(tmp_path / "log.arrow", rows_table(rows, with_label=False))
    lab = write_labels(
        tmp_path / "labels.csv",
        np.array(["001", "002", "010", "10"], dtype=object),
        np.array([0, 1, 2, 1]),
    )
    res = aum_score.score(tmp_path / "log.arrow", labels=lab)
    assert_matches_reference(res.table, rows)


def test_labels_file_with_extra_samples(tmp_path, rng):
    # A labels file for the whole data set, a log of a subset: the extra ids are not scored.
    epochs = make_epochs(rng, n_epochs=2)
    write_log(tmp_path / "log", epochs, with_label=False)
    ids, labels = sample_labels(epochs)
    extra = np.array([10**15 + i for i in range(5)], dtype=np.int64)
    lab = write_labels(
        tmp_path / "labels.parquet", np.concatenate([ids, extra]), np.concatenate([labels, [0] * 5])
    )
    res = aum_score.score(tmp_path / "log", labels=lab)
    assert_matches_reference(res.table, rows_of(epochs))


def test_labels_file_agreeing_with_label_column(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2)
    write_log(tmp_path / "log", epochs, with_label=True)
    lab = write_labels(tmp_path / "labels.csv", *sample_labels(epochs))
    res = aum_score.score(tmp_path / "log", labels=lab)
    assert_matches_reference(res.table, rows_of(epochs))


def _two_epochs_one_sample(rng, id_value, labels):
    """Epoch e holds id_value (label labels[e]) and two other samples with fixed labels."""
    if isinstance(id_value, str):
        ids = np.array([id_value, "one", "two"], dtype=object)
    else:
        ids = np.array([id_value, 1, 2], dtype=np.int64)
    return {
        e: Rows(
            ids.copy(),
            rng.normal(size=(3, 4)).astype(np.float32),
            np.array([lab, 1, 2], dtype=np.int64),
        )
        for e, lab in enumerate(labels)
    }


def test_label_column_disagrees_with_labels_file(tmp_path, rng):
    epochs = _two_epochs_one_sample(rng, 4242, [3, 3])
    paths = write_log(tmp_path / "log", epochs)
    lab = write_labels(tmp_path / "labels.csv", np.array([4242, 1, 2]), np.array([0, 1, 2]))
    with pytest.raises(aum_score.LogFormatError) as info:
        aum_score.score(tmp_path / "log", labels=str(lab))
    msg = str(info.value)
    assert "4242" in msg
    assert str(lab) in msg, "the labels file is named"
    assert any(p.name in msg for p in paths), "the log file is named"


def test_label_disagreement_between_log_files(tmp_path, rng):
    epochs = _two_epochs_one_sample(rng, "cat_17", [0, 2])
    paths = write_log(tmp_path / "log", epochs)
    with pytest.raises(aum_score.LogFormatError) as info:
        aum_score.score(tmp_path / "log")
    msg = str(info.value)
    assert "cat_17" in msg
    assert paths[0].name in msg and paths[1].name in msg, msg


def test_label_disagreement_within_one_file(tmp_path, rng):
    rows = Rows(
        np.array([5, 6, 5], np.int64),
        rng.normal(size=(3, 3)).astype(np.float32),
        np.array([1, 2, 0]),
    )
    write_table(tmp_path / "only.arrow", rows_table(rows))
    with pytest.raises(aum_score.LogFormatError) as info:
        aum_score.score(tmp_path)
    assert "only.arrow" in str(info.value) and "5" in str(info.value)


def test_allow_label_changes_uses_each_rows_label(tmp_path, rng):
    epochs = make_epochs(rng, n_samples=30, n_epochs=4, missing=0.0, duplicates=0.0)
    # Relabel half the samples in the later epochs (as label-correction schemes do).
    for e in (2, 3):
        r = epochs[e]
        flip = np.arange(len(r)) % 2 == 0
        r.labels[flip] = (r.labels[flip] + 1) % 5
    write_log(tmp_path, epochs)
    with pytest.raises(aum_score.LogFormatError):
        aum_score.score(tmp_path)
    res = aum_score.score(tmp_path, allow_label_changes=True)
    # Each margin uses that row's label, exactly as the `aum` library does.
    assert_matches_reference(res.table, rows_of(epochs), check_label=False)

    sc = aum_score.Scorer(5, allow_label_changes=True)
    for e in sorted(epochs):
        sc.update(epochs[e].logits, epochs[e].labels, epochs[e].sample_ids)
    assert_matches_reference(sc.result().table, rows_of(epochs), check_label=False)


def test_scorer_rejects_label_change_by_default(rng):
    sc = aum_score.Scorer(3)
    z = rng.normal(size=(2, 3)).astype(np.float32)
    sc.update(z, np.array([0, 1]), np.array([10, 11]))
    with pytest.raises(aum_score.LogFormatError, match="10"):
        sc.update(z, np.array([2, 1]), np.array([10, 11]))
        sc.result()


# --------------------------------------------------------------------------------------------
# Threshold samples and flags
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("percentile", [0.0, 50.0, 90.0, 95.5, 99.0, 100.0])
def test_threshold_flags_match_reference_rule(tmp_path, rng, percentile):
    C = 4
    n = 400
    # Class C-1 plays the fake threshold class; ~n/C threshold samples.
    labels = rng.integers(0, C, size=n)
    epochs = make_epochs(rng, n_samples=n, num_classes=C, n_epochs=3, labels=labels)
    write_log(tmp_path, epochs)
    res = aum_score.score(tmp_path, threshold_class=C - 1, percentile=percentile)
    check_result_schema(res.table)
    assert_matches_reference(res.table, rows_of(epochs))
    check_flags(res.table, C - 1, percentile, res.summary)
    d = res.table.to_pydict()
    assert any(d["threshold_sample"])
    if percentile in (90.0, 99.0):
        assert res.summary.flagged > 0


def test_default_percentile_is_99(tmp_path, rng):
    epochs = make_epochs(rng, n_samples=300, num_classes=3, n_epochs=2)
    write_log(tmp_path, epochs)
    a = aum_score.score(tmp_path, threshold_class=2)
    b = aum_score.score(tmp_path, threshold_class=2, percentile=99.0)
    check_flags(a.table, 2, 99.0, a.summary)
    assert a.table.column("mislabeled").to_pylist() == b.table.column("mislabeled").to_pylist()


def test_no_threshold_class_means_all_null(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2)
    write_log(tmp_path, epochs)
    res = aum_score.score(tmp_path)
    check_result_schema(res.table)
    assert res.table.column("mislabeled").null_count == res.table.num_rows
    assert not any(res.table.column("threshold_sample").to_pylist())
    assert res.summary.threshold is None and res.summary.flagged == 0


def test_threshold_class_with_no_such_samples_means_all_null(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2, num_classes=5, labels=np.zeros(40, np.int64) + 1)
    write_log(tmp_path, epochs)
    with pytest.warns(UserWarning, match="threshold class 4"):
        res = aum_score.score(tmp_path, threshold_class=4)
    check_result_schema(res.table)
    assert res.table.column("mislabeled").null_count == res.table.num_rows
    assert res.summary.threshold_samples == 0 and res.summary.flagged == 0


def _margin_rows(pairs, C=2):
    """Rows with prescribed margins: label y gets logit m, every other class 0 -> margin m."""
    ids, z, y = [], [], []
    for sid, label, m in pairs:
        row = np.zeros(C, np.float32)
        row[label] = m
        ids.append(sid)
        z.append(row)
        y.append(label)
    return Rows(np.array(ids, dtype=np.int64), np.array(z, np.float32), np.array(y, np.int64))


def test_hand_computed_threshold_rule():
    # Ten threshold samples (label 1) with AUM 1..10; p = 90 -> cut-off fraction 0.1, strict.
    thr = [(100 + k, 1, float(k)) for k in range(1, 11)]
    normal = [
        (1, 0, 10.0),  # 0 above -> not flagged
        (2, 0, 9.5),  # 1/10 above: 0.1 > 0.1 is false -> not flagged
        (3, 0, 9.0),  # equal to a threshold AUM: only 10 is strictly above -> not flagged
        (4, 0, 8.5),  # 2/10 above -> flagged
        (5, 0, 8.0),  # 2/10 strictly above -> flagged
        (6, 0, -3.0),  # all above -> flagged
    ]
    rows = _margin_rows(thr + normal)
    sc = aum_score.Scorer(2, threshold_class=1, percentile=90.0)
    sc.update(rows.logits, rows.labels, rows.sample_ids)
    res = sc.result()
    got = as_rows_dict(res.table)
    assert [got[i]["mislabeled"] for i in range(1, 7)] == [False, False, False, True, True, True]
    assert all(got[100 + k]["mislabeled"] is None for k in range(1, 11))
    assert all(got[100 + k]["threshold_sample"] for k in range(1, 11))
    assert res.summary.flagged == 3 and res.summary.threshold_samples == 10
    assert 8.5 < res.summary.threshold <= 9.0
    check_result_schema(res.table)


# --------------------------------------------------------------------------------------------
# Hand-computed margins
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_hand_computed_margins(dtype):
    z = np.array(
        [
            [1.0, 1.0, 0.0],  # tie with the runner-up: margin 0
            [2.0, 2.0, 2.0],  # all equal: 0
            [0.0, 5.0, 1.0],  # negative: 0 - 5
            [3.0, -1.0, 0.5],  # positive: 3 - 0.5
            [-4.0, -2.0, -8.0],  # all negative, label 2: -8 - -2
        ],
        dtype=dtype,
    )
    y = np.array([0, 1, 0, 0, 2])
    m = aum_score.margins(z, y)
    assert m.dtype == np.float64
    assert m.tolist() == [0.0, 0.0, -5.0, 2.5, -6.0]


def test_hand_computed_two_classes_and_means(tmp_path):
    # C = 2: margin = z[y] - z[1 - y].
    rows = Rows(
        np.array([7, 7, 8, 8, 8, -9], np.int64),
        np.array([[3, 1], [1, 3], [0, 0], [0.5, 2], [4, -4], [-1, 1]], np.float32),
        np.array([0, 0, 1, 1, 1, 0], np.int64),
    )
    write_table(tmp_path / "c2.arrow", rows_table(rows), batches=2)
    res = aum_score.score(tmp_path)
    got = as_rows_dict(res.table)
    assert got[7]["aum"] == 0.0 and got[7]["count"] == 2  # (2 + -2) / 2
    assert got[8]["aum"] == pytest.approx((0 + 1.5 - 8) / 3, rel=1e-15) and got[8]["count"] == 3
    assert got[-9]["aum"] == -2.0 and got[-9]["label"] == 0
    assert res.table.column("sample_id").to_pylist() == [8, -9, 7]  # ascending AUM: -2.17, -2, 0


def test_float16_is_widened_before_subtracting():
    # 2050 and -0.5 are exact float16 values; 2050.5 is not (spacing 2 there), so subtracting in
    # float16 would round. Widened to float32 first, the margin is exact.
    z = np.array([[2050.0, -0.5], [0.1, 0.2]], dtype=np.float16)
    y = np.array([0, 1])
    m = aum_score.margins(z, y)
    assert m[0] == 2050.5
    assert m[1] == float(np.float32(np.float16(0.2)) - np.float32(np.float16(0.1)))


def test_float32_subtraction_rounds_in_float32():
    # 1e8 + 1 is not representable in float32: computed in float32 the margin is the f32 result.
    z = np.array([[1.0e8, -3.0]], dtype=np.float32)
    m = aum_score.margins(z, np.array([0]))
    assert m[0] == float(np.float32(1.0e8) - np.float32(-3.0))
    assert m[0] != 1.0e8 + 3.0
    z64 = z.astype(np.float64)
    assert aum_score.margins(z64, np.array([0]))[0] == 1.0e8 + 3.0


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("C", [2, 3, 10, 33])
def test_margins_equal_numpy(rng, dtype, C):
    z = (rng.normal(size=(500, C)) * 4).astype(dtype)
    z[:50, 1] = z[:50, 0]  # ties
    y = rng.integers(0, C, size=500)
    m = aum_score.margins(z, y)
    ref = reference_margins(z, y)
    assert m.dtype == np.float64 and m.shape == (500,)
    # Bitwise: same rounding, same signed zeros.
    assert np.array_equal(m.view(np.int64), ref.view(np.int64))
    # Lists are array-likes too; np.asarray makes Python floats float64.
    as_list = aum_score.margins(z[:5].tolist(), y[:5].tolist())
    assert as_list.tolist() == reference_margins(np.asarray(z[:5].tolist()), y[:5]).tolist()


# --------------------------------------------------------------------------------------------
# Streaming Scorer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("id_kind", ["int", "str"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_scorer_equals_score(tmp_path, rng, id_kind, dtype):
    epochs = make_epochs(rng, n_samples=80, num_classes=6, n_epochs=3, id_kind=id_kind, dtype=dtype)
    write_log(tmp_path, epochs, batches_per_file=2)
    a = aum_score.score(tmp_path, threshold_class=5, percentile=90)
    sc = aum_score.Scorer(6, threshold_class=5, percentile=90)
    for e in sorted(epochs):
        r = epochs[e]
        for idx in np.array_split(np.arange(len(r)), 4):
            sc.update(r.logits[idx], r.labels[idx], r.sample_ids[idx])
    b = sc.result()
    check_result_schema(b.table, string_ids=id_kind == "str")
    assert_matches_reference(b.table, rows_of(epochs))
    check_flags(b.table, 5, 90.0, b.summary)
    da, db = as_rows_dict(a.table), as_rows_dict(b.table)
    assert set(da) == set(db)
    for k in da:
        for col in ("label", "count", "threshold_sample", "mislabeled"):
            assert da[k][col] == db[k][col], (k, col)
        assert da[k]["aum"] == pytest.approx(db[k]["aum"], rel=1e-12, abs=1e-300)
    assert a.summary.samples == b.summary.samples and a.summary.rows == b.summary.rows


def test_scorer_result_can_be_called_repeatedly(rng):
    epochs = make_epochs(rng, n_epochs=2, num_classes=5)
    sc = aum_score.Scorer(5)
    sc.update(epochs[0].logits, epochs[0].labels, epochs[0].sample_ids)
    first = sc.result()
    again = sc.result()
    assert first.table.equals(again.table)
    assert_matches_reference(first.table, epochs[0])
    sc.update(epochs[1].logits, epochs[1].labels, epochs[1].sample_ids)
    assert_matches_reference(sc.result().table, concat_rows([epochs[0], epochs[1]]))
    # The earlier result is a snapshot, not a view that later updates change.
    assert first.table.equals(again.table)


def test_scorer_accepts_lists(rng):
    z = rng.normal(size=(20, 4)).astype(np.float32)
    ids = np.arange(20, dtype=np.int64) % 7
    y = ids % 4
    sc = aum_score.Scorer(4)
    sc.update(z[:10].tolist(), y[:10].tolist(), ids[:10].tolist())
    sc.update(z[10:].tolist(), y[10:].tolist(), ids[10:].tolist())
    # Lists of Python floats are float64 (np.asarray), so the float64 reference applies.
    assert_matches_reference(sc.result().table, Rows(ids, z.astype(np.float64), y))


@pytest.mark.parametrize("tdtype", ["float16", "float32", "float64"])
def test_scorer_accepts_torch_tensors(rng, tdtype):
    torch = pytest.importorskip("torch")
    z = rng.normal(size=(20, 4)).astype(tdtype)
    ids = np.arange(20, dtype=np.int64) % 7
    y = ids % 4
    sc = aum_score.Scorer(4)
    t = torch.from_numpy(z)
    sc.update(t[:10], torch.from_numpy(y[:10]), torch.from_numpy(ids[:10]))
    sc.update(t[10:], torch.from_numpy(y[10:]), ids[10:].tolist())
    assert_matches_reference(sc.result().table, Rows(ids, z, y))


@pytest.mark.parametrize(
    "view",
    [
        lambda z: z[::2],
        lambda z: np.asfortranarray(z[:20]),
        lambda z: z[:20, :4],
        lambda z: z[:20, ::-1],
    ],
    ids=["strided-rows", "fortran", "column-slice", "reversed-columns"],
)
def test_non_contiguous_inputs(rng, view):
    z = view(rng.normal(size=(40, 6)).astype(np.float32))
    C = z.shape[1]
    ids = np.arange(z.shape[0], dtype=np.int64) % 9
    y = ids % C
    assert np.array_equal(aum_score.margins(z, y), reference_margins(z, y))
    sc = aum_score.Scorer(C)
    # Strided label and id views too.
    sc.update(z, np.repeat(y, 2)[::2], np.repeat(ids, 2)[::2])
    assert_matches_reference(sc.result().table, Rows(ids, np.ascontiguousarray(z), y))


def test_numpy_unicode_and_object_ids(rng):
    z = rng.normal(size=(12, 3)).astype(np.float32)
    names = [f"u{i % 5}" for i in range(12)]
    y = np.array([int(n[1:]) % 3 for n in names])
    a = aum_score.Scorer(3)
    a.update(z, y, np.array(names))  # dtype <U2
    b = aum_score.Scorer(3)
    b.update(z, y, names)  # list of str
    ref = Rows(np.array(names, dtype=object), z, y)
    assert_matches_reference(a.result().table, ref)
    assert_matches_reference(b.result().table, ref)
    check_result_schema(a.result().table, string_ids=True)


def test_scorer_empty_result():
    sc = aum_score.Scorer(3)
    sc.update(np.zeros((0, 3), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    res = sc.result()
    assert res.table.num_rows == 0
    assert res.table.column_names[:6] == [
        "sample_id",
        "label",
        "aum",
        "count",
        "threshold_sample",
        "mislabeled",
    ]
    assert res.summary.samples == 0 and res.summary.rows == 0


# --------------------------------------------------------------------------------------------
# Non-finite logits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_error_and_skip(tmp_path, rng, bad):
    epochs = make_epochs(rng, n_epochs=3, n_samples=30)
    r = epochs[1]
    bad_rows = [2, 5]
    r.logits[2, 0] = bad
    r.logits[5, :] = bad
    write_log(tmp_path, epochs, batches_per_file=2)
    with pytest.raises(aum_score.LogFormatError, match=r"epoch_1\.arrow"):
        aum_score.score(tmp_path)
    res = aum_score.score(tmp_path, nonfinite="skip")
    keep = np.setdiff1d(np.arange(len(r)), bad_rows)
    epochs[1] = r.take(keep)
    # Samples whose only rows were skipped cannot appear; the reference drops them the same way.
    assert_matches_reference(res.table, rows_of(epochs))
    assert res.summary.skipped_rows == 2
    assert res.summary.rows == len(rows_of(epochs))


def test_summary_to_dict(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2)
    write_log(tmp_path, epochs)
    s = aum_score.score(tmp_path, threshold_class=4).summary
    d = s.to_dict()
    for key in (
        "samples",
        "rows",
        "epochs",
        "classes",
        "threshold_samples",
        "threshold",
        "flagged",
        "seconds",
        "rows_per_second",
        "skipped_rows",
    ):
        assert key in d
        assert d[key] == getattr(s, key)
    assert s.seconds >= 0 and s.rows_per_second >= 0


def test_logformaterror_is_valueerror():
    assert issubclass(aum_score.LogFormatError, ValueError)


def test_build_info():
    info = aum_score.build_info()
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["threads"], int) and info["threads"] >= 1
    assert re.match(r"\d+\.\d+", info["version"])


@pytest.mark.parametrize("id_kind", ["int", "sparse", "str"])
@pytest.mark.parametrize("expected", [0, 1, 50, 10_000])
def test_the_expected_samples_hint_changes_no_result(rng, id_kind, expected):
    # The hint sizes tables up front (too small, right or far too big): the state is the same.
    from aum_score import _core
    from aum_score.scoring import sample_keys

    epochs = make_epochs(
        rng, n_samples=60, n_epochs=3, id_kind="str" if id_kind == "str" else "int"
    )
    states = []
    for hint in (None, expected):
        acc = _core.Accumulator(5, id_kind == "str")
        if hint is not None:
            acc.expect_samples(hint)
        for e, rows in epochs.items():
            ids = rows.sample_ids
            if id_kind == "sparse":
                ids = ids.astype(np.int64) * -7_919_000_001 + 3
            keys = sample_keys(acc, pa.array(ids), "batch")
            acc.add(np.ascontiguousarray(rows.logits), rows.labels, keys, epoch=e)
        states.append(acc.arrays())
    for a, b in zip(*states):
        np.testing.assert_array_equal(a if a.dtype.kind != "O" else a.astype(str), b)
