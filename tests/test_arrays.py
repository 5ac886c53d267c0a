"""numpy <-> Arrow without pandas: `arrow_array` and `numpy_of` against pyarrow's own
conversions, and the `aum-score score` command never importing pandas (a quarter of a second of
every run where it is installed)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from aum_score.arrays import arrow_array, numpy_of


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float64, np.float32, np.bool_])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000])
def test_arrow_array_equals_pa_array(dtype, n, rng):
    values = (rng.standard_normal(n) * 100).astype(dtype)
    mask = rng.random(n) < 0.3
    for m in (None, mask, np.zeros(n, bool), True if n else None):
        got = arrow_array(values, m)
        want = pa.array(values, mask=None if m is None else np.broadcast_to(m, (n,)))
        assert got.type == want.type and got.equals(want), (dtype, n, m)
        assert got.null_count == want.null_count
    strided = values[::2]  # not contiguous: copied
    assert arrow_array(strided).equals(pa.array(strided))


def test_arrow_array_refuses_other_dtypes():
    with pytest.raises(TypeError, match="no Arrow type"):
        arrow_array(np.array(["a", "b"]))


@pytest.mark.parametrize(
    "array",
    [
        pa.array(np.arange(10, dtype=np.int64)),
        pa.array(np.arange(10, dtype=np.int64)).slice(3, 5),  # an offset into the buffer
        pa.array(np.linspace(0, 1, 9)),
        pa.array([1.5, None, 2.5, None], pa.float64()).slice(1, 3),  # nulls at an offset
        pa.array(np.arange(5, dtype=np.uint16)),
        pa.array([], pa.int64()),
        pa.chunked_array([np.arange(3), np.arange(4)]),
        pa.chunked_array([np.arange(3)]),
        pa.chunked_array([], pa.int32()),
        pa.array([1, None, 3], pa.int64()),  # integer nulls: to_numpy's float result
        pa.array(["a", "b"]),  # not primitive: to_numpy
    ],
)
def test_numpy_of_equals_to_numpy(array):
    chunked = isinstance(array, pa.ChunkedArray)
    want = array.to_numpy() if chunked else array.to_numpy(zero_copy_only=False)
    got = numpy_of(array)
    assert got.dtype == want.dtype or (len(want) == 0 and len(got) == 0)
    np.testing.assert_array_equal(got, want)


def test_numpy_of_one_chunk_is_a_view():
    values = np.arange(100, dtype=np.int64)
    array = pa.array(values)
    assert np.shares_memory(numpy_of(array), np.frombuffer(array.buffers()[1], np.int64))


SCRIPT = """
import sys
from aum_score.cli import main
sys.argv = ["aum-score"] + sys.argv[1:]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
assert "pandas" not in sys.modules, "pandas was imported"
"""


def test_score_command_does_not_import_pandas(tmp_path):
    pytest.importorskip("pandas")  # (installed, so pyarrow would import it on a first pa.array)
    from reference import make_epochs, write_log

    rng = np.random.default_rng(3)
    write_log(tmp_path / "log", make_epochs(rng, n_samples=60, num_classes=4, n_epochs=3))
    runs = [
        ["score", str(tmp_path / "log"), "--threshold-class", "3", "-o", str(tmp_path / "r.csv")],
        ["score", str(tmp_path / "log"), "--json", "--epochs", "auto", "--threshold-class", "3"],
        ["score", str(tmp_path / "log"), "--monitor", "-o", str(tmp_path / "r.arrow"),
         "--save-state", str(tmp_path / "state")],
        ["score", "--resume", str(tmp_path / "state"), "-o", str(tmp_path / "r.parquet")],
    ]
    for args in runs:
        done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True)
        assert done.returncode == 0, (args, done.stderr[-2000:])


@pytest.mark.parametrize("kind", ["fixed", "list", "large_list"])
def test_logits_matrix_of_sliced_and_chunked_columns(kind, rng):
    """Rows x C views of logits columns that start inside their buffers (a slice) or come in
    chunks: the same rows as the numpy matrix they were built from."""
    from aum_score.logs import logits_matrix

    z = rng.standard_normal((50, 4)).astype(np.float32)
    flat = pa.array(z.ravel())
    if kind == "fixed":
        column = pa.FixedSizeListArray.from_arrays(flat, 4)
    else:
        offsets = np.arange(0, 201, 4, dtype=np.int32 if kind == "list" else np.int64)
        make = pa.ListArray if kind == "list" else pa.LargeListArray
        column = make.from_arrays(pa.array(offsets), flat)
    np.testing.assert_array_equal(logits_matrix(column, 4, "x"), z)
    np.testing.assert_array_equal(logits_matrix(column.slice(7, 20), 4, "x"), z[7:27])
    chunked = pa.chunked_array([column.slice(0, 10), column.slice(10, 40)])
    np.testing.assert_array_equal(logits_matrix(chunked, 4, "x"), z)
