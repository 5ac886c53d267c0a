"""Resume and extend: a saved state plus new epoch files gives the result of scoring all epochs at
once, without reading the old files; a state that cannot be extended safely is refused."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import reference as ref

import aum_score
from aum_score import LogFormatError, Scorer
from aum_score.state import FORMAT_VERSION, MAGIC, load_state

THRESHOLD = 5  # class of the threshold samples in these logs (C = 6)


def make_run(rng, id_kind="int", n_epochs=7):
    labels = rng.integers(0, 6, size=80)
    return ref.make_epochs(
        rng, n_samples=80, num_classes=6, n_epochs=n_epochs, id_kind=id_kind, labels=labels
    )


def write_epoch_files(directory: Path, epochs: dict, epoch_in: str, **kwargs) -> list[Path]:
    """One file per epoch named epoch_{e}; the epoch in metadata, a column, or only the name."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for e in sorted(epochs):
        table = ref.rows_table(
            epochs[e],
            epoch=e if epoch_in == "column" else None,
            metadata={b"epoch": str(e).encode()} if epoch_in == "metadata" else None,
            **kwargs,
        )
        paths.append(ref.write_table(directory / f"epoch_{e}.arrow", table))
    return paths


def assert_same_result(got: aum_score.ScoreResult, want: aum_score.ScoreResult) -> None:
    """Same samples, labels, counts and flags; AUM within 1e-12 relative; same monitor."""
    g, w = ref.as_rows_dict(got.table), ref.as_rows_dict(want.table)
    assert set(g) == set(w)
    for sid, row in w.items():
        assert g[sid]["label"] == row["label"]
        assert g[sid]["count"] == row["count"]
        assert g[sid]["threshold_sample"] == row["threshold_sample"]
        assert g[sid]["mislabeled"] == row["mislabeled"]
        assert abs(g[sid]["aum"] - row["aum"]) <= 1e-12 * max(1.0, abs(row["aum"]))
    assert got.summary.rows == want.summary.rows
    assert got.summary.epochs == want.summary.epochs
    assert got.summary.threshold == pytest.approx(want.summary.threshold, rel=1e-12)
    assert got.summary.flagged == want.summary.flagged
    assert got.monitor.column("epoch").to_pylist() == want.monitor.column("epoch").to_pylist()
    for name in ("rows", "threshold_rows"):
        assert got.monitor.column(name).to_pylist() == want.monitor.column(name).to_pylist()
    for name in ("mean_margin", "threshold_fitted", "threshold_mean_margin"):
        np.testing.assert_allclose(
            got.monitor.column(name).to_numpy(zero_copy_only=False).astype(float),
            want.monitor.column(name).to_numpy(zero_copy_only=False).astype(float),
            rtol=1e-12,
        )


@pytest.mark.parametrize("id_kind", ["int", "str"])
@pytest.mark.parametrize("epoch_in", ["metadata", "filename", "column"])
def test_resume_equals_scoring_all_epochs_at_once(tmp_path, rng, id_kind, epoch_in):
    epochs = make_run(rng, id_kind)
    old = write_epoch_files(tmp_path / "old", {e: epochs[e] for e in range(3)}, epoch_in)
    new = write_epoch_files(tmp_path / "new", {e: epochs[e] for e in range(3, 7)}, epoch_in)
    every = tmp_path / "all"
    every.mkdir()
    for path in old + new:
        shutil.copy(path, every)
    state = tmp_path / "run.aumstate"

    first = aum_score.score(tmp_path / "old", threshold_class=THRESHOLD, save_state=state)
    assert first.summary.epochs == 3
    # The old files are gone: resuming must not need them.
    (tmp_path / "old").rename(tmp_path / "gone")
    shutil.rmtree(tmp_path / "gone")
    resumed = aum_score.score(tmp_path / "new", state=state, save_state=state)
    whole = aum_score.score(every, threshold_class=THRESHOLD)

    assert_same_result(resumed, whole)
    ref.assert_matches_reference(resumed.table, ref.rows_of(epochs))
    ref.check_flags(resumed.table, THRESHOLD, 99.0, resumed.summary)
    saved = load_state(state)
    assert saved.epochs() == list(range(7))
    assert [e["name"] for e in saved.files] == [p.name for p in old + new]
    assert saved.threshold_class == THRESHOLD
    # The extended state alone gives the same result again.
    assert_same_result(aum_score.score([], state=state), whole)


