"""``LogitRecorder``: a :class:`~aum_score.LogitWriter` on a background thread, for training loops.

The training step only detaches the batch and copies it to the host (asynchronously for CUDA
tensors); a writer thread turns batches into Arrow files, so disk I/O never blocks the step.
Framework-free: the framework integrations build on it, and it takes numpy arrays, lists, and
anything :class:`~aum_score.LogitWriter` takes.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ..arrays import to_numpy
from ..writer import LogitWriter

__all__ = ["LogitRecorder"]

# Messages to the writer thread, besides batches (tuples).
_END_EPOCH = "end_epoch"
_CLOSE = "close"  # complete a pending epoch with rows, as LogitWriter.close() does
_ABORT = "abort"  # discard the pending epoch; completed ones are already on disk
_RECORDS = "records"  # first item of a batch of compact records computed on the GPU


class _Shared:
    """State the training thread and the writer thread share (not the recorder itself, so the
    recorder can be garbage collected while its thread waits)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.stopped = False


def _host_copy(x: Any) -> Any:
    """A host copy of ``x`` that later changes to ``x`` cannot reach, taken as cheaply as the
    training thread can: CUDA tensors start an asynchronous copy into pinned memory (returned
    with an event the writer thread waits on); CPU tensors and arrays are copied."""
    if x is None:
        return None
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor
        x = x.detach()
        if x.is_cuda:
            import torch  # already imported: x is a tensor

            host = x.to("cpu", non_blocking=True)  # pinned destination, returns at once
            event = torch.cuda.Event()
            event.record()
            return host, event
        return x.clone() if x.device.type == "cpu" else x.cpu()  # .cpu() of a device copies
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    return np.array(to_numpy(x), copy=True)


def _to_writer_input(x: Any) -> Any:
    if isinstance(x, tuple):  # (pinned tensor, CUDA event) from _host_copy
        host, event = x
        event.synchronize()
        return host
    return x


def _drain(jobs: queue.Queue, writer: LogitWriter, shared: _Shared) -> None:
    """The writer thread: apply jobs in order until told to close or abort. After an error it
    keeps taking jobs (so a full queue never blocks training) but writes nothing more."""
    while True:
        job = jobs.get()
        try:
            if shared.error is None:
                if job == _END_EPOCH:
                    writer.end_epoch()
                elif job == _CLOSE:
                    writer.close()
                elif job == _ABORT:
                    writer.abort()
                elif len(job) == 4:  # (_RECORDS, ids, records on their way from the GPU, labels)
                    _, ids, pending, labels = job
                    writer.write_records(
                        _to_writer_input(ids), pending.wait(), _to_writer_input(labels)
                    )
                else:
                    ids, logits, labels = (_to_writer_input(part) for part in job)
                    writer.write(ids, logits, labels)
        except BaseException as exc:  # handed to the training thread at its next call
            shared.error = exc
            with contextlib.suppress(Exception):  # the thread must live on to drain the queue
                writer.abort()  # the failed epoch must not look complete; earlier ones stay
        finally:
            jobs.task_done()
        if job in (_CLOSE, _ABORT):
            return


def _shut_down(jobs: queue.Queue, thread: threading.Thread, shared: _Shared) -> None:
    """At interpreter exit, for a recorder never closed: write what is queued, keep completed
    epochs, discard the pending one (the run may have died in it)."""
    if not shared.stopped:
        shared.stopped = True
        jobs.put(_ABORT)
        thread.join()


