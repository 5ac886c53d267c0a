"""``AUMCalculator``: a drop-in replacement for the reference library's ``aum.AUMCalculator``.

Switching is one import::

    from aum_score import AUMCalculator          # was: from aum import AUMCalculator

    calc = AUMCalculator(save_dir, compressed=True)
    records = calc.update(logits, targets, sample_ids)   # once per training batch
    calc.finalize()                                       # writes aum_values.csv

Same results, same files: the per-row fields are those of the reference (computed in the
logits' precision, ties resolved to the first maximum like ``torch.max``), margins are summed in
float64 in row order, and ``finalize`` writes the same CSV columns in the same order. The
arithmetic is vectorised with numpy per batch and the per-sample sums live in the C++ core
(:class:`aum_score.Scorer`), so an update costs microseconds instead of a Python loop over
the batch. Unlike the reference, a one-row batch works, ids may also come as an array or tensor,
and NaN/infinite margins raise :class:`aum_score.LogFormatError` instead of silently poisoning
the AUM.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Union

import numpy as np

from .api import Scorer
from .errors import LogFormatError

__all__ = ["AUMCalculator", "AUMRecord", "AUMRecords"]

SampleId = Union[int, str]

_RECORD_COLUMNS = (
    "sample_id",
    "num_measurements",
    "target_logit",
    "target_val",
    "other_logit",
    "other_val",
    "margin",
    "aum",
)


@dataclass
class AUMRecord:
    """One sample's AUM bookkeeping right after one of its rows (the reference's record)."""

    sample_id: SampleId
    num_measurements: int  #: margins recorded for the sample so far
    target_logit: int  #: the assigned label (index of the target logit)
    target_val: float  #: the target logit
    other_logit: int  #: index of the largest other logit (first one on ties)
    other_val: float  #: the largest other logit
    margin: float  #: target_val - other_val, rounded to the logits' precision
    aum: float  #: mean margin so far


class _Rows(NamedTuple):
    """Per-row fields of one batch, as arrays (one entry per row)."""

    sample_id: np.ndarray
    num_measurements: np.ndarray
    target_logit: np.ndarray
    target_val: np.ndarray
    other_logit: np.ndarray
    other_val: np.ndarray
    margin: np.ndarray
    aum: np.ndarray

    def record(self, row: int) -> AUMRecord:
        return AUMRecord(
            sample_id=self.sample_id[row].item(),
            num_measurements=int(self.num_measurements[row]),
            target_logit=int(self.target_logit[row]),
            target_val=float(self.target_val[row]),
            other_logit=int(self.other_logit[row]),
            other_val=float(self.other_val[row]),
            margin=float(self.margin[row]),
            aum=float(self.aum[row]),
        )


class AUMRecords(Mapping):
    """What :meth:`AUMCalculator.update` returns: sample id -> :class:`AUMRecord`.

    Behaves like the reference's dict (a sample repeated within the batch keeps its last row's
    record; iteration in order of first appearance), but records are only built when read, so
    an update that ignores its return value pays nothing for them.
    """

    __slots__ = ("_rows", "_index")

    def __init__(self, rows: _Rows) -> None:
        self._rows = rows
        self._index: dict[SampleId, int] | None = None

    def _rows_by_id(self) -> dict[SampleId, int]:
        if self._index is None:  # a dict comprehension keeps each key's last row, like the loop
            self._index = {sid: row for row, sid in enumerate(self._rows.sample_id.tolist())}
        return self._index

    def __getitem__(self, sample_id: SampleId) -> AUMRecord:
        return self._rows.record(self._rows_by_id()[sample_id])

    def __iter__(self) -> Iterator[SampleId]:
        return iter(self._rows_by_id())

    def __len__(self) -> int:
        return len(self._rows_by_id())

    def __repr__(self) -> str:
        return f"AUMRecords({len(self)} samples)"


def _as_numpy(x: Any) -> tuple[np.ndarray, bool]:
    """A numpy array of ``x`` (numpy, torch on any device, tf, jax, lists, ``__dlpack__``
    objects) without importing any framework, and whether ``x`` held bfloat16 (numpy has no
    bfloat16, so such values come back as exact float32 and the caller re-rounds results)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor: maybe on a GPU, maybe grad
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            return x.float().numpy(), True
        try:
            return x.numpy(), False
        except TypeError:  # float8 and other dtypes numpy cannot hold
            return x.float().numpy(), False
    if not hasattr(x, "__array__") and hasattr(x, "__dlpack__"):
        x = np.from_dlpack(x)
    array = np.asarray(x)
    if array.dtype.kind == "V" and array.dtype.name == "bfloat16":  # ml_dtypes (jax, tf)
        return array.astype(np.float32), True
    return array, False


