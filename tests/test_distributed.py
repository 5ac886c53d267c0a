"""Distributed scoring on a real Dask LocalCluster (worker processes, TCP on loopback): the same
answer as the local scorer in both modes, worker deaths, bad files, the CLI."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reference import make_epochs, sample_labels, write_log, write_table

import aum_score
from aum_score import _core
from aum_score.distributed.cluster import REDUCE_BYTES_PER_SAMPLE, choose_mode

distributed = pytest.importorskip("distributed")

# A hung cluster fails the test instead of the CI job: each test gets 120 s (the slowest,
# the killed worker, takes ~5 s here). thread: dask's own threads keep running, so the
# signal method's exception could land in one of them.
pytestmark = pytest.mark.timeout(120, method="thread")

C = 6  # the last class is the threshold class
TC = C - 1


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


def assert_same(local, dist) -> None:
    """Same samples, labels, counts and flags; AUM within 1e-12 relative; same summary."""
    a = local.table.sort_by("sample_id")
    b = dist.table.sort_by("sample_id")
    assert a.column_names == b.column_names
    for name in a.column_names:
        if name not in ("aum", "flag_rate"):
            assert a[name].equals(b[name]), name
    np.testing.assert_allclose(b["aum"].to_numpy(), a["aum"].to_numpy(), rtol=1e-12, atol=1e-300)
    if "flag_rate" in a.column_names:
        assert a["flag_rate"].equals(b["flag_rate"])
    s, t = local.summary, dist.summary
    for field in ("samples", "rows", "epochs", "threshold_samples", "threshold", "flagged"):
        assert getattr(s, field) == getattr(t, field), field
    assert (s.skipped_rows, s.threshold_interval) == (t.skipped_rows, t.threshold_interval)
    assert s.epoch_window == t.epoch_window
    assert local.monitor["epoch"].equals(dist.monitor["epoch"])
    assert local.monitor["threshold_rows"].equals(dist.monitor["threshold_rows"])


def both_modes(client, tmp_path, logs, **options):
    """The local result, then the reduce- and shard-mode results of the same run."""
    local = aum_score.score(logs, **options)
    reduced = aum_score.score(logs, scheduler=client, mode="reduce", **options)
    sharded = aum_score.distributed.score(
        logs, scheduler=client, mode="shard", output=tmp_path / "out", shards=3,
        task_bytes=2000, **options,
    )  # fmt: skip
    return local, reduced, sharded


@pytest.mark.parametrize(
    "id_kind, fmt", [("int", "file"), ("str", "parquet"), ("int", "stream"), ("str", "file")]
)
def test_both_modes_equal_local(client, tmp_path, rng, id_kind, fmt):
    epochs = make_epochs(rng, n_samples=300, num_classes=C, n_epochs=5, id_kind=id_kind)
    write_log(tmp_path / "log", epochs, fmt=fmt, batches_per_file=4)
    local, reduced, sharded = both_modes(
        client, tmp_path, tmp_path / "log", threshold_class=TC, percentile=90, epochs="1:"
    )
    assert local.summary.flagged > 0 and local.summary.epochs == 4
    assert_same(local, reduced)
    assert_same(local, sharded)
    assert len(sharded.files) == 3


def test_labels_file_and_threshold_class_from_it(client, tmp_path, rng):
    real = rng.integers(0, C - 1, size=400)  # C - 1 real classes; the logits have C
    epochs = make_epochs(rng, n_samples=400, num_classes=C, n_epochs=3, id_kind="str", labels=real)
    ids, labels = sample_labels(epochs)
    # A threshold-samples labels file (aum-score threshold-samples) names the threshold class.
    assigned = aum_score.assign_threshold_samples(ids, labels, num_classes=C - 1, seed=3)
    pq.write_table(assigned, tmp_path / "assigned.parquet")
    relabelled = dict(zip(assigned["sample_id"].to_pylist(), assigned["label"].to_pylist()))
    for rows in epochs.values():
        rows.labels[:] = [relabelled[i] for i in rows.sample_ids.tolist()]
    # The log has no label column: every row takes its label from the file.
    write_log(tmp_path / "log", epochs, fmt="parquet", with_label=False, batches_per_file=3)
    local, reduced, sharded = both_modes(
        client, tmp_path, tmp_path / "log", labels=tmp_path / "assigned.parquet"
    )
    assert local.summary.threshold_samples > 0
    assert_same(local, reduced)
    assert_same(local, sharded)


def test_epoch_column_window_skip_and_label_changes(client, tmp_path, rng):
    epochs = make_epochs(rng, n_samples=200, num_classes=C, n_epochs=5)
    epochs[2].logits[7, 1] = np.nan
    epochs[3].labels[:5] = (epochs[3].labels[:5] + 1) % (C - 1)  # labels change between epochs
    write_log(tmp_path / "log", epochs, epoch_in="column", single_file=True, batches_per_file=6)
    options = dict(threshold_class=TC, epochs="1:4", nonfinite="skip", allow_label_changes=True)
    local, reduced, sharded = both_modes(client, tmp_path, tmp_path / "log", **options)
    assert local.summary.skipped_rows == 1
    assert_same(local, reduced)
    assert_same(local, sharded)


def test_epochs_auto_takes_two_passes_like_local(client, tmp_path, rng):
    epochs = make_epochs(rng, n_samples=300, num_classes=C, n_epochs=6)
    for e, rows in epochs.items():  # threshold samples get fitted from epoch 3 on
        thr = rows.labels == TC
        rows.logits[thr, TC] += 10.0 if e >= 3 else -5.0
    write_log(tmp_path / "log", epochs)
    local, reduced, sharded = both_modes(client, tmp_path, tmp_path / "log", threshold_class=TC,
                                         epochs="auto", percentile=90)  # fmt: skip
    assert local.summary.epoch_window == [None, 3]
    assert_same(local, reduced)
    assert_same(local, sharded)
    assert local.monitor.equals(reduced.monitor)


def _splitmix64(ids: np.ndarray) -> np.ndarray:
    """The shard hash, written again from its definition (splitmix64's finaliser)."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def test_shard_files_partition_samples_by_id_hash(client, tmp_path, rng):
    epochs = make_epochs(rng, n_samples=500, num_classes=C, n_epochs=2, missing=0)
    write_log(tmp_path / "log", epochs)
    result = aum_score.distributed.score(
        tmp_path / "log", scheduler=client, mode="shard", output=tmp_path / "out", shards=4
    )
    assert sorted(os.listdir(tmp_path / "out")) == [
        "_summary.json", *(f"part-{s:05d}.parquet" for s in range(4))
    ]  # fmt: skip
    seen = []
    for s, path in enumerate(result.files):
        table = pq.read_table(path)
        ids = table["sample_id"].to_numpy()
        assert (_splitmix64(ids) % np.uint64(4) == s).all()
        assert np.all(np.diff(table["aum"].to_numpy()) >= 0)  # each shard sorted by AUM
        seen.append(ids)
    seen = np.concatenate(seen)
    assert len(seen) == len(set(seen.tolist())) == result.summary.samples == 500
    # The dataset reads back as one table.
    assert pq.read_table(tmp_path / "out").num_rows == 500


def test_split_state_keeps_samples_and_totals():
    state = _core.Accumulator(3, False)
    state.set_labels(np.array([100, 200], np.int64), np.array([1, 2]), _core.LABELS_SOURCE)
    logits = np.array([[1, 2, 0], [0, 3, 1], [5, 0, 0], [1, 1, 4]], np.float32)
    state.add(logits, np.array([0, 1, 0, 2]), np.array([1, 2, 1, 200], np.int64), epoch=3)
    parts = _core.split_state(state, 3)
    keys = np.concatenate([p.arrays()[0] for p in parts])
    assert sorted(keys.tolist()) == [1, 2, 200]  # 100 has no margins: dropped
    assert [p.rows_added for p in parts] == [4, 0, 0]  # the totals travel with shard 0
    for s, part in enumerate(parts):
        assert (_core.shard_of_ids(part.arrays()[0], 3) == s).all()
    merged = _core.Accumulator.from_bytes(parts[0].to_bytes())
    for part in parts[1:]:
        merged.merge(part)
    expected = {int(k): (lab, s, c) for k, lab, s, c in zip(*state.arrays()) if c > 0}
    got = {int(k): (lab, s, c) for k, lab, s, c in zip(*merged.arrays())}
    assert got == expected
    assert merged.epoch_tallies()["rows"].tolist() == [4]


def test_auto_mode_shards_when_the_state_outgrows_a_worker():
    memory = 1 << 30
    fits = int(memory * 0.5 / REDUCE_BYTES_PER_SAMPLE) - 1
    assert choose_mode("auto", fits, 4, memory, None) == ("reduce", 1)
    mode, shards = choose_mode("auto", 20 * fits, 4, memory, None)
    assert mode == "shard" and shards >= 20
    assert choose_mode("auto", None, 4, memory, None) == ("reduce", 1)  # size unknown
    assert choose_mode("shard", 10, 4, memory, None) == ("shard", 4)  # one shard per worker
    with pytest.raises(aum_score.LogFormatError, match="mode must be one of"):
        choose_mode("bogus", 10, 4, memory, None)


def test_shard_mode_needs_an_output_directory(client, tmp_path, rng):
    write_log(tmp_path / "log", make_epochs(rng, n_samples=30, num_classes=C, n_epochs=1))
    with pytest.raises(aum_score.LogFormatError, match="output directory"):
        aum_score.score(tmp_path / "log", scheduler=client, mode="shard")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(aum_score.LogFormatError, match="not a dataset written by aum-score"):
        aum_score.score(tmp_path / "log", scheduler=client, mode="shard", output=tmp_path)
    with pytest.raises(aum_score.LogFormatError, match="needs a Dask cluster"):
        aum_score.score(tmp_path / "log", mode="shard")


def test_log_format_error_pickles():
    error = aum_score.LogFormatError("logs/epoch_3.arrow: row 17: label 12 is outside [0, 11)")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is aum_score.LogFormatError and str(again) == str(error)


def _bad_label_log(tmp_path, rng):
    """Epoch 2's file has a label out of range in row 250, in its third record batch."""
    epochs = make_epochs(rng, n_samples=300, num_classes=C, n_epochs=3, missing=0, duplicates=0)
    epochs[2].labels[250] = C + 3
    write_log(tmp_path / "log", epochs, batches_per_file=3)
    return tmp_path / "log"


@pytest.mark.parametrize("mode", ["reduce", "shard"])
def test_bad_row_fails_with_the_local_message(client, tmp_path, rng, mode):
    logs = _bad_label_log(tmp_path, rng)
    with pytest.raises(aum_score.LogFormatError) as local:
        aum_score.score(logs)
    assert "epoch_2.arrow: row 250:" in str(local.value)
    with pytest.raises(aum_score.LogFormatError) as remote:
        out = tmp_path / ("out" if mode == "shard" else "out.parquet")
        aum_score.distributed.score(logs, scheduler=client, mode=mode, output=out, task_bytes=1000)
    assert str(remote.value) == str(local.value)
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]


