"""Array-likes from any framework -> numpy, without importing the framework; numpy <-> Arrow
without importing pandas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def to_numpy(x: Any) -> np.ndarray:
    """Turn a numpy/torch/tf/jax/list array-like into a numpy array without importing frameworks."""
    if hasattr(x, "detach") and hasattr(
        x, "numpy"
    ):  # torch.Tensor (any device, maybe requiring grad)
        x = x.detach()
        if hasattr(x, "cpu"):
            x = x.cpu()
        try:
            return x.numpy()
        except TypeError:  # bfloat16 and other dtypes numpy cannot hold
            return x.float().numpy()
    if isinstance(x, (pa.Array, pa.ChunkedArray)):
        return x.to_numpy(zero_copy_only=False)
    return np.asarray(x)  # tf EagerTensor, jax Array, pandas, lists all implement __array__


# Not ``to_numpy``, ``pa.array`` or ``pa.scalar``: the first of any of them in a process imports
# pandas if it is installed (pyarrow checks for pandas objects), a quarter of a second of every
# ``aum-score`` run. The two below read and write the buffers instead.
_ARROW_TYPES = {
    np.dtype(np.int64): pa.int64(),
    np.dtype(np.int32): pa.int32(),
    np.dtype(np.float64): pa.float64(),
    np.dtype(np.float32): pa.float32(),
}


def arrow_array(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """An Arrow array of a 1-D numpy array (int32/64, float32/64, bool; ``mask`` True: null),
    built from its buffers."""
    values = np.ascontiguousarray(values)
    n = len(values)
    validity = None
    nulls = 0
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, bool), (n,))
        nulls = int(mask.sum())
        if nulls:
            validity = pa.py_buffer(np.packbits(~mask, bitorder="little"))
    if values.dtype == np.bool_:
        data = pa.py_buffer(np.packbits(values, bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), n, [validity, data], null_count=nulls)
    arrow_type = _ARROW_TYPES.get(values.dtype)
    if arrow_type is None:
        raise TypeError(f"arrow_array: no Arrow type for numpy {values.dtype}")
    return pa.Array.from_buffers(arrow_type, n, [validity, pa.py_buffer(values)], null_count=nulls)


_NUMPY_TYPES = {
    pa.float16(): np.float16,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
    pa.uint16(): np.uint16,  # also bfloat16 bit patterns
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
}


def numpy_of(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """numpy of a primitive (integer or floating) Arrow array: a zero-copy view of one chunk
    without nulls; floating nulls become NaN. Other types (and integer nulls) take
    ``to_numpy``."""
    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            return numpy_of(values.chunk(0))
        dtype = _NUMPY_TYPES.get(values.type)
        if values.num_chunks == 0 and dtype is not None:
            return np.empty(0, dtype)
        return np.concatenate([numpy_of(chunk) for chunk in values.chunks])
    dtype = _NUMPY_TYPES.get(values.type)
    floating = pa.types.is_floating(values.type)
    if dtype is None or (values.null_count and not floating):
        return values.to_numpy(zero_copy_only=False)
    dtype = np.dtype(dtype)
    if len(values) == 0:  # an empty array may have no data buffer
        return np.empty(0, dtype)
    out = np.frombuffer(
        values.buffers()[1], dtype=dtype, count=len(values), offset=values.offset * dtype.itemsize
    )
    if values.null_count:
        bits = np.frombuffer(values.buffers()[0], np.uint8)
        valid = np.unpackbits(bits, bitorder="little", count=values.offset + len(values))
        out = np.where(valid[values.offset :].astype(bool), out, np.nan)
    return out
