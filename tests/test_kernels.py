"""Every optimised path of the core against plain numpy: SIMD levels, dtypes (bfloat16 too),
small and large C around the vector widths, strided rows, thread counts, batch boundaries,
direct (dense ids) and hashed (sparse ids) sample storage and the switch between them, string
ids, all-or-nothing adds, and the benchmark floors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from reference import reference_margins

import aum_score
from aum_score import _core

LEVELS = _core.simd_levels()
WIDTHS = [2, 3, 7, 8, 9, 10, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257]
NO_LABEL = _core.NO_LABEL


@pytest.fixture(params=LEVELS)
def level(request):
    """Run the test with the margin kernels of one instruction set, then restore the best."""
    _core.set_simd_level(request.param)
    yield request.param
    _core.set_simd_level(LEVELS[-1])


def bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, round to nearest even (NaN stays NaN)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), bits)


def bfloat16_values(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def logits(rng, rows, classes, dtype):
    z = rng.standard_normal((rows, classes)).astype(np.float32) * 4
    z[::7] = np.round(z[::7])  # ties between the label and the max of the others
    z[1::11, 0] = 0.0
    z[2::11, -1] = -0.0
    return z.astype(dtype) if dtype != "bfloat16" else bfloat16_bits(z)


def margins(z, y, dtype, threads=0):
    if dtype == "bfloat16":
        return _core.margins(z, y, threads, True)
    return _core.margins(z, y, threads)


def expected(z, y, dtype):
    return reference_margins(bfloat16_values(z) if dtype == "bfloat16" else z, y)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16"])
def test_margins_every_width(level, dtype, rng):
    for classes in WIDTHS:
        z = logits(rng, 64, classes, dtype)
        y = rng.integers(0, classes, 64)
        y[:2] = [0, classes - 1]  # label at either end: one of the two ranges is empty
        np.testing.assert_array_equal(margins(z, y, dtype), expected(z, y, dtype), str(classes))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16"])
def test_nonfinite_rows_anywhere(level, dtype, rng):
    bad_values = [np.nan, np.inf, -np.inf]
    for classes in WIDTHS:
        rows = 3 * classes
        z = logits(rng, rows, classes, "float32")
        y = rng.integers(0, classes, rows)
        for r in range(0, rows, 3):  # one bad value per third row, in every column in turn
            z[r, r // 3 % classes] = bad_values[r % 3]
        z[1, y[1]] = np.nan  # in the label's own column
        zz = bfloat16_bits(z) if dtype == "bfloat16" else z.astype(dtype)
        got = margins(zz, y, dtype)
        bad = np.zeros(rows, bool)
        bad[::3] = bad[1] = True
        assert np.isnan(got[bad]).all(), classes
        np.testing.assert_array_equal(got[~bad], expected(zz, y, dtype)[~bad])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16"])
def test_extreme_values(level, dtype):
    if dtype == "float16":
        big, tiny = 65504.0, 6e-8  # largest finite, a subnormal
    elif dtype == "bfloat16":
        big, tiny = 3.3895314e38, 1e-40
    else:
        big, tiny = float(np.finfo(dtype).max), float(np.finfo(dtype).smallest_subnormal)
    z = np.array(
        [[big, -big, 0.0], [-big, -big, -big], [tiny, -tiny, 0.0], [-0.0, 0.0, -tiny]],
        dtype=np.float32 if dtype == "bfloat16" else dtype,
    )
    zz = bfloat16_bits(z) if dtype == "bfloat16" else z
    y = np.array([1, 0, 2, 0])
    got = margins(zz, y, dtype)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, expected(zz, y, dtype))
    if dtype != "float16":  # -big - big overflows to -inf (float16 is widened to float32 first)
        assert got[0] == -np.inf


def test_strided_rows(level, rng):
    # Framework tensors and Arrow slices: rows further apart than C, read in place.
    base = rng.standard_normal((300, 40)).astype(np.float32)
    for classes in (5, 16, 33):
        z = base[:, 3 : 3 + classes]
        y = rng.integers(0, classes, 300)
        np.testing.assert_array_equal(_core.margins(z, y), reference_margins(z, y))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_short_rows_ignore_their_neighbours(level, dtype, rng):
    # Short rows may be loaded whole, reading into the next row (or the padding of a strided
    # block): what lies there (NaN, inf, values larger than the row's) must change nothing.
    rows = 40
    for classes in [*range(2, 18), 31, 33, 64, 100, 129]:
        z = logits(rng, rows, classes, dtype)
        z[1::2] += 1e6  # every other row wins any max taken across rows
        z[3::4, 0] = np.nan  # and every fourth is a NaN row
        y = rng.integers(0, classes, rows)
        got = _core.margins(z, y)
        bad = np.zeros(rows, dtype=bool)
        bad[3::4] = True
        assert np.isnan(got[bad]).all(), classes
        np.testing.assert_array_equal(got[~bad], expected(z, y, dtype)[~bad], str(classes))
        padded = np.full((rows, classes + 3), np.inf, dtype=dtype)
        padded[:, classes + 1] = np.nan
        padded[:, :classes] = logits(rng, rows, classes, dtype)
        strided = padded[:, :classes]
        np.testing.assert_array_equal(
            _core.margins(strided, y), expected(np.ascontiguousarray(strided), y, dtype), str(classes)
        )


GUARDED = """
import ctypes, mmap, sys
import numpy as np
from aum_score import _core
# The block ends where an inaccessible page starts: a read past its last value faults.
libc = ctypes.CDLL(None)
page = mmap.PAGESIZE
size = 4 * page  # accessible, then one page that is not
buf = mmap.mmap(-1, size + page)
base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
assert libc.mprotect(ctypes.c_void_p(base + size), page, 0) == 0
rng = np.random.default_rng(0)
for dtype in ("float16", "float32", "float64", "uint16"):
    _core.set_simd_level(sys.argv[1])
    item = np.dtype(dtype).itemsize
    for classes in [*range(2, 34), 63, 64, 65, 127, 128, 129, 255, 256, 257]:
        rows = 3
        n = rows * classes
        z = np.frombuffer(buf, dtype=dtype, count=n, offset=size - n * item).reshape(rows, classes)
        z[...] = rng.integers(0, 100, z.shape).astype(dtype)
        y = np.full(rows, classes - 1)
        _core.margins(z, y, 1, dtype == "uint16")
