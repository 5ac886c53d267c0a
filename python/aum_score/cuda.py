"""The CUDA path: margins, compact records and per-sample AUM on the GPU where the logits are.

During training the logits already sit on the GPU; copying rows x C floats to the host every
step to compute one number per row wastes PCIe bandwidth and synchronises the loop. Here the
per-row reductions run on the device (``aum_score._cuda``, built when a CUDA toolkit is found),
reading device arrays of any framework through DLPack without a copy, on the caller's stream.

- :func:`cuda_status`: whether the module is built and a GPU usable (and why not).
- :func:`margins`, :func:`compact_records`: per-row results of device arrays.
- :class:`DeviceScorer`: the streaming scorer with its per-sample sums and counts on the device;
  nothing crosses to the host until :meth:`DeviceScorer.result`.
- ``aum_score.score(..., device="cuda")`` / ``aum-score LOGS --device cuda``: post-hoc scoring
  with the margins computed on the GPU (see :class:`HostMarginStream`).

:class:`~aum_score.AUMCalculator` and the recorders use the device path by themselves for CUDA
tensors. A module that is built but cannot run (no driver, a driver older than the toolkit)
makes those fall back to the CPU with one warning; explicit requests (``device="cuda"``) fail
with :class:`CudaUnavailableError`.
"""

from __future__ import annotations

import bisect
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .arrays import to_numpy
from .errors import LogFormatError

__all__ = [
    "CudaStatus",
    "CudaUnavailableError",
    "CudaUnavailableWarning",
    "DeviceScorer",
    "HostMarginStream",
    "compact_records",
    "cuda_status",
    "margins",
]

_DL_CUDA, _DL_CUDA_MANAGED = 2, 13  # DLPack device types
_MIN_COMPUTE_CAPABILITY = 75  # the oldest architecture the module carries code for


class CudaUnavailableError(LogFormatError):
    """The CUDA path was asked for (an argument that cannot be honoured here), but the module
    is not built or no GPU is usable. A LogFormatError, so the CLI reports it in one line."""


class CudaUnavailableWarning(RuntimeWarning):
    """aum_score._cuda is built but cannot run here; the CPU path is used instead."""


@dataclass(frozen=True)
class CudaStatus:
    built: bool  #: aum_score._cuda exists in this installation
    usable: bool  #: ... and a CUDA device can run it
    reason: str  #: why not, "" when usable
    devices: tuple[str, ...] = ()
    compute_capability: tuple[int, ...] = ()
    driver_version: int = 0  #: e.g. 13000 for 13.0; 0: no driver
    runtime_version: int = 0  #: the CUDA runtime linked into the module
    architectures: str = ""  #: what the module was compiled for

    def to_dict(self) -> dict:
        return asdict(self)


def _version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def cuda_status() -> CudaStatus:
    """Whether the CUDA module is built and usable here; never raises."""
    try:
        from . import _cuda
    except ImportError as exc:
        return CudaStatus(False, False, f"aum_score._cuda is not built ({exc})")
    info = _cuda.runtime_info()
    common = dict(
        devices=tuple(info["names"]),
        compute_capability=tuple(info["compute_capability"]),
        driver_version=info["driver_version"],
        runtime_version=info["runtime_version"],
        architectures=_cuda.built_architectures(),
    )
    reason = info["error"]
    if reason and info["driver_version"] == 0:
        reason = f"no CUDA driver ({reason})"
    elif reason and info["driver_version"] < info["runtime_version"]:
        reason = (
            f"the CUDA driver ({_version(info['driver_version'])}) is older than the CUDA "
            f"runtime the module was built with ({_version(info['runtime_version'])}): {reason}"
        )
    elif not reason and max(info["compute_capability"]) < _MIN_COMPUTE_CAPABILITY:
        reason = f"no GPU of compute capability 7.5 or newer ({', '.join(info['names'])})"
    return CudaStatus(True, not reason, reason, **common)


_warned = False


def _module(explicit: bool):
    """The usable _cuda module, or None (explicit requests raise instead). A module that is
    built but unusable warns once when the device path would have been taken by itself."""
    global _warned
    status = cuda_status()
    if status.usable:
        from . import _cuda

        return _cuda
    if explicit:
        raise CudaUnavailableError(f"CUDA is not usable: {status.reason}")
    if status.built and not _warned:
        _warned = True
        warnings.warn(
            f"aum_score._cuda is built but CUDA is not usable ({status.reason}); "
            "using the CPU path",
            CudaUnavailableWarning,
            stacklevel=3,
        )
    return None


