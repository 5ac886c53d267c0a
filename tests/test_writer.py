"""LogitWriter against the log format in the README ("The logit log")."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import ipc
from reference import assert_matches_reference, make_epochs, rows_of, sample_labels, write_labels

import aum_score


def final_files(d):
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".arrow"))


def write_epochs(writer, epochs, batch=7, with_labels=True):
    for e in sorted(epochs):
        r = epochs[e]
        for a in range(0, len(r), batch):
            writer.write(
                r.sample_ids[a : a + batch],
                r.logits[a : a + batch],
                r.labels[a : a + batch] if with_labels else None,
            )
        writer.end_epoch()


def test_epoch_file_appears_only_after_end_epoch(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2)
    log = tmp_path / "log"
    with aum_score.LogitWriter(log) as w:
        r0 = epochs[0]
        w.write(r0.sample_ids[:10], r0.logits[:10], r0.labels[:10])
        assert "epoch_0000.arrow" not in final_files(log)
        w.write(r0.sample_ids[10:], r0.logits[10:], r0.labels[10:])
        w.end_epoch()
        assert final_files(log) == ["epoch_0000.arrow"]
        assert not list(log.glob("*.partial"))

        r1 = epochs[1]
        w.write(r1.sample_ids, r1.logits, r1.labels)
        assert final_files(log) == ["epoch_0000.arrow"]
        # A reader running now sees only the finished epoch (a .partial file is skipped).
        mid = aum_score.score(log)
        assert_matches_reference(mid.table, epochs[0])
        w.end_epoch()
        assert final_files(log) == ["epoch_0000.arrow", "epoch_0001.arrow"]
    assert_matches_reference(aum_score.score(log).table, rows_of(epochs))


def test_exception_leaves_no_file_for_the_unfinished_epoch(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2)
    log = tmp_path / "log"
    with pytest.raises(RuntimeError, match="training blew up"), aum_score.LogitWriter(log) as w:
        w.write(epochs[0].sample_ids, epochs[0].logits, epochs[0].labels)
        w.end_epoch()
        w.write(epochs[1].sample_ids, epochs[1].logits, epochs[1].labels)
        raise RuntimeError("training blew up")
    assert final_files(log) == ["epoch_0000.arrow"]
    # What is left is a valid log of the finished epoch only.
    assert_matches_reference(aum_score.score(log).table, epochs[0])


@pytest.mark.parametrize(
    "dtype", [np.float16, np.float32, np.float64], ids=lambda d: np.dtype(d).name
)
@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_written_log_format_and_scores(tmp_path, rng, dtype, id_kind):
    epochs = make_epochs(rng, n_epochs=3, num_classes=6, dtype=dtype, id_kind=id_kind)
    log = tmp_path / "log"
    with aum_score.LogitWriter(log) as w:
        write_epochs(w, epochs)
    assert final_files(log) == ["epoch_0000.arrow", "epoch_0001.arrow", "epoch_0002.arrow"]
    for e in range(3):
        # An Arrow IPC *file* (not a stream), with the spec's schema and metadata.
        with ipc.open_file(str(log / f"epoch_{e:04d}.arrow")) as f:
            schema = f.schema
            table = f.read_all()
        assert schema.metadata[b"epoch"] == str(e).encode()
        assert schema.metadata[b"aum_score_log"] == b"1"
        assert schema.field("sample_id").type == (pa.string() if id_kind == "str" else pa.int64())
        assert schema.field("logits").type == pa.list_(pa.from_numpy_dtype(np.dtype(dtype)), 6)
        assert schema.field("label").type == pa.int64()
        r = epochs[e]
        assert table.column("sample_id").to_pylist() == r.sample_ids.tolist()
        got = np.asarray(table.column("logits").combine_chunks().flatten()).reshape(-1, 6)
        assert got.dtype == np.dtype(dtype) and np.array_equal(got, r.logits)
    res = aum_score.score(log)
    assert_matches_reference(res.table, rows_of(epochs))


def test_without_labels_then_labels_file(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2)
    log = tmp_path / "log"
    with aum_score.LogitWriter(log) as w:
        write_epochs(w, epochs, with_labels=False)
    with ipc.open_file(str(log / "epoch_0000.arrow")) as f:
        assert "label" not in f.schema.names
    lab = write_labels(tmp_path / "labels.parquet", *sample_labels(epochs))
    assert_matches_reference(aum_score.score(log, labels=lab).table, rows_of(epochs))


def test_start_epoch_numbers_files_and_metadata(tmp_path, rng):
    epochs = make_epochs(rng, n_epochs=2)
    log = tmp_path / "log"
    with aum_score.LogitWriter(log, start_epoch=9) as w:
        write_epochs(w, epochs)
    assert final_files(log) == ["epoch_0009.arrow", "epoch_0010.arrow"]
    # Epoch 10 is the second one written.
    assert_matches_reference(aum_score.score(log, epochs="10:").table, epochs[1])


def test_torch_tensors_float16_kept(tmp_path, rng):
    torch = pytest.importorskip("torch")
    epochs = make_epochs(rng, n_epochs=2, num_classes=4, dtype=np.float16)
    log = tmp_path / "log"
    with aum_score.LogitWriter(log) as w:
        for e in sorted(epochs):
            r = epochs[e]
            # Like a training loop: logits that require grad, int64 ids and targets as tensors.
            logits = torch.from_numpy(r.logits.copy()).requires_grad_(True)
            w.write(torch.from_numpy(r.sample_ids), logits * 1, torch.from_numpy(r.labels))
            w.end_epoch()
    with ipc.open_file(str(log / "epoch_0001.arrow")) as f:
        assert f.schema.field("logits").type == pa.list_(pa.float16(), 4)
        assert f.schema.field("sample_id").type == pa.int64()
    assert_matches_reference(aum_score.score(log).table, rows_of(epochs))


def test_torch_float32_tensors(tmp_path, rng):
    torch = pytest.importorskip("torch")
    epochs = make_epochs(rng, n_epochs=2, num_classes=5)
    log = tmp_path / "log"
    with aum_score.LogitWriter(log) as w:
        for e in sorted(epochs):
            r = epochs[e]
            for idx in np.array_split(np.arange(len(r)), 3):
                w.write(
                    torch.from_numpy(r.sample_ids[idx]),
                    torch.from_numpy(r.logits[idx]),
                    torch.from_numpy(r.labels[idx]),
                )
            w.end_epoch()
    with ipc.open_file(str(log / "epoch_0000.arrow")) as f:
        assert f.schema.field("logits").type == pa.list_(pa.float32(), 5)
    assert_matches_reference(aum_score.score(log).table, rows_of(epochs))
