"""Keras 3: record training logits with sample ids.

Keras' ``fit`` hands callbacks no outputs of the training step, so a plain callback cannot see
the train-mode logits of each batch. Two ways, pick one:

- :class:`RecordingModel` (exact, the paper's recording): wraps your model; its training step
  records the logits of every training batch, in train mode (dropout, batch statistics), with
  the sample ids. It changes how you call ``fit``: inputs come as ``(x, sample_ids)`` pairs.
  TensorFlow and PyTorch backends (not JAX).
- :class:`EpochEndInference` (no model change, any backend): a callback that, after every
  epoch, runs an inference pass over the training set and records those logits. They are *not*
  the training step's logits (inference mode, weights of the epoch's end), so the AUMs differ
  from the paper's; prefer :class:`RecordingModel` when you can.

::

    from aum_score.integrations.keras import RecordingModel

    model = RecordingModel(build_model(), "logs/")      # build_model() returns logits
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit((x_train, ids), y_train, epochs=20)       # or a tf.data of ((x, ids), y)
    model.inner.predict(x_test)                         # the wrapped model, as usual

    # or, without changing the model:
    model.fit(x_train, y_train, epochs=20,
              callbacks=[EpochEndInference("logs/", (x_train, y_train, ids))])
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from .recorder import LogitRecorder

__all__ = ["EpochEndInference", "RecordingModel"]


def _labels_of(y: np.ndarray, rows: int) -> np.ndarray:
    """Class indices from Keras targets: indices of shape (rows,) or (rows, 1), or one-hot /
    soft targets of shape (rows, C) (their argmax)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    y = y.reshape(rows)
    return y.astype(np.int64) if y.dtype.kind == "f" else y


def _ids_of(ids: np.ndarray) -> np.ndarray:
    """tf.string ids arrive as bytes; the log wants str."""
    ids = np.asarray(ids).reshape(-1)
    if ids.dtype.kind in "OS":
        return np.array([v.decode() if isinstance(v, bytes) else v for v in ids], dtype=str)
    return ids


