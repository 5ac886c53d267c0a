"""Compact logs: per-row reductions instead of all logits, identical AUMs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from reference import make_epochs

import aum_score
from aum_score.compact import compact_records


def write_both(tmp_path, epochs, dtype=np.float32):
    with (
        aum_score.LogitWriter(tmp_path / "full") as full,
        aum_score.LogitWriter(tmp_path / "compact", compact=True) as compact,
    ):
        for e in sorted(epochs):
            rows = epochs[e]
            for part in np.array_split(np.arange(len(rows.labels)), 3):
                ids, y = rows.sample_ids[part], rows.labels[part]
                z = rows.logits[part].astype(dtype)
                full.write(ids, z, y)
                compact.write(ids, z, y)
            full.end_epoch()
            compact.end_epoch()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_compact_and_full_logs_score_identically(tmp_path, rng, dtype, id_kind):
    epochs = make_epochs(rng, n_samples=80, num_classes=6, n_epochs=4, id_kind=id_kind)
    write_both(tmp_path, epochs, dtype)
    full = aum_score.score(tmp_path / "full", threshold_class=5, percentile=90)
    compact = aum_score.score(tmp_path / "compact", threshold_class=5, percentile=90)
    assert compact.table.equals(full.table)
    assert compact.monitor.equals(full.monitor)
    assert compact.summary.classes == 6


def test_mixed_compact_and_full_files(tmp_path, rng):
    epochs = make_epochs(rng, n_samples=50, num_classes=4, n_epochs=4)
    write_both(tmp_path, epochs)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for e in range(4):
        kind = "full" if e % 2 else "compact"
        (mixed / f"epoch_{e:04d}.arrow").write_bytes(
            (tmp_path / kind / f"epoch_{e:04d}.arrow").read_bytes()
        )
    assert aum_score.score(mixed).table.equals(aum_score.score(tmp_path / "full").table)


def test_compact_records_match_numpy(rng):
    z = rng.normal(size=(200, 9)).astype(np.float32)
    z[:5, :] = 1.0  # ties: the first other class wins, as torch.max does
    y = rng.integers(0, 9, 200)
    records = compact_records(z, y)
    assert np.array_equal(records.margins, aum_score.margins(z, y))
    masked = z.copy()
    masked[np.arange(200), y] = -np.inf
    assert np.array_equal(records.other_class, masked.argmax(axis=1))
    lse = np.log(np.exp(z.astype(np.float64)).sum(axis=1))
    assert np.allclose(records.logsumexp, lse, rtol=1e-6)


def test_compact_records_torch_match_numpy(rng):
    torch = pytest.importorskip("torch")
    from aum_score.compact import compact_records_torch

    z = rng.normal(size=(100, 7)).astype(np.float32)
    y = rng.integers(0, 7, 100)
    a = compact_records(z, y)
    b = compact_records_torch(torch.tensor(z, requires_grad=True), torch.tensor(y))
    for name in ("label_logit", "other_logit", "other_class"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.allclose(a.logsumexp, b.logsumexp, rtol=1e-6)


def test_compact_log_is_smaller(tmp_path, rng):
    epochs = make_epochs(rng, n_samples=300, num_classes=100, n_epochs=1, missing=0.0)
    write_both(tmp_path, epochs)
    full = (tmp_path / "full" / "epoch_0000.arrow").stat().st_size
    compact = (tmp_path / "compact" / "epoch_0000.arrow").stat().st_size
    assert compact * 10 < full


def test_compact_log_needs_labels(tmp_path):
    with aum_score.LogitWriter(tmp_path, compact=True) as writer:
        with pytest.raises(ValueError, match="labels"):
            writer.write([1, 2], np.zeros((2, 3), np.float32))


def test_compact_file_without_classes_metadata_is_rejected(tmp_path):
    table = pa.table(
        {
            "sample_id": [1],
            "label": [0],
            "label_logit": pa.array([1.0], pa.float32()),
            "other_logit": pa.array([0.0], pa.float32()),
        }
    )
    path = tmp_path / "bad.arrow"
    with pa.ipc.new_file(path, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(aum_score.LogFormatError, match="classes"):
        aum_score.score(path)


def test_compact_label_outside_classes_is_rejected(tmp_path):
    table = pa.table(
        {
            "sample_id": [1, 2],
            "label": [0, 5],
            "label_logit": pa.array([1.0, 1.0], pa.float32()),
            "other_logit": pa.array([0.0, 0.0], pa.float32()),
        }
    ).replace_schema_metadata({"classes": "3"})
    path = tmp_path / "bad.arrow"
    with pa.ipc.new_file(path, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(aum_score.LogFormatError, match="row 1"):
        aum_score.score(path)
