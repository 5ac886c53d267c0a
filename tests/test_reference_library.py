"""aum_score equals the official `aum` package (PyPI, 1.0.2) on the same float32 rows."""

from __future__ import annotations

import numpy as np
import pytest

aum = pytest.importorskip("aum")
torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")

from reference import as_rows_dict, make_epochs, rows_of, write_log  # noqa: E402

import aum_score  # noqa: E402  (after the importorskips on purpose)


def official_aum(tmp_path, rows, batch_sizes, allow_changes=False):
    """Run aum.AUMCalculator over rows in order, in batches of >= 2 rows (1.0.2 crashes on 1)."""
    calc = aum.AUMCalculator(str(tmp_path / "official"), compressed=True)
    n = len(rows)
    a = 0
    k = 0
    while a < n:
        b = min(n, a + batch_sizes[k % len(batch_sizes)])
        if n - b == 1:  # never leave a one-row batch at the end
            b = n
        ids = rows.sample_ids[a:b].tolist()
        calc.update(torch.tensor(rows.logits[a:b]), torch.tensor(rows.labels[a:b]), ids)
        a = b
        k += 1
    calc.finalize()
    df = pd.read_csv(tmp_path / "official" / "aum_values.csv", dtype={"sample_id": object})
    return {sid: float(v) for sid, v in zip(df["sample_id"], df["aum"])}, calc


@pytest.mark.parametrize("id_kind", ["int", "str"])
@pytest.mark.parametrize("fmt", ["file", "parquet"])
def test_equals_official_aum(tmp_path, rng, id_kind, fmt):
    # Shuffled rows, samples missing from epochs, duplicates within an epoch, several epochs.
    epochs = make_epochs(
        rng, n_samples=120, num_classes=10, n_epochs=5, id_kind=id_kind, duplicates=0.2
    )
    write_log(tmp_path / "log", epochs, fmt=fmt, batches_per_file=2)
    rows = rows_of(epochs)
    official, calc = official_aum(tmp_path, rows, batch_sizes=[32, 7, 64, 2])
    ours = as_rows_dict(aum_score.score(tmp_path / "log").table)
    # The CSV holds ids as text: map ours the same way.
    ours_by_text = {str(k): v for k, v in ours.items()}
    assert set(ours_by_text) == set(official)
    for sid, v in official.items():
        assert ours_by_text[sid]["aum"] == pytest.approx(v, rel=1e-9, abs=1e-12), sid
    # Counts agree with the library's own bookkeeping.
    for sid, c in calc.counts.items():
        assert ours_by_text[str(sid)]["count"] == c


def test_equals_official_aum_streaming_and_label_changes(tmp_path, rng):
    # The library lets a sample's label change between rows; allow_label_changes mimics that.
    epochs = make_epochs(rng, n_samples=60, num_classes=4, n_epochs=4)
    for e in (1, 3):
        epochs[e].labels[::3] = (epochs[e].labels[::3] + 1) % 4
    rows = rows_of(epochs)
    official, _ = official_aum(tmp_path, rows, batch_sizes=[16])
    sc = aum_score.Scorer(4, allow_label_changes=True)
    for a in range(0, len(rows), 16):
        sc.update(rows.logits[a : a + 16], rows.labels[a : a + 16], rows.sample_ids[a : a + 16])
    ours = {str(k): v for k, v in as_rows_dict(sc.result().table).items()}
    assert set(ours) == set(official)
    for sid, v in official.items():
        assert ours[sid]["aum"] == pytest.approx(v, rel=1e-9, abs=1e-12), sid


def test_official_margins_equal_ours(rng):
    z = (rng.normal(size=(64, 7)) * 3).astype(np.float32)
    z[:8, 3] = z[:8, 0]  # ties
    y = rng.integers(0, 7, size=64)
    calc = aum.AUMCalculator("unused", compressed=True)
    records = calc.update(torch.tensor(z), torch.tensor(y), list(range(64)))
    theirs = np.array([records[i].margin for i in range(64)])
    ours = aum_score.margins(z, y)
    assert np.array_equal(ours, theirs)
