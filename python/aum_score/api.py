"""The public API: score a logit log in one call, or feed a :class:`Scorer` batch by batch."""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from . import _core, storage
from ._version import __version__
from .arrays import to_numpy
from .errors import FragileCutoffWarning, LogFormatError
from .logs import NO_LABEL, LogFile
from .memorisation import auto_window_end
from .results import ScoreResult, build_result
from .run_inputs import check_options, run_inputs
from .scoring import (
    AddSettings,
    Sources,
    accumulate_log,
    add_labels_file,
    expect_samples,
    row_error_message,
    sample_keys,
)
from .state import save_state as save_state_file
from .state import state_after


def score(
    logs: str | os.PathLike | Sequence[str | os.PathLike],
    labels: str | os.PathLike | None = None,
    *,
    epochs: str | slice | None = None,
    threshold_class: int | None = None,
    percentile: float = 99.0,
    nonfinite: str = "error",
    allow_label_changes: bool = False,
    bootstrap: int = 1000,
    threads: int | None = None,
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
    state: str | os.PathLike | None = None,
    save_state: str | os.PathLike | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    mode: str = "auto",
    output: str | os.PathLike | None = None,
    device: str = "cpu",
) -> ScoreResult:
    """Score a logit log: the AUM of every sample, and threshold-sample flags.

    Args:
        logs: a directory of log files, one file, or a list of files/directories; each may be
            a URL (``s3://bucket/logs/``, ``gs://...``: see :mod:`aum_score.storage`). With
            ``state``: only the new files (may be empty: the state's result).
        labels: a table (.parquet, .arrow, .feather, .csv) with ``sample_id`` and ``label``, for
            logs without a ``label`` column. When both are present they must agree.
        epochs: ``"START:END"`` or a slice: Python slice semantics on epoch numbers. ``"auto"``
            or ``"START:auto"`` ends the window where the threshold samples start being fitted
            (memorisation), at the cost of a second pass over the log.
        threshold_class: rows with this label are threshold samples. Default: the class a
            labels file written by ``aum-score threshold-samples`` marks.
        percentile: the cut-off percentile of the threshold samples' AUMs (default 99).
        nonfinite: ``"error"`` (default) or ``"skip"`` rows with NaN/inf logits.
        allow_label_changes: let rows of one sample carry different labels, each row using its
            own (the reference library's behaviour); the result shows the last label.
        bootstrap: resamples of the threshold samples for the cut-off's interval and each
            sample's ``flag_rate`` (0: none).
        threads: threads for the margin kernel (default: all).
        progress: show a progress bar on stderr.
        on_batch: called with the bytes of each batch read (for progress bars).
        state: a state file saved by an earlier run (``save_state``): resume from it, adding
            ``logs`` (new epochs) without reading the files it holds. Its threshold class and
            epoch window are the defaults; a file or epoch it already holds is refused.
        save_state: write the state after this run here (atomically; may equal ``state``).
        scheduler, workers, mode, output: score on a Dask cluster (a scheduler address or
            ``distributed.Client``; or a local cluster of ``workers`` processes) in ``mode``
            ``"auto"``, ``"reduce"`` or ``"shard"``. ``output``: write the result there too (a
            file; in shard mode a directory, a Parquet dataset, and the return value is a
            ``ShardedResult``). See :func:`aum_score.distributed.score`, docs/distributed.md.
        device: ``"cpu"`` or ``"cuda"``: compute the margins on the GPU (``aum_score._cuda``),
            streaming the log through pinned host buffers; the same AUMs, bit for bit.

    Returns:
        A :class:`ScoreResult` (``.table`` sorted by AUM ascending, ``.summary``, ``.monitor``).

    Raises:
        LogFormatError: on any bad input, with the file, column or row named.
    """
    device_margins = _device_margins(device, scheduler is not None or workers is not None)
    if scheduler is not None or workers is not None:
        from .distributed import score as score_distributed

        return score_distributed(
            logs, labels, epochs=epochs, threshold_class=threshold_class, percentile=percentile,
            nonfinite=nonfinite, allow_label_changes=allow_label_changes, bootstrap=bootstrap,
            threads=threads, scheduler=scheduler, workers=workers, mode=mode, output=output,
            state=state, save_state=save_state,
        )  # fmt: skip
    if mode != "auto":
        raise LogFormatError(f"mode {mode!r} needs a Dask cluster: give scheduler or workers")
    started = time.perf_counter()
    run = run_inputs(logs, labels, epochs, threshold_class, percentile, nonfinite, state)
    files, window, auto, prior = run.files, run.window, run.auto, run.prior
    labels_file, threshold_class = run.labels_file, run.threshold_class
    classes, string_ids = run.classes, run.string_ids
    sources = Sources(logs=[f.path for f in files], labels=os.fspath(labels) if labels else None)
    settings = AddSettings(
        skip_nonfinite=nonfinite == "skip",
        allow_label_changes=allow_label_changes,
        threads=threads or 0,
        threshold_class=threshold_class,
    )
    settings.margins = device_margins

    def one_pass(window: slice) -> _core.Accumulator:
        if prior is not None:  # rows and labels of the files it consumed, from the state
            accumulator = prior.copy_accumulator()
        else:
            accumulator = _core.Accumulator(classes, string_ids)
            if files:
                expect_samples(accumulator, files[0])
        if labels_file is not None:
            add_labels_file(accumulator, labels_file, sources)
        rows = accumulate_log(accumulator, files, sources, window, settings, on_batch)
        if prior is not None:
            prior.check_added_epochs(accumulator, files)
        elif rows == 0:
            raise LogFormatError(
                f"{files[0].path}: no rows to score"
                + (f" in epochs {epochs}" if epochs is not None else "")
            )
        return accumulator

    with ExitStack() as stack:
        if progress and on_batch is None:
            on_batch = stack.enter_context(_progress_bar(files, passes=2 if auto else 1)).update
        accumulator = one_pass(window)
        result = build_result(
            accumulator, threshold_class, percentile, bootstrap, threads=threads or 0
        )
        if auto:
            stop = auto_window_end(result.monitor)
            if stop is not None:  # memorisation starts inside the log: score the window again
                window = slice(window.start, stop)
                monitor = result.monitor
                accumulator = one_pass(window)
                result = build_result(
                    accumulator, threshold_class, percentile, bootstrap, threads=threads or 0
                )
                result.monitor = monitor  # the whole run's monitor shows why the window ends
    if save_state is not None:
        scored = state_after(prior, accumulator, files, labels, threshold_class, window)
        save_state_file(scored, save_state)
    summary = result.summary
    summary.epoch_window = [window.start, window.stop]
    summary.set_seconds(time.perf_counter() - started)
    if threshold_class is not None and summary.threshold_samples == 0:
        summary.warnings.append(
            f"no sample has the threshold class {threshold_class}, so nothing is flagged"
        )
    if output is not None:
        result.write(output)
    for message in summary.warnings:
        warnings.warn(message, FragileCutoffWarning, stacklevel=2)
    return result


