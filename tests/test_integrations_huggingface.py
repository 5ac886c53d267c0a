"""Hugging Face integration: a tiny randomly initialised BERT (built from a config, nothing
downloaded) trained for a few steps with the real Trainer records its training logits."""

from __future__ import annotations

import numpy as np
import pytest
from pyarrow import ipc

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")

from aum_score.integrations.huggingface import (  # noqa: E402
    LogitRecordingMixin,
    LogitRecordingTrainer,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


ROWS = 24


class Sentences(torch.utils.data.Dataset):
    """Tokenised sentences with a 'sample_id' column, as a torch dataset of dicts."""

    def __init__(self, with_ids: bool = True) -> None:
        g = torch.Generator().manual_seed(1)
        self.tokens = torch.randint(0, 40, (ROWS, 8), generator=g)
        self.labels = torch.randint(0, 3, (ROWS,), generator=g)
        self.with_ids = with_ids

    def __len__(self) -> int:
        return ROWS

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.tokens[i], "label": self.labels[i]}
        if self.with_ids:
            item["sample_id"] = 1000 + i
        return item


def tiny_bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=3,
    )
    return transformers.BertForSequenceClassification(config)


def arguments(tmp_path, epochs=2):
    return transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=epochs,
        per_device_train_batch_size=8,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )


def test_trainer_records_training_logits_and_ids(tmp_path):
    model = tiny_bert()
    seen = []  # the classifier's outputs in train mode: exactly what must be recorded
    model.classifier.register_forward_hook(
        lambda module, inputs, out: seen.append(out.detach().clone()) if module.training else None
    )
    data = Sentences()
    trainer = LogitRecordingTrainer(
        model=model,
        args=arguments(tmp_path),
        train_dataset=data,
        eval_dataset=Sentences(with_ids=False),
        logit_directory=tmp_path / "logs",
    )
    trainer.train()
    trainer.evaluate()  # evaluation records nothing, and needs no ids
    files = sorted((tmp_path / "logs").iterdir())
    assert [p.name for p in files] == ["epoch_0000.arrow", "epoch_0001.arrow"]
    tables = [ipc.open_file(p).read_all() for p in files]
    logits = np.concatenate(
        [np.stack(t.column("logits").to_numpy(zero_copy_only=False)) for t in tables]
    )
    np.testing.assert_array_equal(logits, torch.cat(seen).numpy())
    for table in tables:
        ids = table.column("sample_id").to_numpy()
        assert sorted(ids.tolist()) == list(range(1000, 1000 + ROWS))
        assert table.column("label").to_numpy().tolist() == data.labels[ids - 1000].tolist()


def test_missing_id_column_is_a_clear_error(tmp_path):
    class MyTrainer(LogitRecordingMixin, transformers.Trainer):
        pass

    trainer = MyTrainer(
        model=tiny_bert(),
        args=arguments(tmp_path, epochs=1),
        train_dataset=Sentences(with_ids=False),
        logit_directory=tmp_path / "logs",
    )
    with pytest.raises(ValueError, match="no 'sample_id' column"):
        trainer.train()
    assert list((tmp_path / "logs").iterdir()) == []