def test_corrupt_file_fails_with_the_local_message(client, tmp_path, rng):
    epochs = make_epochs(rng, n_samples=100, num_classes=C, n_epochs=2)
    paths = write_log(tmp_path / "log", epochs, fmt="stream")
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) - 300])  # the last batch cut short
    with pytest.raises(aum_score.LogFormatError) as local:
        aum_score.score(tmp_path / "log")
    with pytest.raises(aum_score.LogFormatError) as remote:
        aum_score.score(tmp_path / "log", scheduler=client, mode="reduce")
    assert str(paths[1]) in str(remote.value)
    assert str(remote.value) == str(local.value)


def test_cli_on_a_running_cluster(client, cli, tmp_path, rng):
    epochs = make_epochs(rng, n_samples=200, num_classes=C, n_epochs=3)
    write_log(tmp_path / "log", epochs)
    address = client.scheduler.address
    out = tmp_path / "aum.parquet"
    run = cli("score", tmp_path / "log", "--scheduler", address, "--threshold-class", TC,
              "--percentile", 90, "-o", out)  # fmt: skip
    assert run.exit_code == 0, run
    local = aum_score.score(tmp_path / "log", threshold_class=TC, percentile=90)
    assert pq.read_table(out).sort_by("sample_id").equals(local.table.sort_by("sample_id"))
    run = cli("score", tmp_path / "log", "--scheduler", address, "--mode", "shard",
              "--threshold-class", TC, "-o", tmp_path / "dataset", "--json")  # fmt: skip
    assert run.exit_code == 0, run
    assert '"flagged"' in run.stdout
    assert pq.read_table(tmp_path / "dataset").num_rows == local.summary.samples
    bad = _bad_label_log(tmp_path / "bad", rng)
    run = cli("score", bad, "--scheduler", address, "--mode", "shard", "-o", tmp_path / "x")
    assert run.exit_code == 1 and run.exception is None, run
    assert run.stderr.startswith("Error: ") and "epoch_2.arrow: row 250:" in run.stderr
    assert "Traceback" not in run.output