def _progress_bar(files: Sequence[LogFile], passes: int = 1):
    """A click progress bar on stderr over the bytes of the log."""
    import click

    total = passes * sum(storage.size(f.path) for f in files)
    return click.progressbar(length=total, label="scoring", file=sys.stderr)


class Scorer:
    """AUM computed while training: feed batches, read the result at any time.

    >>> scorer = Scorer(num_classes=3)
    >>> scorer.update([[2.0, 1.0, 0.0]], [0], [7])
    >>> scorer.result().table.column("aum").to_pylist()
    [1.0]
    """

    def __init__(
        self,
        num_classes: int | None = None,
        *,
        threshold_class: int | None = None,
        percentile: float = 99.0,
        nonfinite: str = "error",
        allow_label_changes: bool = False,
        bootstrap: int = 1000,
        threads: int | None = None,
    ) -> None:
        check_options(threshold_class, num_classes, percentile, nonfinite)
        self.num_classes = num_classes
        self.threshold_class = threshold_class
        self.percentile = percentile
        self.nonfinite = nonfinite
        self.allow_label_changes = allow_label_changes
        self.threads = threads or 0
        self._accumulator: _core.Accumulator | None = None
        self.bootstrap = bootstrap
        self.epoch = 0  #: epoch of rows added without an explicit epoch
        self._seconds = 0.0
        self._batches = 0

    def _state(self, classes: int, string_ids: bool) -> _core.Accumulator:
        if self._accumulator is None:
            if self.num_classes is not None and classes != self.num_classes:
                raise LogFormatError(f"logits have {classes} classes, expected {self.num_classes}")
            check_options(self.threshold_class, classes, self.percentile, self.nonfinite)
            self.num_classes = classes
            self._accumulator = _core.Accumulator(classes, string_ids)
        elif self._accumulator.string_ids != string_ids:
            raise LogFormatError("sample ids changed between integers and strings")
        return self._accumulator

    def _keys(
        self, accumulator: _core.Accumulator, sample_ids: np.ndarray, where: str
    ) -> np.ndarray:
        if accumulator.string_ids:
            return sample_keys(accumulator, pa.array(sample_ids.astype(str), pa.string()), where)
        return sample_ids.astype(np.int64, copy=False)

    def update(self, logits: Any, labels: Any, sample_ids: Any, epoch: int | None = None) -> None:
        """Add one margin per row: ``logits`` (rows x C), ``labels`` (rows; None to use labels
        given with :meth:`set_labels`), ``sample_ids`` (rows; integers or strings). ``epoch``
        (default: the scorer's current epoch, see :meth:`end_epoch`) feeds the memorisation
        monitor."""
        started = time.perf_counter()
        logits = to_numpy(logits)
        if logits.ndim != 2:
            raise LogFormatError(f"logits must be 2-D (rows x classes), got shape {logits.shape}")
        if logits.dtype.kind != "f" or logits.dtype.itemsize not in (2, 4, 8):
            logits = logits.astype(np.float32)
        if not logits.flags.c_contiguous and (
            logits.strides[1] != logits.itemsize or logits.strides[0] < 0
        ):
            logits = np.ascontiguousarray(logits)
        ids = to_numpy(sample_ids).reshape(-1)
        accumulator = self._state(logits.shape[1], ids.dtype.kind in "USO")
        where = f"batch {self._batches}"
        if labels is None:
            label_array = np.full(len(ids), NO_LABEL, dtype=np.int64)
        else:
            label_array = to_numpy(labels).reshape(-1)
            if label_array.dtype.kind not in "iu":
                raise LogFormatError(f"{where}: labels must be integers, got {label_array.dtype}")
            label_array = label_array.astype(np.int64, copy=False)
        if len(ids) != len(logits) or len(label_array) != len(logits):
            raise LogFormatError(
                f"{where}: {len(logits)} rows of logits, {len(label_array)} labels and "
                f"{len(ids)} sample ids; they must match"
            )
        keys = self._keys(accumulator, ids, where)
        try:
            accumulator.add(
                logits,
                label_array,
                keys,
                source=0,
                skip_nonfinite=self.nonfinite == "skip",
                allow_label_changes=self.allow_label_changes,
                threads=self.threads,
                epoch=self.epoch if epoch is None else int(epoch),
                tally_label=NO_LABEL if self.threshold_class is None else self.threshold_class,
            )
        except ValueError as exc:
            raise LogFormatError(
                row_error_message(exc, where, Sources(logs=["an earlier batch"]))
            ) from None
        self._batches += 1
        self._seconds += time.perf_counter() - started

    def set_labels(self, sample_ids: Any, labels: Any, num_classes: int | None = None) -> None:
        """Known labels for samples whose rows will come without one."""
        ids = to_numpy(sample_ids).reshape(-1)
        classes = num_classes or self.num_classes
        if classes is None:
            raise LogFormatError("set_labels needs num_classes (here or in Scorer())")
        accumulator = self._state(classes, ids.dtype.kind in "USO")
        try:
            accumulator.set_labels(
                self._keys(accumulator, ids, "labels"),
                to_numpy(labels).astype(np.int64),
                _core.LABELS_SOURCE,
            )
        except ValueError as exc:
            raise LogFormatError(row_error_message(exc, "labels", Sources())) from None

    def result(self) -> ScoreResult:
        """The result so far (the scorer can keep being updated afterwards)."""
        if self._accumulator is None:
            raise LogFormatError("no rows were added")
        result = build_result(
            self._accumulator, self.threshold_class, self.percentile, self.bootstrap
        )
        result.summary.set_seconds(self._seconds)
        return result

    def end_epoch(self) -> None:
        """Rows added from now on without an explicit epoch belong to the next epoch."""
        self.epoch += 1

    def to_bytes(self) -> bytes:
        """The per-sample state, versioned, to save and later :meth:`from_bytes` or merge."""
        if self._accumulator is None:
            raise LogFormatError("no rows were added")
        return self._accumulator.to_bytes()

    def merge(self, other: Scorer) -> None:
        """Add another scorer's rows (disjoint rows of the same run) into this one."""
        if other._accumulator is None:
            return
        if self._accumulator is None:
            self._accumulator = _core.Accumulator.from_bytes(other._accumulator.to_bytes())
            self.num_classes = self._accumulator.classes
            return
        try:
            self._accumulator.merge(other._accumulator, self.allow_label_changes)
        except ValueError as exc:
            raise LogFormatError(str(exc)) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the scorer's state to a state file (atomically; a local path or a URL). Resume
        with :meth:`load`, or extend it with log files: ``score(new_logs, state=path)``."""
        from .state import ScoringState, save_state

        if self._accumulator is None:
            raise LogFormatError("no rows were added")
        state = ScoringState(
            self._accumulator, threshold_class=self.threshold_class, next_epoch=self.epoch
        )
        save_state(state, path)

    @classmethod
    def load(cls, path: str | os.PathLike, **options: Any) -> Scorer:
        """A scorer resumed from a state file (written by :meth:`save` or by
        ``score(..., save_state=path)``): its rows, labels, monitor tallies, threshold class and
        epoch. ``options`` as for :class:`Scorer`; a different threshold class is refused."""
        from .state import load_state

        state = load_state(path)
        threshold_class = state.check_threshold_class(options.pop("threshold_class", None))
        scorer = cls(state.classes, threshold_class=threshold_class, **options)
        scorer._accumulator = state.accumulator
        epochs = state.epochs()
        # A score() state holds whole epochs: new rows start the next one.
        scorer.epoch = state.next_epoch if not state.files else max(epochs, default=-1) + 1
        return scorer

    @classmethod
    def from_bytes(cls, data: bytes, **options: Any) -> Scorer:
        try:
            accumulator = _core.Accumulator.from_bytes(data)
        except ValueError as exc:
            raise LogFormatError(f"cannot load state: {exc}") from None
        scorer = cls(accumulator.classes, **options)
        scorer._accumulator = accumulator
        return scorer


def margins(logits: Any, labels: Any, threads: int | None = None) -> np.ndarray:
    """Margin of each row, as the core computes it: ``z[y] - max_{j != y} z[j]`` (float32
    arithmetic for float16/float32 logits, float64 for float64); NaN where a row holds NaN/inf."""
    logits = to_numpy(logits)
    if logits.ndim == 2 and (logits.dtype.kind != "f" or logits.dtype.itemsize not in (2, 4, 8)):
        logits = logits.astype(np.float32)
    if logits.ndim == 2 and not logits.flags.c_contiguous:
        logits = np.ascontiguousarray(logits)
    try:
        return _core.margins(logits, to_numpy(labels).astype(np.int64), threads or 0)
    except ValueError as exc:
        raise LogFormatError(row_error_message(exc, "logits", Sources())) from None


def _device_margins(device: str, distributed: bool):
    """The margin source for ``device`` (None: the CPU core's kernel)."""
    if device == "cpu":
        return None
    if device != "cuda":
        raise LogFormatError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if distributed:
        raise LogFormatError("device 'cuda' is not supported with a Dask cluster")
    from .cuda import HostMarginStream

    return HostMarginStream()


def _cuda_status() -> dict:
    from .cuda import cuda_status

    return cuda_status().to_dict()


def build_info() -> dict:
    """How this installation was built: version, OpenMP, threads, and CUDA (``cuda``: the
    :class:`aum_score.cuda.CudaStatus` as a dict: built, usable, reason, devices, ...)."""
    return {
        "version": __version__,
        "openmp": bool(_core.has_openmp()),
        "threads": int(_core.max_threads()),
        "simd": _core.simd_level(),
        "cuda": _cuda_status(),
    }