def on_cuda(x: Any) -> bool:
    """Whether ``x`` is a device array in CUDA memory (DLPack's ``__dlpack_device__``)."""
    device = getattr(x, "__dlpack_device__", None)
    if device is None:
        return False
    try:
        kind, _ = device()
    except Exception:
        return False
    return int(kind) in (_DL_CUDA, _DL_CUDA_MANAGED)


def _device_id(x: Any) -> int:
    return int(x.__dlpack_device__()[1])


def current_stream(x: Any) -> int:
    """The stream the framework of ``x`` works on now, as DLPack numbers it (1: the legacy
    default stream): kernels queued there need no synchronisation with the framework."""
    module = type(x).__module__.split(".")[0]
    ptr = 0
    if module == "torch":
        import torch

        ptr = torch.cuda.current_stream(x.device).cuda_stream
    elif module == "cupy":
        import cupy

        ptr = cupy.cuda.get_current_stream().ptr
    return int(ptr) or 1


def _capsule(x: Any, stream: int) -> Any:
    """A DLPack capsule of ``x``, ready on ``stream`` (the producer waits for its own work)."""
    if isinstance(x, np.ndarray):
        return x.__dlpack__()
    try:
        return x.__dlpack__(stream=stream, max_version=(1, 0))
    except TypeError:  # producers older than DLPack 1.0
        return x.__dlpack__(stream=stream)


def _ints_like(x: Any, values: Any, what: str) -> Any:
    """``values`` as an int32/int64 device array of the framework of ``x`` (already one: kept;
    a host array or list: copied to the device)."""
    if on_cuda(values):
        return values.reshape(-1) if hasattr(values, "reshape") else values
    module = type(x).__module__.split(".")[0]
    host = to_numpy(values).reshape(-1)
    if host.dtype.kind not in "iu":
        raise LogFormatError(f"{what} must be integers, got {host.dtype}")
    host = host.astype(np.int64)
    if module == "torch":
        import torch

        return torch.as_tensor(host, device=x.device)
    if module == "cupy":
        import cupy

        with cupy.cuda.Device(_device_id(x)):
            return cupy.asarray(host)
    if module.startswith("jax"):
        import jax

        return jax.device_put(host, x.devices().pop() if hasattr(x, "devices") else None)
    raise LogFormatError(f"{what}: give them as a device array of the logits' framework")


def _error(exc: Exception) -> LogFormatError:
    return LogFormatError(str(exc))


def margins(logits: Any, labels: Any, *, out: Any = None, stream: int | None = None) -> Any:
    """Per-row margins of device logits (any DLPack producer: torch, CuPy, JAX), as the CPU
    core computes them (:func:`aum_score.margins`: float32 arithmetic for 16/32-bit logits,
    NaN for rows with NaN/inf).

    Without ``out``: a numpy array (waits for the GPU). With ``out`` (a float64 device array of
    one entry per row): written on ``stream`` (default: the framework's current stream) and
    returned without waiting; rows with a label outside [0, C) get NaN.
    """
    cuda = _module(explicit=True)
    stream = current_stream(logits) if stream is None else stream
    y = _ints_like(logits, labels, "labels")
    try:
        if out is None:
            return cuda.margins_host(_capsule(logits, stream), _capsule(y, stream), stream)
        cuda.margins(_capsule(logits, stream), _capsule(y, stream), _capsule(out, stream), stream)
        return out
    except ValueError as exc:
        raise _error(exc) from None


def compact_records(logits: Any, labels: Any, *, stream: int | None = None):
    """:class:`aum_score.compact.CompactRecords` of device logits, computed on the GPU (the
    same definitions and tie rules as :func:`aum_score.compact.compact_records`; log-sum-exp
    within float rounding). Waits for the GPU and copies four numbers per row to the host."""
    from .compact import CompactRecords

    cuda = _module(explicit=True)
    stream = current_stream(logits) if stream is None else stream
    y = _ints_like(logits, labels, "labels")
    classes = int(logits.shape[1])
    try:
        label_logit, other_logit, other_class, lse = cuda.compact_records_host(
            _capsule(logits, stream), _capsule(y, stream), stream
        )
    except ValueError as exc:
        raise _error(exc) from None
    return CompactRecords(label_logit, other_logit, other_class, lse, classes)


