"""Hugging Face Transformers: a ``Trainer`` that records the training logits of sequence
classification, with sample ids, one file per epoch.

The training dataset needs a **sample id column** (``"sample_id"`` by default; integers, so the
default collators can batch it), e.g. ``dataset.map(lambda row, i: {"sample_id": i},
with_indices=True)`` for a ``datasets.Dataset``, or a ``"sample_id"`` key in each item of a
torch dataset. The trainer keeps that column when it drops the columns the model's ``forward``
does not take, and removes it from the batch before the forward pass.

::

    from aum_score.integrations.huggingface import LogitRecordingTrainer

    trainer = LogitRecordingTrainer(
        model=model, args=TrainingArguments(...), train_dataset=train_with_ids,
        logit_directory="logs/",
    )
    trainer.train()            # logs/epoch_0000.arrow, ...

A ``TrainerCallback`` alone cannot do this: callbacks never see a step's inputs or outputs. If
you already subclass ``Trainer``, put :class:`LogitRecordingMixin` first in your bases instead:
``class MyTrainer(LogitRecordingMixin, Trainer)``. The logits recorded are those of the training
forward pass (``compute_loss`` with the model in train mode: dropout on), once per micro-batch
with gradient accumulation. With several processes, rank ``r`` writes to
``logit_directory/rank_r``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback

from .recorder import LogitRecorder

__all__ = ["LogitRecordingMixin", "LogitRecordingTrainer"]


class _EndEpochs(TrainerCallback):
    def __init__(self, trainer: LogitRecordingMixin) -> None:
        self.trainer = trainer

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.trainer.logit_recorder is not None:
            self.trainer.logit_recorder.end_epoch()
        return control


class LogitRecordingMixin:
    """Records the logits of every training step of a ``transformers.Trainer`` (put it before
    ``Trainer`` in the bases).

    Args:
        logit_directory: where the epoch files go (``epoch_0000.arrow``, ...). Each ``train()``
            call writes on from the next epoch number; one that raises keeps its completed
            epochs and discards the incomplete one.
        sample_id_column: the dataset column holding each row's sample id.
        label_column: the batch key of the labels the model trains with.
        logit_queue_size: batches that may wait for the writer thread.
        logit_writer_options: passed to :class:`~aum_score.LogitWriter`.
        *args, **kwargs: the ``Trainer``'s.
    """

    def __init__(
        self,
        *args: Any,
        logit_directory: str | os.PathLike[str],
        sample_id_column: str = "sample_id",
        label_column: str = "labels",
        logit_queue_size: int = 16,
        logit_writer_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.logit_directory = Path(logit_directory)
        self.sample_id_column = sample_id_column
        self.label_column = label_column
        self._recorder_options = {"queue_size": logit_queue_size, **(logit_writer_options or {})}
        self.logit_recorder: LogitRecorder | None = None
        self._next_epoch = 0
        self.add_callback(_EndEpochs(self))

    def _set_signature_columns_if_needed(self) -> None:
        # The Trainer drops dataset columns that forward() does not take; keep the ids.
        super()._set_signature_columns_if_needed()
        if self.sample_id_column not in self._signature_columns:
            self._signature_columns.append(self.sample_id_column)

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **kwargs: Any
    ) -> Any:
        ids = inputs.pop(self.sample_id_column, None)  # forward() does not take it
        labels = inputs.get(self.label_column)  # before a label smoother pops it
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
        if model.training and self.logit_recorder is not None:
            if ids is None:
                raise ValueError(
                    f"the training batch has no {self.sample_id_column!r} column: add the "
                    "sample ids to the training dataset (see aum_score.integrations.huggingface)"
                )
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[1]
            self.logit_recorder.record(ids, logits, labels)
        return (loss, outputs) if return_outputs else loss

    def train(self, *args: Any, **kwargs: Any) -> Any:
        directory = self.logit_directory
        if self.args.world_size > 1:  # one writer per process, never two on one file
            directory = directory / f"rank_{self.args.process_index}"
        self.logit_recorder = LogitRecorder(
            directory, start_epoch=self._next_epoch, **self._recorder_options
        )
        recorder = self.logit_recorder
        try:
            result = super().train(*args, **kwargs)
        except BaseException:
            recorder.abort()
            raise
        else:
            recorder.close()  # a run stopped by max_steps mid-epoch completes that epoch
        finally:
            self._next_epoch = recorder.epoch
            self.logit_recorder = None
        return result


class LogitRecordingTrainer(LogitRecordingMixin, Trainer):
    """``transformers.Trainer`` recording training logits and sample ids; see
    :class:`LogitRecordingMixin` for the extra arguments."""