@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_resume_with_a_labels_file(tmp_path, rng, id_kind):
    epochs = make_run(rng, id_kind)
    ids, labels = ref.sample_labels(epochs)
    labels_path = ref.write_labels(tmp_path / "labels.parquet", ids, labels)
    ref.write_log(tmp_path / "old", {e: epochs[e] for e in range(4)}, with_label=False)
    ref.write_log(tmp_path / "new", {e: epochs[e] for e in range(4, 7)}, with_label=False)
    ref.write_log(tmp_path / "all", epochs, with_label=False)
    state = tmp_path / "s.aumstate"
    aum_score.score(tmp_path / "old", labels_path, threshold_class=THRESHOLD, save_state=state)
    shutil.rmtree(tmp_path / "old")
    # The state holds every labelled sample: the new files need no labels file.
    resumed = aum_score.score(tmp_path / "new", state=state)
    whole = aum_score.score(tmp_path / "all", labels_path, threshold_class=THRESHOLD)
    assert_same_result(resumed, whole)
    # Given again, the labels file must still agree with the state.
    assert_same_result(aum_score.score(tmp_path / "new", labels_path, state=state), whole)
    bad = labels.copy()
    bad[0] = (bad[0] + 1) % THRESHOLD
    bad_path = ref.write_labels(tmp_path / "bad.parquet", ids, bad)
    with pytest.raises(LogFormatError, match="earlier state"):
        aum_score.score(tmp_path / "new", bad_path, state=state)


def test_resume_keeps_the_epoch_window_and_threshold_class(tmp_path, rng):
    epochs = make_run(rng)
    ref.write_log(tmp_path / "old", {e: epochs[e] for e in range(4)})
    ref.write_log(tmp_path / "new", {e: epochs[e] for e in range(4, 7)})
    ref.write_log(tmp_path / "all", epochs)
    state = tmp_path / "s.aumstate"
    aum_score.score(tmp_path / "old", epochs="1:6", threshold_class=THRESHOLD, save_state=state)
    resumed = aum_score.score(tmp_path / "new", state=state)
    whole = aum_score.score(tmp_path / "all", epochs="1:6", threshold_class=THRESHOLD)
    assert resumed.summary.epoch_window == [1, 6]
    assert_same_result(resumed, whole)
    with pytest.raises(LogFormatError, match="threshold class 5, not 3"):
        aum_score.score(tmp_path / "new", state=state, threshold_class=3)
    with pytest.raises(LogFormatError, match="cannot extend a state"):
        aum_score.score(tmp_path / "new", state=state, epochs="1:auto")


def test_cli_resume_and_save_state(tmp_path, rng, cli):
    epochs = make_run(rng, "str")
    ref.write_log(tmp_path / "old", {e: epochs[e] for e in range(3)}, fmt="parquet")
    ref.write_log(tmp_path / "new", {e: epochs[e] for e in range(3, 7)}, fmt="stream")
    every = tmp_path / "all"
    ref.write_log(every, {e: epochs[e] for e in range(3)}, fmt="parquet")
    ref.write_log(every, {e: epochs[e] for e in range(3, 7)}, fmt="stream")
    state = tmp_path / "run.aumstate"
    run = cli("score", tmp_path / "old", "--threshold-class", THRESHOLD, "--save-state", state,
              "-q", "-o", tmp_path / "first.parquet")  # fmt: skip
    assert run.exit_code == 0, run
    shutil.rmtree(tmp_path / "old")
    run = cli("score", tmp_path / "new", "--resume", state, "--save-state", state,
              "-o", tmp_path / "resumed.parquet", "-q")  # fmt: skip
    assert run.exit_code == 0, run
    run = cli("score", every, "--threshold-class", THRESHOLD, "-o", tmp_path / "all.parquet")
    assert run.exit_code == 0, run
    got = aum_score.read_table(tmp_path / "resumed.parquet")
    want = aum_score.read_table(tmp_path / "all.parquet")
    assert got.column("sample_id").to_pylist() == want.column("sample_id").to_pylist()
    np.testing.assert_allclose(got.column("aum"), want.column("aum"), rtol=1e-12)
    assert got.column("mislabeled").to_pylist() == want.column("mislabeled").to_pylist()
    # --resume without LOGS prints the state's result; feeding the new files again is refused.
    run = cli("score", "--resume", state, "--json")
    assert run.exit_code == 0, run
    assert '"epochs": 7' in run.stdout
    before = state.read_bytes()
    run = cli("score", tmp_path / "new", "--resume", state, "--save-state", state)
    assert run.exit_code == 1
    assert "already scored into state" in run.stderr and "epoch_3.arrows" in run.stderr
    assert "Traceback" not in run.output
    assert state.read_bytes() == before  # a refused run leaves the state as it was
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    run = cli("score")
    assert run.exit_code == 2 and "--resume STATE" in run.output


