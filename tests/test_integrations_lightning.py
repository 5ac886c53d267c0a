"""Lightning integration: a real (tiny) Trainer on CPU records its training-step logits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pyarrow import ipc

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch", reason="lightning is not installed")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from aum_score.integrations.lightning import LogitRecorderCallback  # noqa: E402
from aum_score.integrations.torch import DatasetWithIndex  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyModule(L.LightningModule):
    def __init__(self, output: str = "dict", fail_at_epoch: int | None = None) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 3)
        )
        self.output = output
        self.fail_at_epoch = fail_at_epoch
        self.seen: list[list] = []  # per epoch: (ids, logits) of every step

    def on_train_epoch_start(self) -> None:
        if self.current_epoch == self.fail_at_epoch:
            raise RuntimeError("training failed")
        self.seen.append([])

    def training_step(self, batch, batch_idx):
        x, y, idx = batch
        logits = self.net(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        self.seen[-1].append((idx.clone(), logits.detach().clone()))
        if self.output == "loss":
            return loss
        return {"loss": loss, "logits": logits, "sample_ids": idx, "labels": y}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(tmp_path, module, epochs=2):
    torch.manual_seed(0)
    data = DatasetWithIndex(TensorDataset(torch.randn(24, 4), torch.randint(0, 3, (24,))))
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[LogitRecorderCallback(tmp_path / "logs")],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about workers and loggers
        trainer.fit(module, DataLoader(data, batch_size=8, shuffle=True))


def test_callback_records_each_epochs_training_step_logits(tmp_path):
    module = TinyModule()
    fit(tmp_path, module, epochs=2)
    files = sorted((tmp_path / "logs").iterdir())
    assert [p.name for p in files] == ["epoch_0000.arrow", "epoch_0001.arrow"]
    for path, steps in zip(files, module.seen):
        table = ipc.open_file(path).read_all()
        ids = torch.cat([i for i, _ in steps]).numpy()
        logits = torch.cat([z for _, z in steps]).numpy()
        assert table.column("sample_id").to_numpy().tolist() == ids.tolist()
        np.testing.assert_array_equal(
            np.stack(table.column("logits").to_numpy(zero_copy_only=False)), logits
        )
        assert sorted(ids.tolist()) == list(range(24))


def test_training_step_must_return_the_dict(tmp_path):
    with pytest.raises(ValueError, match="training_step must return a dict with 'logits'"):
        fit(tmp_path, TinyModule(output="loss"), epochs=1)
    assert list((tmp_path / "logs").iterdir()) == []


def test_exception_keeps_completed_epochs(tmp_path):
    with pytest.raises(RuntimeError, match="training failed"):
        fit(tmp_path, TinyModule(fail_at_epoch=2), epochs=3)
    assert [p.name for p in sorted((tmp_path / "logs").iterdir())] == [
        "epoch_0000.arrow",
        "epoch_0001.arrow",
    ]