def test_cli_starts_a_local_cluster(cmd, tmp_path, rng):
    write_log(tmp_path / "log", make_epochs(rng, n_samples=50, num_classes=C, n_epochs=2))
    run = cmd("score", tmp_path / "log", "--workers", 1, "-o", tmp_path / "aum.csv", "-q")
    assert run.exit_code == 0, run
    local = aum_score.score(tmp_path / "log")
    assert aum_score.read_table(str(tmp_path / "aum.csv")).num_rows == local.summary.samples


def test_killed_worker_does_not_change_the_result(client, tmp_path, rng):
    """Kill (SIGKILL) a worker process holding 20 finished partial states while other pieces
    are still to be read: the scheduler recomputes what was lost; the result is unchanged."""
    epochs = make_epochs(rng, n_samples=2000, num_classes=C, n_epochs=4, id_kind="str")
    table = pa.concat_tables(
        pa.table({"sample_id": rows.sample_ids.tolist(), "epoch": [e] * len(rows),
                  "label": rows.labels,
                  "logits": pa.FixedSizeListArray.from_arrays(rows.logits.reshape(-1), C)})
        for e, rows in epochs.items()
    )  # fmt: skip
    (tmp_path / "log").mkdir()
    write_table(tmp_path / "log" / "all.arrow", table, "file", batches=300)  # 300 pieces
    local = aum_score.score(tmp_path / "log", threshold_class=TC, percentile=90)
    pids = client.run(os.getpid)
    outcome: dict = {}

    def run() -> None:
        outcome["result"] = aum_score.distributed.score(
            tmp_path / "log", scheduler=client, mode="reduce", threshold_class=TC,
            percentile=90, task_bytes=1,
        )  # fmt: skip

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    killed = None
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        states = client.run_on_scheduler(_piece_states)
        holders = [w for w, done in states["done_on"].items() if done >= 20]
        if holders:
            killed = holders[0]
            os.kill(pids[killed], signal.SIGKILL)
            done_at_kill = sum(states["done_on"].values())
        time.sleep(0.02)
    thread.join(120)
    assert killed is not None, "the run ended before a worker could be killed"
    assert done_at_kill < 300 and "result" in outcome  # killed mid-run; the run completed
    assert killed not in client.scheduler_info(n_workers=-1)["workers"]  # it really died
    assert_same(local, outcome["result"])
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def _piece_states(dask_scheduler=None) -> dict:
    """On the scheduler: piece tasks finished per worker, and piece tasks not finished."""
    done_on: dict = {}
    waiting = 0
    for key, task in dask_scheduler.tasks.items():
        if not str(key).startswith("accumulate_piece"):
            continue
        if task.state == "memory":
            for worker in task.who_has:
                done_on[worker.address] = done_on.get(worker.address, 0) + 1
        else:
            waiting += 1
    return {"done_on": done_on, "waiting": waiting}


