"""Array-likes from any framework -> numpy, without importing the framework."""

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
