"""PyTorch integration: DatasetWithIndex and the background LogitRecorder, with real torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import ipc

import aum_score

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from aum_score.integrations.torch import DatasetWithIndex, LogitRecorder  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def read_epochs(directory) -> list[pa.Table]:
    return [ipc.open_file(p).read_all() for p in sorted(directory.glob("epoch_*.arrow"))]


def logits_of(table: pa.Table) -> np.ndarray:
    return np.stack(table.column("logits").to_numpy(zero_copy_only=False))


def test_dataset_with_index():
    base = TensorDataset(torch.arange(10.0).view(5, 2), torch.tensor([0, 1, 0, 1, 1]))
    ds = DatasetWithIndex(base)
    assert len(ds) == 5
    x, y, idx = ds[3]
    assert x.tolist() == [6.0, 7.0] and y.item() == 1 and idx == 3
    assert DatasetWithIndex(["a", "b"])[1] == ("b", 1)  # non-tuple items: (item, index)
    batches = list(DataLoader(ds, batch_size=2, shuffle=True, generator=torch.Generator()))
    assert sorted(torch.cat([b[2] for b in batches]).tolist()) == [0, 1, 2, 3, 4]


def train(recorder, epochs, *, fail_at=None, batch_size=8, samples=40, classes=3):
    """A plain training loop; returns the (ids, logits, labels) it recorded, per epoch."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(samples, 5), torch.randint(0, classes, (samples,)))
    loader = DataLoader(DatasetWithIndex(data), batch_size=batch_size, shuffle=True)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, classes)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    for epoch in range(epochs):
        model.train()
        rows = []
        for step, (x, y, idx) in enumerate(loader):
            if (epoch, step) == fail_at:
                raise RuntimeError("training failed")
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            recorder.record(idx, logits, y)
            rows.append((idx.clone(), logits.detach().clone(), y.clone()))
        recorder.end_epoch()
        seen.append([torch.cat(part).numpy() for part in zip(*rows)])
    return seen


def test_recorder_writes_every_row_of_every_epoch(tmp_path):
    # A one-slot queue makes the training thread wait on the writer: nothing may be lost.
    with LogitRecorder(tmp_path, queue_size=1, buffer_bytes=0) as recorder:
        seen = train(recorder, 3)
        assert recorder.epoch == 3
    assert recorder.closed
    assert [p.name for p in recorder.paths] == [f"epoch_000{e}.arrow" for e in range(3)]
    for table, (ids, logits, labels) in zip(read_epochs(tmp_path), seen):
        assert table.column("sample_id").to_numpy().tolist() == ids.tolist()
        np.testing.assert_array_equal(logits_of(table), logits)  # the step's train-mode logits
        assert table.column("label").to_numpy().tolist() == labels.tolist()
    # The log scores like the same rows given to the drop-in calculator.
    calc = aum_score.AUMCalculator(None)
    for ids, logits, labels in seen:
        calc.update(logits, labels, ids)
    expected = dict(zip(*(a.tolist() for a in calc.aum_values())))
    table = aum_score.score(tmp_path).table
    got = dict(zip(table.column("sample_id").to_pylist(), table.column("aum").to_pylist()))
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(expected[k], rel=1e-12, abs=1e-12) for k in got)


def test_exception_in_training_keeps_completed_epochs(tmp_path):
    with pytest.raises(RuntimeError, match="training failed"):
        with LogitRecorder(tmp_path, queue_size=2) as recorder:
            train(recorder, 3, fail_at=(2, 3))
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["epoch_0000.arrow", "epoch_0001.arrow"]
    assert [t.num_rows for t in read_epochs(tmp_path)] == [40, 40]


def test_writer_error_is_raised_at_the_next_call(tmp_path):
    recorder = LogitRecorder(tmp_path)
    recorder.record([0, 1], np.zeros((2, 3), np.float32), [0, 1])
    recorder.end_epoch()
    recorder.record([0, 1], np.zeros((2, 4), np.float32), [0, 1])  # C changes: the writer fails
    with pytest.raises(ValueError, match="classes"):
        recorder.flush()
    with pytest.raises(ValueError, match="classes"):
        recorder.record([2], np.zeros((1, 3), np.float32), [0])
    with pytest.raises(ValueError, match="classes"):
        recorder.close()
    # The completed epoch stays; the failed one leaves nothing behind.
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_0000.arrow"]


def test_close_completes_a_pending_epoch_and_refuses_more(tmp_path):
    recorder = LogitRecorder(tmp_path, start_epoch=4)
    recorder.record(np.array(["a", "b"]), torch.randn(2, 3, dtype=torch.bfloat16), [2, 0])
    recorder.close()
    (table,) = read_epochs(tmp_path)
    assert recorder.paths[0].name == "epoch_0004.arrow"
    assert table.column("sample_id").to_pylist() == ["a", "b"]
    with pytest.raises(ValueError, match="closed"):
        recorder.record([1], np.zeros((1, 3)), [0])
    recorder.close()  # closing twice is fine


def test_recorder_copies_what_it_is_given(tmp_path):
    buffer = torch.zeros(2, 3)
    with LogitRecorder(tmp_path) as recorder:
        recorder.record(torch.tensor([0, 1]), buffer, torch.tensor([0, 1]))
        buffer += 5.0  # the caller reuses its buffer right away
        recorder.end_epoch()
    assert logits_of(read_epochs(tmp_path)[0]).tolist() == [[0.0] * 3] * 2


def test_unclosed_recorder_keeps_completed_epochs_at_exit(tmp_path):
    # The process ends without close(): completed epochs are written, the pending one is not.
    script = textwrap.dedent(
        f"""
        import numpy as np
        from aum_score.integrations import LogitRecorder
        recorder = LogitRecorder({str(tmp_path)!r}, queue_size=1)
        for epoch in range(2):
            for step in range(20):
                recorder.record(np.arange(4) + 4 * step, np.ones((4, 3), np.float32), [0] * 4)
            recorder.end_epoch()
        recorder.record([0], np.ones((1, 3), np.float32), [0])
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["epoch_0000.arrow", "epoch_0001.arrow"]
    assert [t.num_rows for t in read_epochs(tmp_path)] == [80, 80]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensors_are_copied_without_blocking(tmp_path):
    logits = torch.randn(64, 10, device="cuda")
    with LogitRecorder(tmp_path) as recorder:
        recorder.record(torch.arange(64, device="cuda"), logits, torch.zeros(64, dtype=torch.long))
        recorder.end_epoch()
    np.testing.assert_array_equal(logits_of(read_epochs(tmp_path)[0]), logits.cpu().numpy())
