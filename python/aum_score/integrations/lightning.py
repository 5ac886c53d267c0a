"""Lightning: a ``Callback`` that records the logits of every training step, one file per epoch.

What the LightningModule must do: its ``training_step`` returns a dict with

- ``"loss"``: the loss, as usual;
- ``"logits"``: ``(batch, C)`` pre-softmax logits of this step's forward pass (train mode);
- ``"sample_ids"``: ``(batch,)`` integer (or string) id of each row's sample, e.g. the index
  that :class:`aum_score.integrations.torch.DatasetWithIndex` appends to every item;
- ``"labels"``: ``(batch,)`` the labels trained with (optional: without them, give the labels
  when scoring with ``--labels``).

::

    class Model(L.LightningModule):
        def training_step(self, batch, batch_idx):
            x, y, idx = batch                          # DatasetWithIndex(train_set)
            logits = self.net(x)
            loss = F.cross_entropy(logits, y)
            return {"loss": loss, "logits": logits, "sample_ids": idx, "labels": y}

    trainer = L.Trainer(max_epochs=20, callbacks=[LogitRecorderCallback("logs/")])

The key names can be changed in the constructor. A step that returns ``None`` (Lightning's way
to skip a batch) records nothing. With several processes (DDP), rank ``r`` writes to
``directory/rank_r``; score them together: ``aum-score directory/rank_*``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:  # the unified package, else the standalone one
    from lightning.pytorch import Callback
except ImportError:  # pragma: no cover - depends on what is installed
    from pytorch_lightning import Callback

from .recorder import LogitRecorder

__all__ = ["LogitRecorderCallback"]


class LogitRecorderCallback(Callback):
    """Record the training-step logits that ``training_step`` returns (see the module docs).

    Writing happens on a background thread (:class:`LogitRecorder`); an epoch's file is
    completed at the end of the training epoch. An exception that stops training keeps the
    completed epochs and discards the incomplete one.

    Args:
        directory: where the epoch files go (``epoch_0000.arrow``, ...).
        logits_key, sample_ids_key, labels_key: keys of the ``training_step`` output dict.
        queue_size: batches that may wait for the writer thread.
        **writer_options: passed to :class:`~aum_score.LogitWriter`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        logits_key: str = "logits",
        sample_ids_key: str = "sample_ids",
        labels_key: str = "labels",
        queue_size: int = 16,
        **writer_options: Any,
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.logits_key = logits_key
        self.sample_ids_key = sample_ids_key
        self.labels_key = labels_key
        self._recorder_options = {"queue_size": queue_size, **writer_options}
        self.recorder: LogitRecorder | None = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        directory = self.directory
        if trainer.world_size > 1:  # one writer per process, never two on one file
            directory = directory / f"rank_{trainer.global_rank}"
        # current_epoch is where a resumed run starts, so its files continue the numbering.
        self.recorder = LogitRecorder(
            directory, start_epoch=trainer.current_epoch, **self._recorder_options
        )

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if outputs is None or self.recorder is None:
            return
        missing = [
            key
            for key in (self.logits_key, self.sample_ids_key)
            if not isinstance(outputs, Mapping) or key not in outputs
        ]
        if missing:
            raise ValueError(
                f"LogitRecorderCallback: training_step must return a dict with "
                f"{self.logits_key!r} and {self.sample_ids_key!r} (and {self.labels_key!r}) "
                f"besides 'loss'; it returned "
                + (f"keys {sorted(outputs)}" if isinstance(outputs, Mapping) else "no dict")
            )
        self.recorder.record(
            outputs[self.sample_ids_key], outputs[self.logits_key], outputs.get(self.labels_key)
        )

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.recorder is not None:
            self.recorder.end_epoch()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.recorder is not None:
            self.recorder.abort()