# --- rejections ---------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path, rng):
    """A state over epochs 0..2 of a 6-class run with integer ids, and the run's epochs."""
    epochs = make_run(rng)
    ref.write_log(tmp_path / "old", {e: epochs[e] for e in range(3)})
    state = tmp_path / "s.aumstate"
    aum_score.score(tmp_path / "old", threshold_class=THRESHOLD, save_state=state)
    return state, epochs


def test_feeding_an_old_file_again_is_refused(tmp_path, saved):
    state, _ = saved
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "old", moved)  # same name and size, other directory
    with pytest.raises(LogFormatError, match=r"epoch_1\.arrow: already scored into state .*s\."):
        aum_score.score(moved / "epoch_1.arrow", state=state)


def test_feeding_an_old_epoch_again_is_refused(tmp_path, saved):
    state, epochs = saved
    # Another file (name and size differ) claiming epoch 2 in its metadata.
    ref.write_log(tmp_path / "again", {2: epochs[3]}, name=lambda e, p: "retry_2")
    with pytest.raises(LogFormatError, match=r"retry_2\.arrow: epoch 2 is already in state"):
        aum_score.score(tmp_path / "again", state=state)
    # Epochs only known from a column are checked once read.
    ref.write_log(tmp_path / "col", {1: epochs[4], 5: epochs[5]}, epoch_in="column",
                  single_file=True)  # fmt: skip
    with pytest.raises(LogFormatError, match=r"log\.arrow: rows of epoch 1 .* already in state"):
        aum_score.score(tmp_path / "col", state=state)
    # A window that leaves the old epoch out is fine.
    result = aum_score.score(tmp_path / "col", state=state, epochs="3:")
    assert result.monitor.column("epoch").to_pylist() == [0, 1, 2, 5]


def test_different_classes_or_id_kind_is_refused(tmp_path, rng, saved):
    state, _ = saved
    other = ref.make_epochs(rng, n_samples=10, num_classes=4, n_epochs=1, first_epoch=3)
    ref.write_log(tmp_path / "c4", other)
    with pytest.raises(LogFormatError, match=r"epoch_3\.arrow: logits have 4 classes, but state"):
        aum_score.score(tmp_path / "c4", state=state)
    strings = ref.make_epochs(rng, n_samples=10, num_classes=6, n_epochs=1, first_epoch=3,
                              id_kind="str")  # fmt: skip
    ref.write_log(tmp_path / "str", strings)
    with pytest.raises(LogFormatError, match="sample ids are strings, but in state .* integers"):
        aum_score.score(tmp_path / "str", state=state)


def test_state_of_another_format_version_is_refused(saved):
    state, _ = saved
    data = bytearray(state.read_bytes())
    struct.pack_into("<I", data, len(MAGIC), FORMAT_VERSION + 1)
    state.write_bytes(bytes(data))
    with pytest.raises(LogFormatError, match=r"s\.aumstate: state format version 2 \(written by "
                       r"aum-score .*\) cannot be read by aum-score"):  # fmt: skip
        load_state(state)