def test_resume_on_a_cluster_equals_scoring_everything_locally(client, tmp_path, rng):
    # Epochs 0-2 scored locally and saved; epochs 3-5 added on the cluster (the old files gone);
    # then the saved result extended again locally with nothing new: all equal one local run.
    epochs = make_epochs(rng, n_samples=200, num_classes=C, n_epochs=6, id_kind="str")
    write_log(tmp_path / "all", epochs, batches_per_file=3)
    write_log(tmp_path / "old", {e: epochs[e] for e in range(3)}, batches_per_file=3)
    write_log(tmp_path / "new", {e: epochs[e] for e in range(3, 6)}, batches_per_file=3)
    state = tmp_path / "run.aumstate"
    aum_score.score(tmp_path / "old", threshold_class=TC, save_state=state)
    for path in (tmp_path / "old").iterdir():
        path.unlink()
    resumed = aum_score.score(
        tmp_path / "new", scheduler=client, state=state, save_state=state, bootstrap=0
    )
    local = aum_score.score(tmp_path / "all", threshold_class=TC, bootstrap=0)
    assert_same(local, resumed)
    assert_same(local, aum_score.score([], state=state, bootstrap=0))
    with pytest.raises(aum_score.LogFormatError, match="already scored into state"):
        aum_score.score(tmp_path / "new", scheduler=client, state=state)


def test_state_files_need_reduce_mode(client, tmp_path, rng):
    write_log(tmp_path / "log", make_epochs(rng, n_samples=50, num_classes=C, n_epochs=2))
    with pytest.raises(aum_score.LogFormatError, match="shard mode never gathers"):
        aum_score.score(
            tmp_path / "log", scheduler=client, mode="shard", output=tmp_path / "out",
            save_state=tmp_path / "s.aumstate",
        )  # fmt: skip
    assert not (tmp_path / "s.aumstate").exists()
