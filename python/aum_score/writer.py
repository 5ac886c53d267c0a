"""LogitWriter: record training logits as an aum-score logit log (format v1).

One Arrow IPC *file* per epoch, ``epoch_{epoch:04d}.arrow``, with schema metadata
``{b"epoch": b"<epoch>", b"aum_score_log": b"1"}`` and the columns

- ``sample_id``: int64, or string when the ids are strings;
- ``logits``: ``fixed_size_list<float16|float32|float64>[C]``;
- ``label``: int64 (only when labels are given).

While an epoch is being written its file is ``epoch_XXXX.arrow.partial`` (an extension the
reader skips); it is renamed to its final name only when the epoch is complete, so a crash
never leaves an incomplete epoch that looks complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import pyarrow as pa

from .arrays import to_numpy
from .compact import COMPACT_COLUMNS, CompactRecords, compact_records, compact_schema

__all__ = ["LogitWriter"]

LOG_FORMAT_VERSION = b"1"
_KEPT_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_ARROW_FLOAT = {
    np.dtype(np.float16): pa.float16(),
    np.dtype(np.float32): pa.float32(),
    np.dtype(np.float64): pa.float64(),
}


class LogitWriter:
    """Write per-sample training logits as an aum-score logit log, one Arrow file per epoch.

    Usage::

        with LogitWriter("logs/") as writer:
            for epoch in range(num_epochs):
                for x, y, idx in loader:
                    logits = model(x)              # train-mode forward pass
                    writer.write(idx, logits, y)
                writer.end_epoch()

    ``write`` accepts numpy arrays, lists, torch tensors (detached and moved to the CPU here),
    TensorFlow tensors and JAX arrays. Batches are streamed to disk (buffered up to
    ``buffer_bytes`` of logits), so memory stays bounded however long the epoch is.

    The first batch of the log fixes its layout: the number of classes ``C``, the logits dtype
    (float16/float32/float64 are kept; other float types such as bfloat16, and integer logits,
    become float32; later batches are cast to the first batch's dtype), whether ids are integers
    or strings, and whether a ``label`` column is written. A later batch that disagrees raises
    ``ValueError``.

    Closing:

    - ``close()`` (or leaving the ``with`` block normally) completes a pending epoch that has
      rows but whose ``end_epoch()`` was not called, exactly as ``end_epoch()`` would.
    - Leaving the ``with`` block because of an exception calls ``abort()``: the pending
      ``.partial`` file is deleted, so no incomplete epoch ever appears under a final name.
      Epochs completed before the exception are kept.

    Args:
        directory: where the epoch files go; created if missing.
        start_epoch: number of the first epoch written (e.g. to resume training).
        buffer_bytes: rows are gathered until their logits reach about this many bytes and then
            written as one Arrow record batch (fewer, larger batches read faster). 0 writes every
            ``write()`` call as its own record batch.
        compact: write compact records (label logit, largest other logit and its class,
            log-sum-exp; see :mod:`aum_score.compact`) instead of all C logits: about C / 5 times
            smaller, identical AUMs. Labels are then required.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        start_epoch: int = 0,
        *,
        buffer_bytes: int = 8 << 20,
        compact: bool = False,
    ) -> None:
        if isinstance(start_epoch, bool) or not isinstance(start_epoch, (int, np.integer)):
            raise TypeError(f"start_epoch must be an int, got {start_epoch!r}")
        if start_epoch < 0:
            raise ValueError(f"start_epoch must be >= 0, got {start_epoch}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._epoch = int(start_epoch)
        self._buffer_bytes = int(buffer_bytes)
        self.compact = bool(compact)
        # Layout of the log, fixed by its first non-empty batch.
        self._num_classes: int | None = None
        self._dtype: np.dtype | None = None
        self._string_ids: bool | None = None
        self._has_labels: bool | None = None
        # State of the epoch being written.
        self._sink: pa.ipc.RecordBatchFileWriter | None = None
        self._sink_schema: pa.Schema | None = None
        self._rows_in_epoch = 0
        self._buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._buffered_bytes = 0
        self._closed = False
        self.paths: list[Path] = []
        """Completed epoch files, in the order written."""

    # ------------------------------------------------------------------ properties
    @property
    def epoch(self) -> int:
        """Number of the epoch currently being written."""
        return self._epoch

    @property
    def num_classes(self) -> int | None:
        """Number of logits per row (``C``), or None before the first batch."""
        return self._num_classes

    @property
    def closed(self) -> bool:
        """True after ``close()`` or ``abort()``."""
        return self._closed

    def _final_path(self) -> Path:
        return self.directory / f"epoch_{self._epoch:04d}.arrow"

    def _partial_path(self) -> Path:
        return self.directory / f"epoch_{self._epoch:04d}.arrow.partial"

    # ------------------------------------------------------------------ validation
    def _check_logits(self, logits: Any) -> np.ndarray:
        try:
            z = to_numpy(logits)
        except (ValueError, TypeError) as exc:  # e.g. ragged nested lists
            raise ValueError(f"logits: cannot convert to an array: {exc}") from None
        if z.ndim != 2:
            raise ValueError(f"logits must be 2-D (rows, classes), got shape {z.shape}")
        if z.dtype not in _KEPT_FLOATS:
            if z.dtype.kind in "OSUMmVc" and "float" not in z.dtype.name:
                raise ValueError(f"logits must be numeric floats, got dtype {z.dtype}")
            # bfloat16 (ml_dtypes), longdouble, integers: float32 is what the core computes in.
            z = z.astype(np.float32)
        if self._num_classes is None:
            if z.shape[1] < 2:
                raise ValueError(f"logits need at least 2 classes, got shape {z.shape}")
        elif z.shape[1] != self._num_classes:
            raise ValueError(
                f"logits have {z.shape[1]} classes but earlier batches of this log had "
                f"{self._num_classes}; every batch must have the same number of classes"
            )
        if self._dtype is not None and z.dtype != self._dtype:
            z = z.astype(self._dtype)
        return z

    def _check_ids(self, sample_ids: Any, n: int) -> np.ndarray:
        ids = to_numpy(sample_ids)
        if ids.ndim == 2 and ids.shape[1] == 1:  # column vectors, e.g. (batch, 1) index tensors
            ids = ids.reshape(-1)
        if ids.ndim != 1:
            raise ValueError(f"sample_id must be 1-D, got shape {ids.shape}")
        if len(ids) != n:
            raise ValueError(f"sample_id has {len(ids)} entries but logits have {n} rows")
        if ids.dtype.kind in "iu":
            if ids.dtype == np.uint64 and n and ids.max() > np.iinfo(np.int64).max:
                raise ValueError("sample_id values must fit in int64")
            ids, is_str = ids.astype(np.int64, copy=False), False
        elif ids.dtype.kind == "U" or (
            ids.dtype.kind == "O" and all(isinstance(v, str) for v in ids)
        ):
            is_str = True
        else:
            raise ValueError(f"sample_id must be integers or strings, got dtype {ids.dtype}")
        if self._string_ids is not None and is_str != self._string_ids:
            want = "strings" if self._string_ids else "integers"
            raise ValueError(f"sample_id must be {want} like the earlier batches of this log")
        return ids

    def _check_labels(self, labels: Any, n: int, num_classes: int) -> np.ndarray | None:
        has = labels is not None
        if self._has_labels is not None and has != self._has_labels:
            raise ValueError(
                "labels were given for earlier batches of this log but not for this one"
                if self._has_labels
                else "labels were not given for earlier batches of this log; "
                "give them always or never"
            )
        if not has:
            return None
        y = to_numpy(labels)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(-1)
        if y.ndim != 1:
            raise ValueError(f"label must be 1-D class indices, got shape {y.shape}")
        if len(y) != n:
            raise ValueError(f"label has {len(y)} entries but logits have {n} rows")
        if y.dtype.kind not in "iu":
            raise ValueError(f"label must be integers, got dtype {y.dtype}")
        if n and (y.min() < 0 or y.max() >= num_classes):
            bad = int(np.flatnonzero((y < 0) | (y >= num_classes))[0])
            raise ValueError(
                f"label {int(y[bad])} at row {bad} of this batch is outside [0, {num_classes})"
            )
        return y.astype(np.int64, copy=False)

    # ------------------------------------------------------------------ writing
    def write(self, sample_ids: Any, logits: Any, labels: Any = None) -> None:
        """Record one batch: ``logits[i]`` is the forward pass of ``sample_ids[i]``.

        Args:
            sample_ids: 1-D integers or strings, one per row.
            logits: 2-D array-like ``(rows, C)`` of pre-softmax outputs.
            labels: 1-D integer labels the model was trained on for these rows, or None
                (then give labels to the scorer separately). Must be given for all batches
                of the log or for none.
        """
        if self._closed:
            raise ValueError("LogitWriter is closed")
        z = self._check_logits(logits)
        n = z.shape[0]
        if n == 0:  # nothing to record; an empty list of ids has no usable dtype anyway
            return
        ids = self._check_ids(sample_ids, n)
        y = self._check_labels(labels, n, z.shape[1])
        if self.compact:
            if y is None:
                raise ValueError("a compact log needs the labels: the margin depends on them")
            self.write_records(ids, compact_records(z, y), y)
            return
        if self._num_classes is None:  # first rows of the log fix its layout
            self._num_classes = z.shape[1]
            self._dtype = z.dtype
            self._string_ids = ids.dtype.kind != "i"
            self._has_labels = y is not None
        # Copy: the caller may reuse its buffers (and torch's .numpy() shares memory).
        self._buffer.append(
            (ids.copy(), np.array(z, order="C", copy=True), None if y is None else y.copy())
        )
        self._buffered_bytes += z.nbytes
        self._rows_in_epoch += n
        if self._buffered_bytes >= self._buffer_bytes:
            self._flush()

    def write_records(self, sample_ids: Any, records: CompactRecords, labels: Any) -> None:
        """Record one batch of compact records computed elsewhere (e.g. on the GPU with
        :func:`aum_score.compact.compact_records_torch`). Needs ``compact=True``."""
        if self._closed:
            raise ValueError("LogitWriter is closed")
        if not self.compact:
            raise ValueError("write_records needs LogitWriter(..., compact=True)")
        n = len(records)
        if n == 0:
            return
        ids = self._check_ids(sample_ids, n)
        y = self._check_labels(labels, n, records.num_classes)
        if y is None:
            raise ValueError("a compact log needs the labels")
        if self._num_classes is None:
            self._num_classes = records.num_classes
            self._dtype = np.dtype(records.label_logit.dtype)
            self._string_ids = ids.dtype.kind != "i"
            self._has_labels = True
        elif records.num_classes != self._num_classes:
            raise ValueError(
                f"records are of {records.num_classes} classes, the log has {self._num_classes}"
            )
        self._buffer.append((ids.copy(), records, y.copy()))
        self._buffered_bytes += 24 * n
        self._rows_in_epoch += n
        if self._buffered_bytes >= self._buffer_bytes:
            self._flush()

    def _schema(self) -> pa.Schema:
        if self.compact:
            return compact_schema(
                pa.string() if self._string_ids else pa.int64(),
                _ARROW_FLOAT[self._dtype],
                self._num_classes,
                self._epoch,
            )
        fields = [
            pa.field("sample_id", pa.string() if self._string_ids else pa.int64(), nullable=False),
            pa.field(
                "logits", pa.list_(_ARROW_FLOAT[self._dtype], self._num_classes), nullable=False
            ),
        ]
        if self._has_labels:
            fields.append(pa.field("label", pa.int64(), nullable=False))
        meta = {b"epoch": str(self._epoch).encode(), b"aum_score_log": LOG_FORMAT_VERSION}
        return pa.schema(fields, metadata=meta)

    def _flush(self) -> None:
        """Write the buffered rows as one record batch to the epoch's .partial file."""
        if not self._buffer:
            return
        if self._sink is None:
            self._sink_schema = self._schema()
            self._sink = pa.ipc.new_file(str(self._partial_path()), self._sink_schema)

        def cat(i: int) -> np.ndarray:
            parts = [b[i] for b in self._buffer]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        ids = cat(0)
        if self._string_ids:
            id_arr = pa.array(ids.tolist(), type=pa.string())
        else:
            id_arr = pa.array(ids, type=pa.int64())
        if self.compact:
            columns = {
                name: np.concatenate([getattr(b[1], name) for b in self._buffer])
                for name in COMPACT_COLUMNS
            }
            arrays = [id_arr, pa.array(cat(2), pa.int64())] + [
                pa.array(columns[name]) for name in COMPACT_COLUMNS
            ]
            self._sink.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._sink_schema))
            self._buffer.clear()
            self._buffered_bytes = 0
            return
        z = cat(1)
        logit_arr = pa.FixedSizeListArray.from_arrays(
            pa.array(z.reshape(-1), type=_ARROW_FLOAT[self._dtype]), self._num_classes
        )
        cols = [id_arr, logit_arr]
        if self._has_labels:
            cols.append(pa.array(cat(2), type=pa.int64()))
        self._sink.write_batch(pa.RecordBatch.from_arrays(cols, schema=self._sink_schema))
        self._buffer.clear()
        self._buffered_bytes = 0

    def end_epoch(self) -> Path | None:
        """Complete the current epoch: flush, close its file, rename it to its final name.

        The next ``write()`` goes to epoch ``epoch + 1``. An epoch with no rows writes no file
        but still advances the epoch number. Returns the completed file's path (or None).
        """
        if self._closed:
            raise ValueError("LogitWriter is closed")
        path = None
        if self._rows_in_epoch:
            self._flush()
            assert self._sink is not None
            self._sink.close()
            self._sink = None
            path = self._final_path()
            os.replace(self._partial_path(), path)  # atomic: readers never see half an epoch
            self.paths.append(path)
        self._rows_in_epoch = 0
        self._epoch += 1
        return path

    def abort(self) -> None:
        """Discard the epoch in progress (its ``.partial`` file is deleted) and close."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        if self._sink is not None:
            try:
                self._sink.close()
            finally:
                self._sink = None
                self._partial_path().unlink(missing_ok=True)

    def close(self) -> None:
        """Complete a pending epoch that has rows (as ``end_epoch()`` would) and close."""
        if self._closed:
            return
        try:
            if self._rows_in_epoch:
                self.end_epoch()
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def __enter__(self) -> Self:
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
        state = "closed" if self._closed else f"epoch={self._epoch}"
        return f"LogitWriter({str(self.directory)!r}, {state}, num_classes={self._num_classes})"