def test_missing_foreign_truncated_states_are_refused(tmp_path, saved):
    state, _ = saved
    with pytest.raises(LogFormatError, match="nope.aumstate: no such state file"):
        load_state(tmp_path / "nope.aumstate")
    foreign = tmp_path / "foreign.aumstate"
    foreign.write_bytes(b"PAR1 not a state")
    with pytest.raises(LogFormatError, match="foreign.aumstate: not an aum-score state file"):
        load_state(foreign)
    bare = tmp_path / "bare.aumstate"
    bare.write_bytes(Scorer.load(state).to_bytes())
    with pytest.raises(LogFormatError, match="bare Scorer.to_bytes"):
        load_state(bare)
    data = state.read_bytes()
    for size in (0, 10, len(MAGIC) + 4, len(MAGIC) + 8, len(data) // 2, len(data) - 1):
        state.write_bytes(data[:size])
        with pytest.raises(LogFormatError, match=r"s\.aumstate: "):
            load_state(state)


def test_byte_flips_never_crash(tmp_path, saved, rng):
    """Every flipped byte is one clear error (the checksum); and payloads that pass the checksum
    but are hostile (checksum recomputed) load or fail cleanly, never crash."""
    import hashlib

    state, _ = saved
    data = state.read_bytes()
    for position in rng.choice(len(data), size=min(len(data), 300), replace=False):
        flipped = bytearray(data)
        flipped[position] ^= 1 << int(rng.integers(8))
        state.write_bytes(bytes(flipped))
        with pytest.raises(LogFormatError, match=r"s\.aumstate: "):
            load_state(state)
    for position in rng.choice(len(data) - 32, size=300, replace=False):
        flipped = bytearray(data[:-32])
        flipped[position] = int(rng.integers(256))
        body = bytes(flipped)
        state.write_bytes(body + hashlib.sha256(body).digest())
        try:
            loaded = load_state(state)
        except LogFormatError as exc:
            assert str(exc).startswith(str(state))
        else:
            aum_score.score([], state=state, bootstrap=0)  # still usable, whatever it holds
            assert loaded.classes >= 0


# --- the streaming Scorer -------------------------------------------------------------------------


def test_scorer_save_and_load_continue_the_same_run(tmp_path, rng):
    epochs = make_run(rng, "str")
    whole = Scorer(threshold_class=THRESHOLD, bootstrap=0)
    part = Scorer(threshold_class=THRESHOLD, bootstrap=0)
    for e in range(7):
        rows = epochs[e]
        whole.update(rows.logits, rows.labels, rows.sample_ids)
        whole.end_epoch()
        if e == 3:
            part.save(tmp_path / "scorer.aumstate")
            part = Scorer.load(tmp_path / "scorer.aumstate", bootstrap=0)
            assert part.epoch == 3 and part.threshold_class == THRESHOLD
        part.update(rows.logits, rows.labels, rows.sample_ids)
        part.end_epoch()
    assert_same_result(part.result(), whole.result())
    ref.assert_matches_reference(part.result().table, ref.rows_of(epochs))
    with pytest.raises(LogFormatError, match="threshold class 5, not 2"):
        Scorer.load(tmp_path / "scorer.aumstate", threshold_class=2)


def test_scorer_loads_a_state_saved_by_score(tmp_path, saved):
    state, epochs = saved
    scorer = Scorer.load(state, bootstrap=0)
    assert scorer.epoch == 3  # the next epoch after the files' epochs 0..2
    for e in range(3, 7):
        scorer.update(epochs[e].logits, epochs[e].labels, epochs[e].sample_ids)
        scorer.end_epoch()
    ref.write_log(tmp_path / "all", epochs)
    whole = aum_score.score(tmp_path / "all", threshold_class=THRESHOLD, bootstrap=0)
    assert_same_result(scorer.result(), whole)


def test_state_file_is_written_atomically(tmp_path, saved, rng):
    """A run that fails leaves the previous state file byte for byte, and no temporary file."""
    state, epochs = saved
    before = state.read_bytes()
    bad = ref.write_log(tmp_path / "bad", {3: epochs[3]})[0]
    bad.write_bytes(bad.read_bytes()[:-40])  # truncated
    with pytest.raises(LogFormatError, match=r"epoch_3\.arrow"):
        aum_score.score(tmp_path / "bad", state=state, save_state=state)
    assert state.read_bytes() == before
    assert [p.name for p in state.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert load_state(state).epochs() == [0, 1, 2]