print("ok")
"""


@pytest.mark.parametrize("simd", LEVELS)
def test_short_rows_never_read_past_the_block(simd):
    # In a subprocess: an out-of-bounds read would kill it with SIGSEGV.
    out = subprocess.run([sys.executable, "-c", GUARDED, simd], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("classes", [10, 1000])
def test_threads_agree(classes, rng):
    rows = 200_000 // classes * 2  # big enough for the parallel path
    z = rng.standard_normal((rows, classes)).astype(np.float32)
    y = rng.integers(0, classes, rows)
    z[rows // 2 + 1, 3] = np.nan  # a bad row in the second thread's half
    one = _core.margins(z, y, 1)
    for threads in (2, 3):
        np.testing.assert_array_equal(_core.margins(z, y, threads), one)


def test_simd_level_from_environment():
    code = "from aum_score import _core; print(_core.simd_level())"
    env = dict(os.environ, AUM_SCORE_SIMD="portable")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "portable"
    env["AUM_SCORE_SIMD"] = "no-such-level"  # ignored, never an import error
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == LEVELS[-1]


def test_set_simd_level_clamps():
    assert _core.set_simd_level("portable") == "portable"
    assert _core.set_simd_level("avx512") == LEVELS[-1]  # at most what the CPU has
    with pytest.raises(ValueError):
        _core.set_simd_level("sse9")
    assert _core.simd_level() == LEVELS[-1]


# --- the accumulator --------------------------------------------------------------------------


def reference_state(ids, margins_, labels):
    """id -> (label, sum in row order, count)."""
    out = {}
    for i, m, y in zip(ids.tolist(), margins_.tolist(), labels.tolist()):
        label, s, c = out.get(i, (y, 0.0, 0))
        out[i] = (label, s + m, c + 1)
    return out


def state_of(acc):
    keys, labels, sums, counts = acc.arrays()
    if acc.string_ids:
        keys = acc.strings_of(keys)
    else:
        keys = keys.tolist()
    return {k: (int(y), float(s), int(c)) for k, y, s, c in zip(keys, labels, sums, counts)}


def id_sets(rng, n):
    return {
        "dense": rng.permutation(n).astype(np.int64),
        "sparse": rng.choice(
            np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1, 0], np.int64),
            4,
            replace=False,
        ).tolist()
        + rng.integers(-(2**62), 2**62, n - 4).tolist(),
        "offset": rng.permutation(n).astype(np.int64) + 5_000_000_000,
        "string": [f"s{i}-{'é' * (i % 3)}{'x' * (i % 60)}" for i in rng.permutation(n)],
    }


def keys_of(acc, ids):
    """The core's keys for these ids (string ids interned)."""
    if not acc.string_ids:
        return np.asarray(ids, dtype=np.int64)
    arr = pa.array(list(ids), pa.string())
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[: len(ids) + 1]
    return acc.intern(offsets, np.frombuffer(arr.buffers()[2], np.uint8))