# ---------------------------------------------------------------------- framework integrations
_TORCH_FLOATS = {
    "torch.float16": np.float16,
    "torch.bfloat16": np.float32,
    "torch.float32": np.float32,
    "torch.float64": np.float64,
}


def calculator_placeholder(logits: Any) -> np.ndarray | None:
    """For AUMCalculator: a zero-byte numpy stand-in with the shape and dtype of CUDA torch
    logits (its checks then run unchanged, without copying the logits), or None when the CPU
    path must run (another dtype, or no usable module)."""
    dtype = _TORCH_FLOATS.get(str(logits.dtype))
    if dtype is None or logits.ndim != 2 or logits.shape[1] < 2 or _module(False) is None:
        return None
    return np.broadcast_to(np.zeros((), dtype), tuple(logits.shape))


def calculator_row_fields(logits: Any, targets: np.ndarray):
    """For AUMCalculator: (target value, other index, other value, margin) per row, as its CPU
    ``_row_fields`` gives them, with the reductions on the GPU (four numbers a row come back):
    the values are exact, and the margin is subtracted on the host in the logits' dtype."""
    import torch

    from ._cuda import compact_records_host
    from .calculator import _round_to_bfloat16

    z = logits.detach()
    stream = current_stream(z)
    y = torch.as_tensor(targets, device=z.device)
    target_val, other_val, other, _ = compact_records_host(
        _capsule(z, stream), _capsule(y, stream), stream
    )
    if z.dtype == torch.float16:  # exact: they are float16 values
        target_val, other_val = target_val.astype(np.float16), other_val.astype(np.float16)
    margin = target_val - other_val
    if z.dtype == torch.bfloat16:
        margin = _round_to_bfloat16(margin)
    return target_val, other.astype(np.int64), other_val, margin


class PendingRecords:
    """Compact records being computed and copied on the GPU; :meth:`wait` gives them."""

    def __init__(self, host: list, event: Any, classes: int) -> None:
        self._host, self._event, self._classes = host, event, classes

    def wait(self):
        from .compact import CompactRecords

        self._event.synchronize()
        a, b, c, d = (t.numpy() for t in self._host)
        return CompactRecords(a, b, c, d, self._classes)


def compact_records_async(logits: Any, labels: Any) -> PendingRecords | None:
    """For recorders of compact logs: records of CUDA torch logits computed on the device and
    copied to pinned host memory without blocking the training step; None when the CPU path
    must run (not CUDA torch logits, or no usable module)."""
    if type(logits).__module__.split(".")[0] != "torch" or not on_cuda(logits):
        return None
    import torch

    z = logits.detach()
    if z.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return None
    if z.ndim != 2 or z.shape[1] < 2:
        return None
    cuda = _module(explicit=False)
    if cuda is None:
        return None
    y = torch.as_tensor(labels, device=z.device).reshape(-1)
    if y.dtype not in (torch.int32, torch.int64) or len(y) != z.shape[0]:
        return None
    value = torch.float64 if z.dtype == torch.float64 else torch.float32
    n = z.shape[0]
    outs = [
        torch.empty(n, dtype=value, device=z.device),
        torch.empty(n, dtype=value, device=z.device),
        torch.empty(n, dtype=torch.int32, device=z.device),
        torch.empty(n, dtype=value, device=z.device),
    ]
    stream = current_stream(z)
    cuda.compact_records(
        _capsule(z, stream), _capsule(y, stream), *(_capsule(t, stream) for t in outs), stream
    )
    host = [t.to("cpu", non_blocking=True) for t in outs]  # pinned destinations
    event = torch.cuda.Event()
    event.record()
    return PendingRecords(host, event, int(z.shape[1]))


