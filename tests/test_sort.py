"""The result order's radix sort against numpy's stable argsort."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aum_score import _core

finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 300), elements=finite_or_not))
def test_stable_argsort_equals_numpy(values):
    np.testing.assert_array_equal(_core.stable_argsort(values), np.argsort(values, kind="stable"))


def test_stable_argsort_ties_signed_zero_and_large_input(rng):
    values = np.array([0.0, -0.0, np.nan, -np.inf, np.inf, 1.0, -1.0, -np.nan, 0.0, -0.0])
    np.testing.assert_array_equal(_core.stable_argsort(values), np.argsort(values, kind="stable"))


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_stable_argsort_on_threads(threads, rng):
    """Big enough to be sorted in per-thread chunks: many ties (stability across chunks), NaN,
    signed zeros, and values whose high digits are all the same (skipped passes)."""
    big = np.round(rng.standard_normal(200_000), 2)
    big[rng.integers(0, len(big), 500)] = np.nan
    big[rng.integers(0, len(big), 500)] = -0.0
    expected = np.argsort(big, kind="stable")
    np.testing.assert_array_equal(_core.stable_argsort(big, threads), expected)
    narrow = 1.0 + rng.integers(0, 1000, 100_003) * 2.0**-40
    np.testing.assert_array_equal(
        _core.stable_argsort(narrow, threads), np.argsort(narrow, kind="stable")
    )


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n", [0, 5, 100_003])
def test_take_equals_numpy(threads, n, rng):
    """The result's columns put in its order: values[order] for int64 and float64 values, on
    threads for a large table (and an order with repeats and one shorter than the values)."""
    order = rng.permutation(n)
    if n:
        order = np.concatenate([order, order[: n // 3]])
    floats, ints = rng.standard_normal(n), rng.integers(-(2**62), 2**62, n)
    for values in (floats, ints):
        taken = _core.take(values, order, threads)
        assert taken.dtype == values.dtype
        np.testing.assert_array_equal(taken, values[order])
    np.testing.assert_array_equal(
        _core.take(floats, order[: n // 2], threads), floats[order[: n // 2]]
    )


def test_take_refuses_bad_input():
    with pytest.raises(IndexError):
        _core.take(np.arange(5.0), np.array([0, 5]))
    with pytest.raises(IndexError):
        _core.take(np.arange(5.0), np.array([-1]))
    with pytest.raises(ValueError, match="int64 or float64"):
        _core.take(np.arange(5, dtype=np.int32), np.array([0]))