def _round_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), as torch does after each
    bfloat16 operation; returned as float32."""
    bits = x.astype(np.float32).view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return np.where(np.isnan(x), x, rounded.view(np.float32))


def _cuda_placeholder(logits: Any) -> np.ndarray | None:
    """CUDA torch logits with aum_score._cuda usable: a shape-and-dtype stand-in (see
    :func:`aum_score.cuda.calculator_placeholder`); otherwise None and the CPU path runs."""
    if not getattr(logits, "is_cuda", False):
        return None
    from .cuda import calculator_placeholder

    return calculator_placeholder(logits)


def _row_fields(
    z: np.ndarray, targets: np.ndarray, bfloat16: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(target value, other index, other value, margin) of every row, vectorised.

    The other class is the first maximum of the row with the target masked to -inf (what
    ``torch.max`` returns). Where the row's first maximum is not the target it is already that
    class, so only rows whose first maximum is the target are copied and masked.
    """
    rows = np.arange(len(z))
    target_val = z[rows, targets]
    other = z.argmax(axis=1)
    other_val = z[rows, other]
    hit = np.flatnonzero(other == targets)
    if len(hit):
        masked = z[hit]
        masked[np.arange(len(hit)), targets[hit]] = -np.inf
        other[hit] = masked.argmax(axis=1)
        other_val[hit] = masked[np.arange(len(hit)), other[hit]]
    margin = target_val - other_val  # in the logits' dtype: its rounding is the reference's
    if bfloat16:
        margin = _round_to_bfloat16(margin)
    return target_val, other, other_val, margin


