"""Hypothesis properties: margins equal numpy, Scorer equals the reference, batching is moot."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import Rows, assert_matches_reference, reference_abs_scale, reference_margins

import aum_score

DTYPES = [np.float16, np.float32, np.float64]
# Bounds keep z[y] - z[j] finite in the working precision (float16 is widened, so never overflows).
BOUND = {np.float16: 65504.0, np.float32: float(np.float32(1e38)), np.float64: 1e307}

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


@st.composite
def small_exact_logits(draw):
    """Small arrays of arbitrary finite floats (subnormals, signed zeros, huge values, ties)."""
    dtype = draw(st.sampled_from(DTYPES))
    C = draw(st.integers(2, 8))
    n = draw(st.integers(0, 20))
    width = {np.float16: 16, np.float32: 32, np.float64: 64}[dtype]
    b = BOUND[dtype]
    elements = st.floats(-b, b, allow_nan=False, allow_infinity=False, width=width)
    z = draw(hnp.arrays(dtype, (n, C), elements=elements))
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, C - 1)))
    return z, y


@given(small_exact_logits())
@settings(max_examples=300, **SETTINGS)
def test_margins_equal_numpy_on_arbitrary_floats(data):
    z, y = data
    m = aum_score.margins(z, y)
    ref = reference_margins(z, y)
    assert m.dtype == np.float64 and m.shape == ref.shape
    # Equal values are bitwise equal apart from the sign of zero, which carries no meaning here.
    assert np.array_equal(m, ref), (z, y, m, ref)


@st.composite
def logs(draw):
    """A stream of batches: dtype, C in [2, 50], 0..300 rows, repeated ids, empty batches."""
    dtype = draw(st.sampled_from(DTYPES))
    C = draw(st.integers(2, 50))
    n = draw(st.integers(0, 300))
    n_ids = draw(st.integers(1, 60))
    id_kind = draw(st.sampled_from(["int", "str"]))
    scale = draw(st.sampled_from([1e-3, 1.0, 50.0, 1e4]))
    integer_logits = draw(st.booleans())  # integer-valued logits: many exact ties (margin 0)
    seed = draw(st.integers(0, 2**32 - 1))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=8)))  # equal cuts give empty batches

    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, scale, size=(n, C))
    if integer_logits:
        z = np.round(z / max(scale, 1.0) * 3)
    if dtype == np.float16:
        z = np.clip(z, -60000, 60000)
    z = z.astype(dtype)
    if id_kind == "int":
        pool = np.unique(
            rng.integers(-(2**63), 2**63 - 1, size=n_ids, dtype=np.int64, endpoint=True)
        )
    else:
        pool = np.array(sorted({f"s{v}" for v in rng.integers(0, 10**6, size=n_ids)}), dtype=object)
    pool_labels = rng.integers(0, C, size=pool.size)
    pick = rng.integers(0, pool.size, size=n)
    ids = pool[pick]
    labels = pool_labels[pick].astype(np.int64)
    bounds = [0, *cuts, n]
    batches = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    return C, Rows(ids, z, labels), batches


def run_scorer(C, rows: Rows, batches, **kw):
    sc = aum_score.Scorer(C, **kw)
    for a, b in batches:
        sc.update(rows.logits[a:b], rows.labels[a:b], rows.sample_ids[a:b])
    return sc.result()


@given(logs())
@settings(max_examples=300, **SETTINGS)
def test_scorer_equals_reference(case):
    C, rows, batches = case
    res = run_scorer(C, rows, batches)
    assert_matches_reference(res.table, rows, rtol=1e-12)
    assert res.summary.rows == len(rows)
    assert res.summary.samples == len(set(rows.sample_ids.tolist()))
    m = aum_score.margins(rows.logits, rows.labels)
    assert np.array_equal(m, reference_margins(rows.logits, rows.labels))


@given(logs(), st.data())
@settings(max_examples=200, **SETTINGS)
def test_batching_does_not_change_result(case, data):
    C, rows, batches = case
    n = len(rows)
    other_cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=12)))
    bounds = [0, *other_cuts, n]
    other = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    a = run_scorer(C, rows, batches).table.to_pydict()
    b = run_scorer(C, rows, other).table.to_pydict()
    da = {s: i for i, s in enumerate(a["sample_id"])}
    db = {s: i for i, s in enumerate(b["sample_id"])}
    assert set(da) == set(db)
    scale = reference_abs_scale(rows.sample_ids, rows.logits, rows.labels)
    for s, i in da.items():
        j = db[s]
        assert a["count"][i] == b["count"][j]
        assert a["label"][i] == b["label"][j]
        assert abs(a["aum"][i] - b["aum"][j]) <= 1e-12 * scale[s]


@given(logs(), st.integers(0, 2**32 - 1))
@settings(max_examples=200, **SETTINGS)
def test_label_changes_follow_each_row(case, seed):
    C, rows, batches = case
    # Per-row random labels: with allow_label_changes every margin uses its own row's label.
    rows.labels[:] = np.random.default_rng(seed).integers(0, C, size=len(rows))
    res = run_scorer(C, rows, batches, allow_label_changes=True)
    assert_matches_reference(res.table, rows, rtol=1e-12, check_label=False)


def test_property_generator_covers_empty_batches_and_repeats():
    # The strategies above claim empty batches and repeated ids; check they can produce them.
    seen = {"empty": False, "repeat": False, "no_rows": False}

    @given(logs())
    @settings(max_examples=200, deadline=None, database=None)
    def probe(case):
        _C, rows, batches = case
        seen["empty"] |= any(b == a for a, b in batches) and len(rows) > 0
        seen["repeat"] |= len(set(rows.sample_ids.tolist())) < len(rows)
        seen["no_rows"] |= len(rows) == 0

    probe()
    assert all(seen.values()), seen


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_empty_batches_are_harmless(dtype):
    sc = aum_score.Scorer(3)
    empty = np.zeros((0, 3), dtype)
    sc.update(empty, np.zeros(0, np.int64), np.zeros(0, np.int64))
    z = np.array([[1, 2, 3]], dtype)
    sc.update(z, np.array([2]), np.array([9]))
    sc.update(empty, np.zeros(0, np.int64), np.zeros(0, np.int64))
    t = sc.result().table.to_pydict()
    assert t["sample_id"] == [9] and t["aum"] == [1.0] and t["count"] == [1]