class LogitRecorder:
    """Record training logits from a plain training loop; a background thread writes the log.

    Usage (PyTorch; any framework's arrays work the same)::

        from aum_score.integrations.torch import DatasetWithIndex, LogitRecorder

        loader = DataLoader(DatasetWithIndex(train_set), batch_size=128, shuffle=True)
        with LogitRecorder("logs/") as recorder:
            for epoch in range(epochs):
                for x, y, idx in loader:
                    logits = model(x)                 # train-mode forward pass
                    loss = F.cross_entropy(logits, y)
                    ...                               # backward, optimizer step
                    recorder.record(idx, logits, y)   # detach + host copy; returns at once
                recorder.end_epoch()

    Files are those of :class:`~aum_score.LogitWriter` (``epoch_0000.arrow``, ...; an epoch's
    file gets its final name only once the epoch is complete).

    Guarantees:

    - Every recorded row of an epoch ended with :meth:`end_epoch` reaches its file: batches and
      epoch ends are applied in call order, and :meth:`close` (or leaving the ``with`` block)
      waits for the queue to drain.
    - An exception in the training loop (leaving the ``with`` block with it, or :meth:`abort`)
      still writes every completed epoch and discards the incomplete one. A recorder that is
      never closed does the same at interpreter exit.
    - An exception in the writer thread (e.g. a full disk) is raised in the training thread at
      its next call to the recorder; the failed epoch is discarded and nothing more is written.

    The queue holds at most ``queue_size`` batches: when the disk cannot keep up, ``record``
    waits rather than letting memory grow. CUDA tensors are copied to pinned host memory
    asynchronously, so recording does not synchronise the GPU.

    Args:
        directory: where the epoch files go; created if missing.
        start_epoch: number of the first epoch (e.g. when resuming training).
        queue_size: batches that may wait for the writer thread.
        **writer_options: passed to :class:`~aum_score.LogitWriter` (``buffer_bytes``, ...).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        start_epoch: int = 0,
        queue_size: int = 16,
        **writer_options: Any,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self._writer = LogitWriter(directory, start_epoch, **writer_options)
        self._jobs: queue.Queue = queue.Queue(maxsize=queue_size)
        self._shared = _Shared()
        self._epoch = int(start_epoch)
        self._thread = threading.Thread(
            target=_drain,
            args=(self._jobs, self._writer, self._shared),
            name=f"aum-score LogitRecorder {directory}",
            daemon=True,  # never keeps the interpreter alive; the exit hook below drains it
        )
        self._thread.start()
        self._at_exit = weakref.finalize(self, _shut_down, self._jobs, self._thread, self._shared)

    # ------------------------------------------------------------------ properties
    @property
    def directory(self) -> Path:
        return self._writer.directory

    @property
    def epoch(self) -> int:
        """Number of the epoch being recorded."""
        return self._epoch

    @property
    def closed(self) -> bool:
        return self._shared.stopped

    @property
    def paths(self) -> list[Path]:
        """Epoch files completed so far (all of them once :meth:`flush` or :meth:`close`
        returns)."""
        return list(self._writer.paths)

    # ------------------------------------------------------------------ recording
    def _put(self, job: Any) -> None:
        # A full queue waits for the writer thread, which never stops taking jobs while it
        # lives; the timeout only guards against waiting on a thread that is gone.
        while True:
            try:
                self._jobs.put(job, timeout=1.0)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    raise RuntimeError("the LogitRecorder's writer thread has stopped") from None

    def _check(self) -> None:
        if self._shared.error is not None:
            raise self._shared.error
        if self._shared.stopped:
            raise ValueError("LogitRecorder is closed")

    def record(self, sample_ids: Any, logits: Any, labels: Any = None) -> None:
        """Record one batch: ``logits[i]`` (pre-softmax, train mode) belongs to
        ``sample_ids[i]``, trained with ``labels[i]`` (None: give labels when scoring).

        Takes torch tensors (any device, requiring grad or not), numpy arrays, TensorFlow or JAX
        arrays, lists. Blocks only when ``queue_size`` batches are already waiting.
        """
        self._check()
        if self._writer.compact and labels is not None and getattr(logits, "is_cuda", False):
            # Compact log, CUDA logits: the records are computed on the GPU and only four
            # numbers a row are copied (aum_score.cuda); None: the CPU path below.
            from ..cuda import compact_records_async

            pending = compact_records_async(logits, labels)
            if pending is not None:
                self._put((_RECORDS, _host_copy(sample_ids), pending, _host_copy(labels)))
                return
        self._put((_host_copy(sample_ids), _host_copy(logits), _host_copy(labels)))

    def end_epoch(self) -> None:
        """The rows recorded so far make up the current epoch; its file is completed in the
        background."""
        self._check()
        self._put(_END_EPOCH)
        self._epoch += 1

    def flush(self) -> None:
        """Wait until everything recorded so far is written; raise the writer's error if any."""
        if not self._shared.stopped:
            self._jobs.join()
        if self._shared.error is not None:
            raise self._shared.error

    def _stop(self, job: str) -> None:
        if self._shared.stopped:
            return
        self._shared.stopped = True
        self._at_exit.detach()
        self._jobs.put(job)
        self._thread.join()

    def close(self) -> None:
        """Write everything, complete a pending epoch that has rows (as
        :meth:`LogitWriter.close` does), stop the thread. Raises the writer's error if any."""
        self._stop(_CLOSE)
        if self._shared.error is not None:
            raise self._shared.error

    def abort(self) -> None:
        """Write every completed epoch, discard the pending one, stop the thread. Never raises
        the writer's error (an exception is usually already on its way)."""
        self._stop(_ABORT)

    def __enter__(self) -> LogitRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"epoch={self._epoch}"
        return f"LogitRecorder({str(self.directory)!r}, {state})"