class _Recording:
    """A recorder that is opened per ``fit`` and numbers epochs on across fits."""

    def __init__(self, directory: str | os.PathLike[str], options: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.options = options
        self.recorder: LogitRecorder | None = None
        self.next_epoch = 0

    def open(self) -> LogitRecorder:
        self.finish(failed=True)  # one left open by a fit that raised: its epochs are done
        self.recorder = LogitRecorder(self.directory, start_epoch=self.next_epoch, **self.options)
        return self.recorder

    def finish(self, failed: bool) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        self.next_epoch = recorder.epoch  # an aborted epoch's number is used again
        if failed:
            recorder.abort()
        else:
            recorder.close()

    def record(self, ids: np.ndarray, logits: np.ndarray, y: np.ndarray) -> None:
        if self.recorder is not None:
            self.recorder.record(_ids_of(ids), logits, _labels_of(y, len(logits)))


class _EndEpochs(keras.callbacks.Callback):
    def __init__(self, recording: _Recording) -> None:
        super().__init__()
        self.recording = recording

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.recording.recorder is not None:
            self.recording.recorder.end_epoch()


class RecordingModel(keras.Model):
    """Wrap ``model`` so that ``fit`` records the train-mode logits of every training batch.

    Inputs are ``(x, sample_ids)`` pairs, where ``x`` is what ``model`` takes: ``fit((x, ids),
    y)`` with arrays, or a ``tf.data.Dataset`` of ``((x, ids), y)``. ``y`` holds class indices
    (or one-hot rows); ``model`` must output logits (pre-softmax), one output. Each ``fit`` call
    writes one file per epoch into ``directory`` (numbering goes on across calls); a ``fit``
    that raises keeps its completed epochs and discards the incomplete one.

    Evaluation works on ``(x, ids)`` pairs too (nothing is recorded); to predict or save, use
    the wrapped model, :attr:`inner`. The TensorFlow backend records through
    ``tf.numpy_function``, which XLA cannot compile: the wrapper turns ``jit_compile`` off.

    Args:
        model: a Keras model that maps ``x`` to logits.
        directory: where the epoch files go.
        queue_size, **writer_options: see :class:`~aum_score.integrations.LogitRecorder`.
    """

    def __init__(
        self,
        model: keras.Model,
        directory: str | os.PathLike[str],
        *,
        queue_size: int = 16,
        **writer_options: Any,
    ) -> None:
        if keras.backend.backend() not in ("tensorflow", "torch"):
            raise NotImplementedError(
                f"RecordingModel supports the tensorflow and torch backends, not "
                f"{keras.backend.backend()!r}; use EpochEndInference instead"
            )
        super().__init__()
        self.inner = model
        self._recording = _Recording(directory, {"queue_size": queue_size, **writer_options})
        self.supports_jit = False  # "auto" then resolves to no XLA

    @property
    def recorder(self) -> LogitRecorder | None:
        """The recorder of the ``fit`` in progress (None outside ``fit``)."""
        return self._recording.recorder

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x, _ = inputs
        return self.inner(x, training=training)

    def compile(self, *args: Any, jit_compile: Any = False, **kwargs: Any) -> None:
        if jit_compile is True and keras.backend.backend() == "tensorflow":
            raise ValueError("RecordingModel cannot use XLA (jit_compile=True) on tensorflow")
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        # The training step hands its train-mode y_pred here: record it with the ids.
        if training and x is not None and y is not None:
            ids = x[1]
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                # Runs on the host inside the compiled step, in step order.
                tf.numpy_function(self._recording.record, [ids, y_pred, y], Tout=[])
            else:  # torch: eager tensors
                self._recording.record(*(keras.ops.convert_to_numpy(v) for v in (ids, y_pred, y)))
        return super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )

    def fit(self, *args: Any, callbacks: list | None = None, **kwargs: Any) -> Any:
        self._recording.open()
        callbacks = [*(callbacks or []), _EndEpochs(self._recording)]
        try:
            history = super().fit(*args, callbacks=callbacks, **kwargs)
        except BaseException:
            self._recording.finish(failed=True)
            raise
        self._recording.finish(failed=False)
        return history


class EpochEndInference(keras.callbacks.Callback):
    """After every training epoch, run the model in inference mode over the training set and
    record the logits (one file per epoch). Works with any model and backend, but these are not
    the training step's logits (see the module docs).

    Args:
        directory: where the epoch files go.
        data: ``(x, labels, sample_ids)`` arrays (``x`` may be a dict or tuple of arrays), or an
            iterable of such batches (e.g. a ``tf.data.Dataset`` yielding
            ``(x, labels, sample_ids)``), re-iterated every epoch.
        batch_size: rows per inference batch when ``data`` holds arrays.
        queue_size, **writer_options: see :class:`~aum_score.integrations.LogitRecorder`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        data: tuple[Any, Any, Any] | Iterable[tuple[Any, Any, Any]],
        *,
        batch_size: int = 256,
        queue_size: int = 16,
        **writer_options: Any,
    ) -> None:
        super().__init__()
        self.data = data
        self.batch_size = int(batch_size)
        self._recording = _Recording(directory, {"queue_size": queue_size, **writer_options})

    def _batches(self) -> Iterable[tuple[Any, Any, Any]]:
        if not (isinstance(self.data, tuple) and len(self.data) == 3):
            yield from self.data
            return
        x, labels, ids = self.data
        rows = len(ids)
        for start in range(0, rows, self.batch_size):
            part = slice(start, min(rows, start + self.batch_size))
            yield keras.tree.map_structure(lambda a, part=part: a[part], x), labels[part], ids[part]

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._recording.open()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for x, labels, ids in self._batches():
            logits = self.model.predict_on_batch(x)
            self._recording.record(*(keras.ops.convert_to_numpy(v) for v in (ids, logits, labels)))
        assert self._recording.recorder is not None
        self._recording.recorder.end_epoch()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._recording.finish(failed=False)