class _SlotIndex:
    """Dense slots 0, 1, 2, ... for sample ids, in order of first appearance (the order of the
    reference's dicts, which decides how ties fall in its sorted CSV).

    Small non-negative integer ids (dataset indices, the usual case) are looked up in a table
    indexed by id, vectorised; other ids (strings, sparse or negative integers) go through a
    dict.
    """

    _DIRECT_SLACK = 1 << 16  # a table may be this much larger than 4x the samples seen

    def __init__(self) -> None:
        self.size = 0
        self._table: np.ndarray | None = np.full(0, -1, np.int64)  # id -> slot, -1: unseen
        self._dict: dict[SampleId, int] = {}

    def slots(self, ids: np.ndarray) -> np.ndarray:
        """The slot of each id, giving unseen ids the next slots."""
        if self._table is not None and not self._fits_table(ids):
            self._to_dict()
        if self._table is None:
            index = self._dict
            # len(index) is read before setdefault inserts, so new ids get consecutive slots.
            slots = np.fromiter(
                (index.setdefault(k, len(index)) for k in ids.tolist()), np.int64, len(ids)
            )
            self.size = len(index)
            return slots
        slots = self._table[ids]
        unseen = slots < 0
        if unseen.any():
            new, first = np.unique(ids[unseen], return_index=True)
            new = new[np.argsort(first)]
            self._table[new] = np.arange(self.size, self.size + len(new))
            self.size += len(new)
            slots = self._table[ids]
        return slots

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Slots of ids seen before."""
        if self._table is not None:
            return self._table[ids.astype(np.int64)]
        return np.fromiter((self._dict[k] for k in ids.tolist()), np.int64, len(ids))

    def _fits_table(self, ids: np.ndarray) -> bool:
        if ids.dtype.kind != "i":
            return False
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= 4 * (self.size + len(ids)) + self._DIRECT_SLACK:
            return False
        assert self._table is not None
        if high >= len(self._table):  # grow geometrically: amortised O(1) per id
            grown = np.full(max(high + 1, 2 * len(self._table)), -1, np.int64)
            grown[: len(self._table)] = self._table
            self._table = grown
        return True

    def _to_dict(self) -> None:
        assert self._table is not None
        seen = np.flatnonzero(self._table >= 0)
        self._dict = dict(zip(seen.tolist(), self._table[seen].tolist()))
        self._table = None


class AUMCalculator:
    """Drop-in replacement for ``aum.AUMCalculator`` (the reference library, 1.0.2).

    Args:
        save_dir: where :meth:`finalize` writes ``aum_values.csv`` (and, when not compressed,
            ``full_aum_records.csv``); created when needed. May be None when ``finalize`` is
            given one.
        compressed: keep only what the final AUMs need (default). ``False`` also keeps every
            row's record (:attr:`records`) and writes ``full_aum_records.csv``.

    Sample ids are integers or strings (one kind per calculator), given as a list, a numpy
    array or a tensor. Logits and targets may be torch tensors on any device (detached and
    copied to the host here), numpy arrays, or anything with ``__array__`` or ``__dlpack__``
    (TensorFlow, JAX). float16/bfloat16/float32/float64 logits keep their precision for the
    margin, as the reference's torch arithmetic does.
    """

    def __init__(self, save_dir: str | os.PathLike[str] | None, compressed: bool = True) -> None:
        self.save_dir = save_dir
        self.compressed = compressed
        # The core sums each sample's margins; it is fed one (margin, 0) row per margin with
        # label 0, so it sums exactly the margins the records report, whatever the dtype.
        self._scorer = Scorer(2, bootstrap=0)
        self._slots = _SlotIndex()
        self._string_ids: bool | None = None
        # Running count and sum per slot: the records need each row's running AUM, and the
        # core has no per-sample lookup, so this small mirror of its state provides them.
        self._counts = np.zeros(0, np.int64)
        self._sums = np.zeros(0, np.float64)
        self._mark = np.zeros(0, np.int64)  # scratch, per slot, to spot ids repeated in a batch
        self._history: list[_Rows] = []  # every batch's rows when not compressed

    # ------------------------------------------------------------------ input checks
    def _sample_ids(self, sample_ids: Any, n: int) -> np.ndarray:
        ids = _as_numpy(sample_ids)[0].reshape(-1)
        if len(ids) != n:
            raise LogFormatError(f"{len(ids)} sample ids for {n} rows of logits")
        if ids.dtype.kind in "iu":
            if ids.dtype == np.uint64 and n and ids.max() > np.iinfo(np.int64).max:
                raise LogFormatError("integer sample ids must fit in int64")
            ids = ids.astype(np.int64, copy=False)
        elif ids.dtype.kind == "O" and all(isinstance(v, str) for v in ids):
            ids = ids.astype(str)
        elif ids.dtype.kind != "U" and n:
            raise LogFormatError(f"sample ids must be integers or strings, got {ids.dtype}")
        string_ids = ids.dtype.kind == "U"
        if self._string_ids is not None and string_ids != self._string_ids:
            raise LogFormatError("sample ids changed between integers and strings")
        return ids

    def _batch(self, logits: Any, targets: Any, sample_ids: Any):
        z, bfloat16 = _as_numpy(logits)
        if z.ndim != 2:
            raise LogFormatError(f"logits must be 2-D (rows x classes), got shape {z.shape}")
        if z.dtype.kind != "f" or z.dtype.itemsize not in (2, 4, 8):
            z = z.astype(np.float64)  # integer logits etc.: float64 holds them exactly
        elif not z.dtype.isnative:
            z = z.astype(z.dtype.newbyteorder("="))
        n, classes = z.shape
        y = _as_numpy(targets)[0].reshape(-1)
        if len(y) != n:
            raise LogFormatError(f"{len(y)} targets for {n} rows of logits")
        if n and y.dtype.kind not in "iu":
            raise LogFormatError(f"targets must be integer class indices, got {y.dtype}")
        y = y.astype(np.int64, copy=False)
        if n and (y.min() < 0 or y.max() >= classes):
            row = int(np.flatnonzero((y < 0) | (y >= classes))[0])
            raise LogFormatError(f"row {row}: target {y[row]} is outside [0, {classes})")
        return z, bfloat16, y, self._sample_ids(sample_ids, n)

    # ------------------------------------------------------------------ updating
    def update(self, logits: Any, targets: Any, sample_ids: Any) -> AUMRecords:
        """Add one margin per row and return the updated samples' records.

        Args:
            logits: ``(rows, C)`` logits of the training forward pass.
            targets: ``(rows,)`` index of each row's target logit (its assigned label).
            sample_ids: ``(rows,)`` integer or string id of each row's sample.

        Returns:
            :class:`AUMRecords`, a read-only mapping sample id -> :class:`AUMRecord` (the state
            right after the sample's last row in this batch), like the reference's dict.

        Raises:
            LogFormatError: on mismatched lengths, targets out of range, ids of the wrong kind,
                or a NaN/infinite margin (the calculator is then unchanged).
        """
        placeholder = _cuda_placeholder(logits)  # CUDA logits: the fields come from the GPU
        z, bfloat16, y, ids = self._batch(
            logits if placeholder is None else placeholder, targets, sample_ids
        )
        if not len(ids):  # nothing to add; an empty id list has no kind to check either
            empty = np.zeros(0, np.int64)
            return AUMRecords(_Rows(*[empty] * len(_RECORD_COLUMNS)))
        if placeholder is None:
            target_val, other, other_val, margin = _row_fields(z, y, bfloat16)
        else:
            from .cuda import calculator_row_fields

            target_val, other, other_val, margin = calculator_row_fields(logits, y)
        margin64 = margin.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(margin64))
        if len(bad):
            row = int(bad[0])
            raise LogFormatError(
                f"row {row} (sample {ids[row].item()!r}): the margin is {margin64[row]} "
                "(NaN or infinite logits)"
            )
        zeros = np.zeros(len(ids), np.int64)
        self._scorer.update(np.column_stack([margin64, zeros]), zeros, ids)
        self._string_ids = ids.dtype.kind == "U"
        counts, sums = self._accumulate(self._slots.slots(ids), margin64)
        rows = _Rows(ids, counts, y, target_val, other, other_val, margin64, sums / counts)
        if not self.compressed:
            self._history.append(rows)
        return AUMRecords(rows)

    def _accumulate(self, slots: np.ndarray, margins: np.ndarray) -> tuple[np.ndarray, ...]:
        """Add margins to the running state; each row's count and sum right after it."""
        if self._slots.size > len(self._counts):
            grow = max(self._slots.size, 2 * len(self._counts)) - len(self._counts)
            self._counts = np.concatenate([self._counts, np.zeros(grow, np.int64)])
            self._sums = np.concatenate([self._sums, np.zeros(grow, np.float64)])
            self._mark = np.zeros(len(self._counts), np.int64)
        position = np.arange(len(slots))
        # Repeated slots: whichever row's write lands, some row of a repeated slot reads back
        # another row's number, so this finds repeats in O(rows) without sorting.
        self._mark[slots] = position
        if (self._mark[slots] == position).all():
            rounds = [position]
        else:  # a sample repeated in the batch: add its rows in order, one occurrence a round
            order = np.argsort(slots, kind="stable")
            run_start = np.r_[True, slots[order][1:] != slots[order][:-1]]
            occurrence = np.empty_like(position)
            occurrence[order] = position - np.maximum.accumulate(np.where(run_start, position, 0))
            rounds = [np.flatnonzero(occurrence == k) for k in range(occurrence.max() + 1)]
        counts = np.empty(len(slots), np.int64)
        sums = np.empty(len(slots), np.float64)
        for rows in rounds:  # slots are distinct within a round, so fancy-index += is exact
            s = slots[rows]
            self._counts[s] += 1
            self._sums[s] += margins[rows]
            counts[rows] = self._counts[s]
            sums[rows] = self._sums[s]
        return counts, sums

    # ------------------------------------------------------------------ results
    @property
    def records(self) -> list[AUMRecord]:
        """Every row's record, in update order (only when ``compressed=False``, as in the
        reference)."""
        if self.compressed:
            raise AttributeError("records are kept only with compressed=False")
        return [rows.record(i) for rows in self._history for i in range(len(rows.sample_id))]

    def aum_values(self) -> tuple[np.ndarray, np.ndarray]:
        """(sample ids, AUMs) sorted as ``aum_values.csv`` is: AUM descending."""
        if self._slots.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        table = self._scorer.result().table
        ids = table.column("sample_id").to_numpy(zero_copy_only=False)
        aum = table.column("aum").to_numpy()
        # Back to first-appearance order: the reference's DataFrame is built in that order and
        # its (unstable) quicksort makes the order of tied AUMs depend on it.
        first_seen = np.argsort(self._slots.lookup(ids))
        ids, aum = ids[first_seen], aum[first_seen]
        order = _pandas_descending_order(aum)
        return ids[order], aum[order]

    def finalize(self, save_dir: str | os.PathLike[str] | None = None) -> None:
        """Write ``aum_values.csv`` (``sample_id``, ``aum``; AUM descending) and, when not
        compressed, ``full_aum_records.csv`` (every record, by sample id then measurement).

        Args:
            save_dir: overrides the directory given at construction.
        """
        if save_dir is None and self.save_dir is None:
            raise ValueError("finalize needs a save_dir (none was given to AUMCalculator)")
        directory = Path(save_dir or self.save_dir)
        directory.mkdir(parents=True, exist_ok=True)
        ids, aum = self.aum_values()
        _write_csv(directory / "aum_values.csv", ("sample_id", "aum"), [ids, aum])
        if self.compressed:
            return
        if self._history:
            columns = [np.concatenate(c) for c in zip(*self._history)]
            order = np.lexsort((columns[1], columns[0]))  # by sample id, then measurement
            columns = [c[order] for c in columns]
        else:
            columns = [np.zeros(0, np.int64)] * len(_RECORD_COLUMNS)
        _write_csv(directory / "full_aum_records.csv", _RECORD_COLUMNS, columns)


def _pandas_descending_order(values: np.ndarray) -> np.ndarray:
    """The row order of ``DataFrame.sort_values(ascending=False)`` (pandas' default
    quicksort), which the reference's ``aum_values.csv`` has: the same numpy calls on the same
    array, so tied values land where pandas puts them."""
    index = np.arange(len(values))
    nan = np.isnan(values)
    indexer = index[~nan][::-1][values[~nan][::-1].argsort(kind="quicksort")][::-1]
    return np.concatenate([indexer, index[nan]])


def _write_csv(path: Path, header: tuple[str, ...], columns: list[np.ndarray]) -> None:
    """A CSV as pandas' ``to_csv(index=False)`` writes it: the csv module with os.linesep,
    numbers formatted by numpy's ``astype(str)`` (shortest round-trip repr)."""
    texts = [
        c.tolist()
        if c.dtype.kind == "U"
        # float16/32 values go out as the Python floats the reference holds (float64 repr)
        else c.astype(np.float64 if c.dtype.kind == "f" else c.dtype).astype(str).tolist()
        for c in columns
    ]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator=os.linesep)
        writer.writerow(header)
        writer.writerows(zip(*texts))