def add_rows(acc, z, y, ids, batches, threads=0, **options):
    bounds = np.unique(np.r_[0, len(y), np.asarray(batches, dtype=np.int64)]).astype(int)
    bounds = bounds[bounds <= len(y)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        if acc.string_ids:
            arr = pa.array(list(ids[a:b]), pa.string())
            offsets = np.frombuffer(arr.buffers()[1], np.int32)[: b - a + 1]
            data = np.frombuffer(arr.buffers()[2], np.uint8)
            keys = acc.intern(offsets, data)
        else:
            keys = np.asarray(ids[a:b], dtype=np.int64)
        acc.add(z[a:b], y[a:b], keys, threads=threads, **options)


@pytest.mark.parametrize("expect", [0, 5000])
@pytest.mark.parametrize("hash_mask", [2**64 - 1, 0xF000_0000_0000_0003, 0])
def test_string_ids_that_differ_in_one_byte_anywhere_get_their_own_codes(expect, hash_mask, rng):
    """Ids of every length around what an index entry holds whole (20 bytes) or in part (12),
    each differing from another in one byte at any position: codes in order of first
    appearance, the same for every later batch (lookups), with or without the table sized up
    front. Weakened hashes make ids collide (same home, same tag), so that every byte compare
    decides."""
    ids = []
    for length in range(0, 46):
        base = "a" * length
        ids.append(base)
        ids += [base[:p] + "b" + base[p + 1 :] for p in range(length)]
        ids += [base[:p] + "é" + base[p + 1 :] for p in range(0, length, 7)]
    ids = list(dict.fromkeys(ids))
    acc = _core.Accumulator(3, True)
    acc._weaken_string_hash(hash_mask)
    acc.expect_samples(expect)
    first_seen = {}
    for batch in range(4):
        order = [ids[i] for i in rng.permutation(len(ids))][: len(ids) - 100 * (batch == 0)]
        arr = pa.array(order, pa.string())
        offsets = np.frombuffer(arr.buffers()[1], np.int32)[: len(order) + 1]
        data = np.frombuffer(arr.buffers()[2], np.uint8)
        codes = acc.intern(offsets, data)
        for s in order:
            first_seen.setdefault(s, len(first_seen))
        assert codes.tolist() == [first_seen[s] for s in order]
    assert acc.strings_of(np.arange(len(ids))) == list(first_seen)


def string_buffers_of(ids):
    arr = pa.array(ids, pa.string())
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[: len(ids) + 1].copy()
    return offsets, np.frombuffer(arr.buffers()[2], np.uint8)


@pytest.mark.parametrize("hash_mask", [2**64 - 1, 0xFFFF_FFFF])
def test_string_lookups_on_threads_match_one_thread(hash_mask, rng):
    """Batches big enough to be interned on several threads (known ids looked up in parallel,
    in their home line, the next, or beyond their window: 3% of them at the table's load; short
    and long ids),
    mixing known and new ids: codes in order of first appearance whatever the thread count.
    The second mask leaves every entry the same tag, so only the byte compares tell ids apart."""
    # Short ids (held whole in their entry) and long ones (their first bytes, then the rest).
    ids = [
        f"id_{i:06d}_{h:x}" + ("/long/path/to/an/image/file" * (i % 3)) + f"_{i}"
        for i, h in enumerate(rng.integers(0, 1 << 30, 60_000))
    ]
    batches = [rng.permutation(40_000), rng.permutation(60_000), rng.permutation(60_000)]
    results = []
    for threads in (1, 2, 3):
        acc = _core.Accumulator(3, True)
        acc._weaken_string_hash(hash_mask)
        first_seen, codes = {}, []
        for batch in batches:
            order = [ids[i] for i in batch]
            codes.append(acc.intern(*string_buffers_of(order), threads=threads).tolist())
            for s in order:
                first_seen.setdefault(s, len(first_seen))
            assert codes[-1] == [first_seen[s] for s in order]
        results.append(codes)
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_string_buffers_on_threads(threads, rng):
    """The string ids of codes in any order, as Arrow buffers, copied out on threads: the same
    strings, back to back."""
    ids = [f"s{i}" + "x" * (i % 40) for i in range(70_000)]
    acc = _core.Accumulator(3, True)
    acc.intern(*string_buffers_of(ids))
    codes = rng.permutation(len(ids))
    offsets, data = acc.string_buffers(codes, threads)
    got = pa.StringArray.from_buffers(len(codes), pa.py_buffer(offsets), pa.py_buffer(data))
    assert got.to_pylist() == [ids[c] for c in codes]
    with pytest.raises(IndexError):
        acc.string_buffers(np.array([len(ids)]), threads)


def byte_buffers_of(ids):
    """Arrow-layout offsets and data for byte strings (which may not be UTF-8)."""
    offsets = np.cumsum([0] + [len(b) for b in ids]).astype(np.int32)
    return offsets, np.frombuffer(b"".join(ids), np.uint8)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_new_string_ids_that_are_not_utf8_name_the_first_and_add_nothing(threads, rng):
    """New ids are checked on the threads before any is added (a range of ASCII bytes at once,
    else each string not found): the error names the first bad row in row order, whichever
    thread has it, and the table is as before. Multi-byte UTF-8 ids, and known ids, pass."""
    n = 50_000
    valid = [f"id_{i}_{'é' * (i % 3)}".encode() for i in range(n)]
    acc = _core.Accumulator(3, True)
    acc.intern(*byte_buffers_of(valid[:20_000]), threads=threads)  # known from now on
    # invalid bytes, a cut sequence, a surrogate, an overlong form
    bad = [b"\xff\xfe", b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf"]
    for rows in ([45_000, 30_000], [20_001], [49_999, 49_998]):
        batch = list(valid)
        for k, r in enumerate(rows):
            batch[r] = bad[k % len(bad)]
        with pytest.raises(ValueError, match="not valid UTF-8") as info:
            acc.intern(*byte_buffers_of(batch), threads=threads)
        assert info.value.args[1] == min(rows)
    # Nothing of the failed batches was added: the new ids, in another order now, get codes
    # in this order.
    again = valid[:20_000] + valid[20_000:][::-1]
    assert acc.intern(*byte_buffers_of(again), threads=threads).tolist() == list(range(n))
    ascii_only = [f"a{i}".encode() for i in range(n)]
    ascii_only[33_333] = b"a\x80"
    with pytest.raises(ValueError) as info:
        acc.intern(*byte_buffers_of(ascii_only), threads=threads)
    assert info.value.args[1] == 33_333


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_corrupt_string_offsets_name_the_first_bad_row(threads):
    """Offsets are checked before any string is read, each thread its own rows: the error names
    the first bad row of the batch, wherever the threads split it."""
    offsets, data = string_buffers_of([f"s{i}" for i in range(40_000)])
    offsets[30_000] = len(data) + 5  # past the data: rows 29,999 and 30,000 are bad
    offsets[35_000] = -1
    acc = _core.Accumulator(3, True)
    with pytest.raises(ValueError, match="corrupt") as err:
        acc.intern(offsets, data, threads=threads)
    assert err.value.args[1] == 29_999


@pytest.mark.parametrize("kind", ["dense", "sparse", "offset", "string"])
@pytest.mark.parametrize("direct_table", [-1, 0, 1 << 20])
def test_accumulator_matches_reference(kind, direct_table, rng):
    n, epochs, classes = 3000, 3, 7
    ids = np.array(id_sets(rng, n)[kind], dtype=object)
    truth = rng.integers(0, classes, n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    order = np.concatenate([order, order[:50]])  # duplicates
    z = rng.standard_normal((len(order), classes)).astype(np.float32)
    y = truth[order]
    row_ids = ids[order]
    acc = _core.Accumulator(classes, kind == "string", direct_table=direct_table)
    # Batch boundaries anywhere: single rows, tiny and large batches.
    add_rows(acc, z, y, row_ids, [1, 2, 3, 100, 101, 4000, 4001, 7000])
    ref = reference_state(row_ids, reference_margins(z, y), y)
    assert state_of(acc) == ref  # exact: sums are sequential float64 sums in row order
    first_seen = list(dict.fromkeys(row_ids.tolist()))
    keys = acc.arrays()[0]
    assert (acc.strings_of(keys) if acc.string_ids else keys.tolist()) == first_seen
    info = acc.index_info()
    if direct_table < 0:
        assert info["direct_size"] == 0 and info["hashed"] == n
    elif kind in ("dense", "string"):  # string codes are dense
        assert info["hashed"] == 0
    elif kind == "sparse":
        assert info["hashed"] >= n - 2
    # A state that went through bytes, or was merged in, is the same state.
    again = _core.Accumulator.from_bytes(acc.to_bytes())
    assert state_of(again) == ref
    merged = _core.Accumulator(classes, kind == "string")
    merged.merge(acc)
    assert state_of(merged) == ref


def test_direct_part_grows_and_takes_over_hashed_ids(rng):
    # direct_table=0: only density decides. Ids 0..N-1 in random order start out hashed (too
    # sparse for the first rows) and move into the direct part as samples accumulate.
    n, classes = 20_000, 5
    ids = rng.permutation(n)
    acc = _core.Accumulator(classes, direct_table=0)
    z = rng.standard_normal((n, classes)).astype(np.float32)
    y = ids % classes
    seen_hashed = False
    for a in range(0, n, 500):
        acc.add(z[a : a + 500], y[a : a + 500], ids[a : a + 500])
        seen_hashed |= acc.index_info()["hashed"] > 0
    assert seen_hashed
    assert acc.index_info()["direct_size"] >= n and acc.index_info()["hashed"] == 0
    acc.add(z, y, ids)  # every id known: a second epoch
    ref = reference_state(
        np.concatenate([ids, ids]), reference_margins(np.vstack([z, z]), np.r_[y, y]), np.r_[y, y]
    )
    assert state_of(acc) == ref


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("classes", [10, 300])
def test_threads_give_identical_states(threads, classes, rng):
    n = 30_000
    z = rng.standard_normal((n, classes)).astype(np.float32)
    ids = rng.integers(0, 5000, n)
    y = ids % classes
    acc = _core.Accumulator(classes)
    acc.add(z, y, ids, threads=threads, tally_label=3)
    one = _core.Accumulator(classes)
    for a in range(0, n, 977):
        one.add(z[a : a + 977], y[a : a + 977], ids[a : a + 977], threads=1, tally_label=3)
    assert acc.to_bytes() == one.to_bytes()


@pytest.mark.parametrize("kind", ["dense", "sparse", "string"])
def test_parallel_scatter_gives_the_one_thread_state(kind, rng):
    """Batches big enough to be scattered on 2 threads (after a first batch made the samples):
    the same state to the byte as on one thread, including a few new samples, skipped NaN rows,
    mixed epochs and a failed batch (a label conflict late in the batch) that changes nothing."""
    n, rows, classes = 5000, 40_000, 6
    ids = np.array(id_sets(rng, n + 500)[kind], dtype=object)
    truth = rng.integers(0, classes, n + 500)
    accs = [_core.Accumulator(classes, kind == "string") for _ in range(2)]
    first = rng.permutation(n)
    z = rng.standard_normal((n, classes)).astype(np.float32)
    for acc, threads in zip(accs, (1, 2)):
        add_rows(acc, z, truth[first], ids[first], [], threads=threads)
    for batch in range(3):
        which = rng.integers(0, n + 500 if batch == 1 else n, rows)  # batch 1: new samples too
        z = rng.standard_normal((rows, classes)).astype(np.float32)
        z[rng.integers(0, rows, 20), 2] = np.nan
        epochs = rng.integers(batch, batch + 2, rows)
        options = dict(epochs=epochs, tally_label=2, skip_nonfinite=True)
        for acc, threads in zip(accs, (1, 2)):
            add_rows(acc, z, truth[which], ids[which], [], threads=threads, **options)
        assert accs[0].to_bytes() == accs[1].to_bytes()
    y = truth[which].copy()
    y[rows - 7] = (y[rows - 7] + 1) % classes
    for acc, threads in zip(accs, (1, 2)):
        before = acc.to_bytes()
        with pytest.raises(ValueError) as info:
            add_rows(acc, z, y, ids[which], [], threads=threads, **options)
        assert info.value.args[1] == rows - 7 and acc.to_bytes() == before


@pytest.mark.parametrize("expect", [0, 2000])
def test_parallel_scatter_with_hashed_ids_new_and_displaced(expect, rng):
    """Hashed ids (no direct part) in batches scattered on 2 threads, with many new ids (the
    hash table grows in the middle of a batch): the state equals one thread's to the byte; a
    failed batch is undone after that growth; the first error in row order wins across the
    threads, and a conflict with a label set earlier in the same batch names the batch."""
    n, rows, classes = 2000, 40_000, 5
    ids = rng.integers(-(2**62), 2**62, n + 30_000)
    truth = rng.integers(0, classes, len(ids))
    accs = [_core.Accumulator(classes, direct_table=-1) for _ in range(2)]
    for acc in accs:
        acc.expect_samples(expect)

    for threads, acc in zip((1, 2), accs):
        local = np.random.default_rng(7)
        for which in (np.arange(n), local.integers(0, n, rows)):  # the second: no new ids
            acc.add(local.standard_normal((len(which), classes)).astype(np.float32),
                    truth[which], ids[which], threads=threads, tally_label=1)
    assert accs[0].to_bytes() == accs[1].to_bytes()
    # A later batch: known ids, 25,000 new ones (the table grows), a conflict at the end.
    which = np.r_[rng.integers(0, n, rows), np.arange(n, n + 25_000), 3]
    z = rng.standard_normal((len(which), classes)).astype(np.float32)
    y = truth[which].copy()
    y[-1] = (y[-1] + 1) % classes
    for threads, acc in zip((1, 2), accs):
        before = acc.to_bytes()
        with pytest.raises(ValueError) as info:
            acc.add(z, y, ids[which], threads=threads, tally_label=1, source=9)
        assert info.value.args[1] == len(which) - 1 and acc.to_bytes() == before
    # A new id's second row disagreeing with its first comes before a known id's conflict.
    y2 = truth[which].copy()
    y2[rows + 10] = (y2[rows + 10] + 1) % classes
    which2 = which.copy()
    which2[rows + 10] = which2[rows + 5]
    y2[rows + 10] = (truth[which2[rows + 5]] + 1) % classes
    y2[-1] = (y2[-1] + 1) % classes
    for threads, acc in zip((1, 2), accs):
        before = acc.to_bytes()
        with pytest.raises(ValueError) as info:
            acc.add(z, y2, ids[which2], threads=threads, tally_label=1, source=9)
        assert info.value.args[1] == rows + 10 and acc.to_bytes() == before
        assert info.value.args[2] == 9
    # Without the conflict the batch goes in, the same on both.
    for threads, acc in zip((1, 2), accs):
        acc.add(z[:-1], truth[which[:-1]], ids[which[:-1]], threads=threads, tally_label=1)
    assert accs[0].to_bytes() == accs[1].to_bytes()
    assert accs[0].num_slots == n + 25_000
    # And the next batch (on one thread, after a batch of many new samples) as well.
    which = rng.integers(0, n + 25_000, rows)
    z = rng.standard_normal((rows, classes)).astype(np.float32)
    for threads, acc in zip((1, 2), accs):
        acc.add(z, truth[which], ids[which], threads=threads, tally_label=1)
    assert accs[0].to_bytes() == accs[1].to_bytes()
    ref = state_of(accs[1])
    assert len(ref) == n + 25_000


def test_known_hashed_ids_far_from_their_home_line_found_on_threads(rng):
    """Known ids displaced far beyond their home line (40 ids with one home, a chain over
    10 lines, among 960 others) are found by the parallel lookup of a later batch: the state
    equals one thread's to the byte and the reference's."""
    fib, n, classes = 0x9E3779B97F4A7C15, 1000, 4
    shift = 64 - 11  # 1000 expected ids: a table of 2048 entries
    inverse = pow(fib, -1, 2**64)
    crowded = [((((7 << shift) + e) * inverse) % 2**64) for e in range(40)]
    ids = np.array([k - 2**64 if k >= 2**63 else k for k in crowded], dtype=np.int64)
    ids = np.r_[ids, rng.integers(-(2**62), 2**62, n - len(ids))]
    assert len(np.unique(ids)) == n
    truth = rng.integers(0, classes, n)
    accs = [_core.Accumulator(classes, direct_table=-1) for _ in range(2)]
    rows = [rng.permutation(n), rng.integers(0, n, 50_000), rng.integers(0, n, 50_000)]
    logits = [rng.standard_normal((len(r), classes)).astype(np.float32) for r in rows]
    for threads, acc in zip((1, 2), accs):
        acc.expect_samples(n)
        for which, z in zip(rows, logits):
            acc.add(z, truth[which], ids[which], threads=threads)
    assert accs[0].to_bytes() == accs[1].to_bytes()
    assert accs[1].num_slots == n
    all_rows = np.concatenate(rows)
    margins_ = reference_margins(np.concatenate(logits), truth[all_rows])
    assert state_of(accs[1]) == reference_state(ids[all_rows], margins_, truth[all_rows])


@pytest.mark.parametrize("threads", [1, 2])
def test_results_when_hashed_samples_come_out_of_their_codes_order(threads, rng):
    """The result gather reads hashed slots in code order, guessing each sample's code; a
    failed batch leaves codes behind, and a later batch that makes the same samples in another
    order defeats the guesses (then the rest is looked up). Also a direct part that grows and
    takes ids over, keeping the others in order. Results equal the reference throughout."""
    n, classes = 70_000, 3
    ids = rng.integers(-(2**62), 2**62, n)
    y = rng.integers(0, classes, n)
    z = rng.standard_normal((n, classes)).astype(np.float32)
    acc = _core.Accumulator(classes, direct_table=0)
    acc.add(z[:1000], y[:1000], ids[:1000], threads=threads)  # in order
    bad = y.copy()
    bad[500] = (bad[500] + 1) % classes  # conflicts with the first batch: the batch fails
    with pytest.raises(ValueError):  # its new ids get codes in reverse order, and keep them
        acc.add(np.vstack([z[1000:][::-1], z[:1]]), np.r_[y[1000:][::-1], bad[500]],
                np.r_[ids[1000:][::-1], ids[500]], threads=threads)
    order = np.r_[np.arange(1000), rng.permutation(np.arange(1000, n))]  # codes are reversed
    acc.add(z[order[1000:]], y[order[1000:]], ids[order[1000:]], threads=threads)
    m = reference_margins(z, y)
    ref = {int(ids[i]): (int(y[i]), float(m[i]), 1) for i in range(n)}
    keys, labels, sums, counts = acc.arrays(threads)
    assert keys.tolist() == ids[order].tolist()
    got = zip(keys.tolist(), labels, sums, counts)
    assert {k: (int(a), float(b), int(c)) for k, a, b, c in got} == ref
    # Small ids now: the direct part grows and takes them over; the hashed ones keep order.
    small = rng.permutation(200_000)[:n]
    acc.add(z, y, small, threads=threads)
    keys, labels, sums, counts = acc.arrays(threads)
    assert keys.tolist() == ids[order].tolist() + small.tolist()
    assert sums[n:].tolist() == m.tolist() and acc.index_info()["direct_size"] > 0


def test_epoch_tallies_exact_with_interleaved_epochs(rng):
    n, classes = 5000, 4
    z = rng.standard_normal((n, classes)).astype(np.float32)
    ids = rng.integers(-(2**40), 2**40, 700)[rng.integers(0, 700, n)]
    truth = {i: int(v) for i, v in zip(np.unique(ids), rng.integers(0, classes, 700))}
    y = np.array([truth[i] for i in ids])
    epochs = rng.integers(0, 3, n)  # rows of several epochs mixed within batches
    z[17, 2] = np.nan
    acc = _core.Accumulator(classes)
    for a in range(0, n, 1234):
        b = slice(a, a + 1234)
        acc.add(z[b], y[b], ids[b], epochs=epochs[b], tally_label=1, skip_nonfinite=True)
    m = reference_margins(z, y)
    tallies = acc.epoch_tallies()
    for k, e in enumerate(tallies["epoch"]):
        rows = [r for r in range(n) if epochs[r] == e and r != 17]
        s = 0.0
        ts = 0.0
        for r in rows:  # sequential float64 sums in row order
            s += m[r]
            if y[r] == 1:
                ts += m[r]
        assert tallies["rows"][k] == len(rows)
        assert tallies["margin_sum"][k] == s
        assert tallies["tallied_rows"][k] == sum(y[r] == 1 for r in rows)
        assert tallies["tallied_fitted"][k] == sum(y[r] == 1 and m[r] > 0 for r in rows)
        assert tallies["tallied_margin_sum"][k] == ts
    assert acc.rows_skipped == 1


@pytest.mark.parametrize("classes", [3, 10, 40])
@pytest.mark.parametrize("threads", [1, 2])
def test_labels_outside_the_classes_are_caught_by_the_margins(level, classes, threads, rng):
    """The margin kernels, not a pass of their own, catch labels outside [0, C): the row is not
    read and the batch fails on the first such row, NaN rows being skipped or not, in the
    block's middle and in its last rows (read without whole vectors), at every SIMD level.
    Margins computed elsewhere (add_margins) are checked the same way."""
    n = 20_000  # parallel margins on 2 threads
    z = rng.standard_normal((n, classes)).astype(np.float32)
    y = rng.integers(0, classes, n)
    ids = np.arange(n)
    z[5, 1] = np.nan
    for bad_row, bad_label in [(n // 2, classes), (n - 1, -3), (n - 2, 2**40)]:
        yy = y.copy()
        yy[bad_row] = bad_label
        yy[bad_row + 1 :] = classes + 7  # later bad rows: the first one is named
        for skip in (False, True):
            acc = _core.Accumulator(classes)
            with pytest.raises(ValueError) as info:
                acc.add(z, yy, ids, threads=threads, skip_nonfinite=skip)
            assert info.value.args[1] == bad_row and "outside" in info.value.args[0]
            assert acc.num_slots == 0
            with pytest.raises(ValueError) as info:
                acc.add_margins(reference_margins(z, y), yy, ids, skip_nonfinite=skip)
            assert info.value.args[1] == bad_row and acc.num_slots == 0
    acc = _core.Accumulator(classes)  # and with good labels, the NaN row is the only one skipped
    acc.add(z, y, ids, threads=threads, skip_nonfinite=True)
    assert acc.rows_skipped == 1 and acc.num_slots == n


@pytest.mark.parametrize("kind", ["sparse", "string"])
def test_large_id_tables_start_empty(kind, rng):
    """Tables for many expected ids (tens of MB) come zeroed from the OS, not written: every
    id is new at first, found again afterwards, in order of first appearance."""
    n = 300_000
    ids = np.array(id_sets(rng, n)[kind], dtype=object)
    acc = _core.Accumulator(3, kind == "string")
    acc.expect_samples(n)
    z = rng.standard_normal((n, 3)).astype(np.float32)
    y = rng.integers(0, 3, n)
    for _ in range(2):  # the second time every id is known
        add_rows(acc, z, y, ids, [100_000])
    keys, labels, sums, counts = acc.arrays()
    got = acc.strings_of(keys) if kind == "string" else keys.tolist()
    assert got == list(ids) and acc.num_slots == n
    assert (counts == 2).all() and labels.tolist() == y.tolist()
    np.testing.assert_array_equal(sums, 2 * reference_margins(z, y))


@pytest.mark.parametrize("expect", [0, 1000])
@pytest.mark.parametrize("kind", ["dense", "sparse", "string"])
def test_failed_add_changes_nothing(kind, expect, rng):
    """Expected samples: the new samples of a batch go straight to the list of samples, which
    has room for them, and a failed batch takes them out again."""
    classes = 5
    ids = np.array(id_sets(rng, 400)[kind], dtype=object)
    acc = _core.Accumulator(classes, kind == "string")
    acc.expect_samples(expect)
    z = rng.standard_normal((400, classes)).astype(np.float32)
    y = rng.integers(0, classes, 400)
    add_rows(acc, z[:200], y[:200], ids[:200], [], epochs=np.zeros(200, np.int64), tally_label=2)
    before = acc.to_bytes()

    def attempt(zz, yy, ii, **options):
        with pytest.raises(ValueError) as info:
            add_rows(acc, zz, yy, ii, [], **options)
        assert acc.to_bytes() == before, info.value
        return info.value

    # New samples first, then a label conflict on a known one in the last row.
    rows = np.r_[np.arange(200, 400), 5]
    yy = y[rows].copy()
    yy[-1] = (y[5] + 1) % classes
    err = attempt(z[rows], yy, ids[rows])
    assert err.args[1] == 200 and "label" in err.args[0]
    # A NaN row after new samples and known samples.
    zz = z[rows].copy()
    zz[150, 1] = np.nan
    err = attempt(zz, y[rows], ids[rows], tally_label=2)
    assert err.args[1] == 150
    # A row without a label for a new sample.
    yy = y[rows].copy()
    yy[120] = NO_LABEL
    err = attempt(z[rows], yy, ids[rows])
    assert err.args[1] == 120 and "no label" in err.args[0]
    # Labels out of range are checked before anything.
    yy = y[rows].copy()
    yy[3] = classes
    attempt(z[rows], yy, ids[rows])
    # The same rows without the faults are then added as usual.
    add_rows(acc, z[rows], y[rows], ids[rows], [])
    assert acc.num_slots == 400
    keys = acc.arrays()[0]
    if kind == "string":
        keys = acc.strings_of(keys)
    assert list(keys) == list(ids)  # in order of first appearance


def test_set_labels_is_all_or_nothing(rng):
    acc = _core.Accumulator(4)
    acc.set_labels(np.array([1, 2, 3]), np.array([0, 1, 2]))
    before = acc.to_bytes()
    with pytest.raises(ValueError):
        acc.set_labels(np.array([10, 11, 2]), np.array([0, 0, 3]))  # 2 already has label 1
    assert acc.to_bytes() == before


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["dense", "sparse", "string"])
def test_label_conflicts_name_who_set_the_label(kind, threads, rng):
    """The source of a sample's label (a labels table, a log file) is what a later conflict
    reports, also after the samples moved (tables grown, ids made direct) and after a failed
    batch was undone."""
    ids = np.array(id_sets(rng, 3000)[kind], dtype=object)
    acc = _core.Accumulator(4, kind == "string", direct_table=0)
    labels = rng.integers(0, 4, 3000)

    def add(rows, source, y=None):
        y = labels[rows] if y is None else y
        z = rng.standard_normal((len(rows), 4)).astype(np.float32)
        add_rows(acc, z, y, ids[rows], [], threads=threads, source=source)

    acc.set_labels(keys_of(acc, ids[:10]), labels[:10], _core.LABELS_SOURCE)
    add(np.arange(10, 20), source=3)
    add(np.arange(20, 3000), source=4)  # many more samples: tables grow, ids turn direct
    add(rng.integers(0, 3000, 40_000), source=5)  # no new samples: next batches in parallel
    for row, expected in ((5, _core.LABELS_SOURCE), (15, 3), (2500, 4)):
        for _ in range(2):  # the failed batch changed nothing, so the same error again
            rows = np.r_[rng.integers(0, 3000, 40_000), row]
            y = labels[rows].copy()
            y[-1] = (y[-1] + 1) % 4
            with pytest.raises(ValueError) as info:
                add(rows, source=7, y=y)
            assert info.value.args[1:] == (40_000, expected)
    # A label changed where changes are allowed takes that batch's source.
    others = np.r_[0:100, 101:3000]
    rows = np.r_[others[rng.integers(0, len(others), 40_000)], 100]
    y = labels[rows].copy()
    y[-1] = (y[-1] + 1) % 4
    z = rng.standard_normal((len(rows), 4)).astype(np.float32)
    add_rows(acc, z, y, ids[rows], [], threads=threads, source=9, allow_label_changes=True)
    y[-1] = (y[-1] + 1) % 4
    with pytest.raises(ValueError) as info:
        add(rows, source=7, y=y)
    assert info.value.args[1:] == (40_000, 9)


def test_labels_from_earlier_rows_of_the_same_batch(rng):
    acc = _core.Accumulator(3)
    z = rng.standard_normal((4, 3)).astype(np.float32)
    acc.add(z, np.array([2, NO_LABEL, 1, NO_LABEL]), np.array([9, 9, 10**15, 10**15]))
    _, labels, sums, counts = acc.arrays()
    assert labels.tolist() == [2, 1] and counts.tolist() == [2, 2]
    m = reference_margins(z, np.array([2, 2, 1, 1]))
    assert sums.tolist() == [m[0] + m[1], m[2] + m[3]]


# --- logs and floors --------------------------------------------------------------------------


def test_bfloat16_log(tmp_path, rng):
    n, classes = 500, 12
    z = rng.standard_normal((n, classes)).astype(np.float32)
    bits = bfloat16_bits(z)
    ids = np.arange(n) % 100
    y = ids % 3
    field = pa.field(
        "logits", pa.list_(pa.uint16(), classes), metadata={"aum_score.dtype": "bfloat16"}
    )
    schema = pa.schema([("sample_id", pa.int64()), ("label", pa.int64()), field])
    values = pa.FixedSizeListArray.from_arrays(pa.array(bits.reshape(-1)), classes)
    batch = pa.record_batch([pa.array(ids), pa.array(y), values], schema=schema)
    with pa.ipc.new_file(tmp_path / "epoch_0.arrow", schema) as sink:
        sink.write_batch(batch)
    table = aum_score.score(tmp_path).table.sort_by("sample_id")
    ref = reference_state(ids, reference_margins(bfloat16_values(bits), y), y)
    assert table.column("aum").to_pylist() == [ref[i][1] / ref[i][2] for i in range(100)]


def test_bfloat16_metadata_needs_uint16(tmp_path):
    field = pa.field("logits", pa.list_(pa.float32(), 3), metadata={"aum_score.dtype": "bfloat16"})
    schema = pa.schema([("sample_id", pa.int64()), ("label", pa.int64()), field])
    with pa.ipc.new_file(tmp_path / "epoch_0.arrow", schema) as sink:
        sink.write_table(schema.empty_table())
    with pytest.raises(aum_score.LogFormatError, match="bfloat16"):
        aum_score.score(tmp_path)


def test_floors():
    data = np.arange(1000, dtype=np.uint8)
    expect = 0
    for b in data.tobytes():
        expect ^= b
    got = _core.read_floor(data)
    folded = 0
    for k in range(8):
        folded ^= (got >> (8 * k)) & 0xFF
    assert folded == expect  # xor of the 8-byte lanes folds to the xor of all bytes
    ids = np.array([3, 1, 3, 0])
    sums, counts = np.zeros(4), np.zeros(4, np.int64)
    _core.scatter_floor(ids, np.array([1.0, 2.0, 3.0, 4.0]), sums, counts)
    assert sums.tolist() == [4.0, 2.0, 0.0, 4.0] and counts.tolist() == [1, 1, 0, 2]
    with pytest.raises(ValueError):
        _core.scatter_floor(np.array([4]), np.array([1.0]), sums, counts)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_arrays_on_threads_equal_one_thread(kind, rng):
    """Enough samples for the gather to run on threads (sparse ids also look up their slots
    there): the same arrays, in order of first appearance; aums() divides as numpy does."""
    n = 100_000
    ids = rng.permutation(n) if kind == "dense" else rng.integers(-(2**62), 2**62, n)
    acc = _core.Accumulator(3, False)
    acc.add(rng.standard_normal((n, 3)).astype(np.float32), rng.integers(0, 3, n), ids)
    acc.set_labels(np.array([-5, 2**40]), np.array([1, 2]), 0)  # two samples without margins
    one = acc.arrays(1)
    np.testing.assert_array_equal(one[0], np.r_[ids, -5, 2**40])
    keys, labels, sums, counts = one
    with np.errstate(invalid="ignore"):
        aums = sums / counts  # NaN for the samples without margins
    for threads in (1, 2, 3):
        for a, b in zip(acc.arrays(threads), one):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(acc.aums(threads), (keys, labels, aums, counts)):
            np.testing.assert_array_equal(a, b)  # bit for bit, NaN where numpy has NaN