# ---------------------------------------------------------------------- post-hoc scoring
class HostMarginStream:
    """Margins of host batches (a log read from disk) on the GPU, for
    ``score(..., device="cuda")``: each batch goes through two pinned host buffers in chunks,
    so that the copy of one chunk to the device overlaps the kernel of the previous one; only
    the margins (8 bytes a row) come back. The margins are those of the CPU core, bit for bit,
    and go into the same accumulator, so the results are identical to the CPU path's."""

    def __init__(self, device: int = 0, chunk_bytes: int = 32 << 20) -> None:
        cuda = _module(explicit=True)
        self._stream = cuda.HostMargins(device)
        self.chunk_bytes = chunk_bytes
        self.rows = 0

    def __call__(self, logits: np.ndarray, labels: np.ndarray, bfloat16: bool) -> np.ndarray | None:
        """float64 margins, or None when a row's label must first be resolved or is bad (the
        CPU path then takes the batch and reports the row)."""
        n, classes = logits.shape
        if n == 0:
            return np.empty(0)
        if labels.min() < 0 or labels.max() >= classes:
            return None
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        step = max(1, self.chunk_bytes // max(1, logits.itemsize * classes))
        out = np.empty(n)
        pending = None
        for i, start in enumerate(range(0, n, step)):
            stop = min(n, start + step)
            self._stream.submit(i % 2, logits[start:stop], labels[start:stop], bfloat16)
            if pending is not None:
                self._collect(out, *pending)
            pending = (i % 2, start, stop)
        self._collect(out, *pending)
        self.rows += n
        return out

    def _collect(self, out: np.ndarray, slot: int, start: int, stop: int) -> None:
        margins, bad = self._stream.wait(slot, stop - start)
        out[start:stop] = margins  # labels were checked, so `bad` is None


# ---------------------------------------------------------------------- the device scorer
@dataclass
class _DeviceSnapshot:
    """A downloaded DeviceState with the accumulator methods build_result reads."""

    classes: int
    labels: np.ndarray
    sums: np.ndarray
    counts: np.ndarray
    tallies: np.ndarray
    rows_added: int
    rows_skipped: int
    string_ids: bool = field(default=False)

    def arrays(self):
        from . import _core

        keys = np.flatnonzero((self.counts > 0) | (self.labels >= 0)).astype(np.int64)
        labels = self.labels[keys].astype(np.int64)
        labels[labels < 0] = _core.NO_LABEL
        return keys, labels, self.sums[keys], self.counts[keys]

    def epoch_tallies(self) -> dict:
        t = self.tallies
        epochs = np.flatnonzero(t[:, 0] > 0) if len(t) else np.zeros(0, np.int64)
        t = t[epochs]
        return {
            "epoch": epochs.astype(np.int64),
            "rows": t[:, 0].astype(np.int64),
            "margin_sum": t[:, 1],
            "tallied_rows": t[:, 2].astype(np.int64),
            "tallied_fitted": t[:, 3].astype(np.int64),
            "tallied_margin_sum": t[:, 4],
        }


class DeviceScorer:
    """:class:`aum_score.Scorer` with its state on the GPU: per-sample float64 sums and counts,
    labels and per-epoch tallies live on the device, and each :meth:`update` queues one kernel
    on the caller's stream (one pass over the logits) without waiting for it.

    Sample ids must be non-negative integers (dataset indices) on the device or the host.
    Give ``num_samples`` (ids are then in [0, num_samples)) to avoid one small synchronisation
    per update that growing the state needs otherwise. Errors found on the device (a label
    outside [0, C), a label that changes, NaN/inf logits with ``nonfinite="error"``) are
    reported by :meth:`result`, naming the batch and row; such rows are not added.

    Sums of a sample that appears twice in one batch are added in an unspecified order
    (float64 atomics); across batches the order is the batches' order.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        num_samples: int | None = None,
        threshold_class: int | None = None,
        percentile: float = 99.0,
        nonfinite: str = "error",
        allow_label_changes: bool = False,
        bootstrap: int = 1000,
    ) -> None:
        from .run_inputs import check_options

        check_options(threshold_class, num_classes, percentile, nonfinite)
        self.num_classes = int(num_classes)
        self.num_samples = num_samples
        self.threshold_class = threshold_class
        self.percentile = percentile
        self.nonfinite = nonfinite
        self.allow_label_changes = allow_label_changes
        self.bootstrap = bootstrap
        self.epoch = 0
        self._state = None
        self._rows = 0
        self._batch_starts: list[int] = []
        self._pending_labels: tuple[np.ndarray, np.ndarray] | None = None

    def _ensure(self, logits: Any, stream: int):
        if self._state is None:
            cuda = _module(explicit=True)
            self._state = cuda.DeviceState(self.num_classes, _device_id(logits))
            if self.num_samples is not None:
                self._state.reserve(int(self.num_samples), stream)
            if self._pending_labels is not None:
                ids, labels = self._pending_labels
                self._state.reserve(int(ids.max()) + 1 if len(ids) else 0, stream)
                self._state.set_labels(ids, labels, stream)
                self._pending_labels = None
        return self._state

    def update(
        self,
        logits: Any,
        labels: Any,
        sample_ids: Any,
        epoch: int | None = None,
        stream: int | None = None,
    ) -> None:
        """Queue one batch: device ``logits`` (rows x C), ``labels`` (rows, or None to use the
        labels given to :meth:`set_labels`), ``sample_ids`` (rows); ``stream`` defaults to the
        framework's current stream."""
        if not on_cuda(logits):
            raise LogFormatError("DeviceScorer.update needs logits in CUDA memory")
        shape = tuple(logits.shape)
        if len(shape) != 2:
            raise LogFormatError(f"logits must be 2-D (rows x classes), got shape {shape}")
        stream = current_stream(logits) if stream is None else stream
        state = self._ensure(logits, stream)
        ids = _ints_like(logits, sample_ids, "sample ids")
        y = None if labels is None else _ints_like(logits, labels, "labels")
        if self.num_samples is None and shape[0]:
            state.reserve(state.max_id(_capsule(ids, stream), stream) + 1, stream)
        try:
            state.add(
                _capsule(logits, stream),
                None if y is None else _capsule(y, stream),
                _capsule(ids, stream),
                self.epoch if epoch is None else int(epoch),
                _NO_TALLY if self.threshold_class is None else self.threshold_class,
                self.allow_label_changes,
                self._rows,
                stream,
            )
        except ValueError as exc:
            raise _error(exc) from None
        self._batch_starts.append(self._rows)
        self._rows += shape[0]

    def set_labels(self, sample_ids: Any, labels: Any) -> None:
        """Known labels for samples whose rows come without one (host or device arrays)."""
        ids = to_numpy(sample_ids).reshape(-1).astype(np.int64)
        y = to_numpy(labels).reshape(-1).astype(np.int64)
        if self._state is None:
            self._pending_labels = (ids, y)
            return
        self._state.reserve(int(ids.max()) + 1 if len(ids) else 0, 1)
        self._state.set_labels(ids, y, 1)

    def end_epoch(self) -> None:
        self.epoch += 1

    def _where(self, row: int) -> str:
        batch = bisect.bisect_right(self._batch_starts, row) - 1
        return f"batch {batch}: row {row - self._batch_starts[batch]}"

    def snapshot(self, stream: int = 1) -> _DeviceSnapshot:
        """The state on the host (waits for the GPU); raises the first error found."""
        if self._state is None:
            raise LogFormatError("no rows were added")
        d = self._state.download(stream)
        checks = [
            ("first_bad_id_row", "sample id is negative or not below num_samples"),
            ("first_bad_label_row", f"label is outside [0, {self.num_classes})"),
            ("first_unlabeled_row", "the sample has no label (give labels or set_labels)"),
            ("first_conflict_row", "the label differs from the sample's earlier label"),
        ]
        if self.nonfinite == "error":
            checks.append(("first_nonfinite_row", "NaN or infinite logits; use nonfinite='skip'"))
        found = [(d[key], what) for key, what in checks if d[key] is not None]
        if found:
            row, what = min(found)
            raise LogFormatError(f"{self._where(row)}: {what}")
        return _DeviceSnapshot(
            self.num_classes,
            d["labels"],
            d["sums"],
            d["counts"],
            d["tallies"],
            int(d["rows_added"]),
            int(d["rows_skipped"]),
        )

    def result(self):
        """The result so far, as :meth:`aum_score.Scorer.result` gives it (waits for the GPU)."""
        from .results import build_result

        return build_result(self.snapshot(), self.threshold_class, self.percentile, self.bootstrap)


_NO_TALLY = -(2**63)  # no class is tallied (the core's NO_LABEL)
