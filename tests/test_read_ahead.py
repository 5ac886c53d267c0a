"""Read-ahead (a helper thread maps the batches ahead of the scorer): the optimised path,
checked against the plain one."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest
from reference import assert_matches_reference, make_epochs, rows_of, write_log

import aum_score
from aum_score import _core, read_ahead
from aum_score.errors import LogFormatError


@pytest.mark.parametrize("window", [0, 1, 3000, 64 << 20])
@pytest.mark.parametrize("fmt", ["file", "stream", "parquet"])
def test_read_ahead_windows_score_like_the_reference(tmp_path, rng, monkeypatch, window, fmt):
    # Windows of no batch, about one batch, a few batches and the whole log: the scorer must see
    # every batch once, in order. The files were just written (in memory): make the helper run.
    monkeypatch.setattr(read_ahead, "WINDOW_BYTES", window)
    monkeypatch.setattr(read_ahead, "SKIP_RESIDENT", False)
    epochs = make_epochs(rng, n_samples=300, n_epochs=3)
    write_log(tmp_path, epochs, fmt=fmt, batches_per_file=7)
    result = aum_score.score(tmp_path)
    assert_matches_reference(result.table, rows_of(epochs))


def test_read_ahead_is_off_unless_asked_for_and_gives_the_same_table(tmp_path, rng, monkeypatch):
    write_log(tmp_path, make_epochs(rng, n_samples=200, n_epochs=3), batches_per_file=5)
    monkeypatch.delenv("AUM_SCORE_READ_AHEAD", raising=False)
    assert not read_ahead.enabled()
    off = aum_score.score(tmp_path).table
    monkeypatch.setenv("AUM_SCORE_READ_AHEAD", "64")
    monkeypatch.setattr(read_ahead, "SKIP_RESIDENT", False)  # the helper runs on a warm file too
    assert read_ahead.window_bytes() == 64 << 20
    on = aum_score.score(tmp_path).table
    assert on.equals(off)


def test_an_error_mid_log_stops_the_helper_before_returning(tmp_path, rng, monkeypatch):
    # A bad row in the first batch: the scorer stops while later batches are queued for the
    # helper. Rewriting the file right after must be safe (no page of it touched any more).
    monkeypatch.setattr(read_ahead, "WINDOW_BYTES", 1 << 30)
    monkeypatch.setattr(read_ahead, "SKIP_RESIDENT", False)
    epochs = make_epochs(rng, n_samples=100, n_epochs=2, num_classes=4)
    epochs[0].labels[3] = 9
    paths = write_log(tmp_path, epochs, batches_per_file=20)
    with pytest.raises(LogFormatError, match="label 9 is outside"):
        aum_score.score(tmp_path)
    for path in paths:
        path.write_bytes(b"")  # truncating a mapped file would crash any later page read
    with pytest.raises(LogFormatError):
        aum_score.score(tmp_path)


def test_touch_and_will_need_read_any_buffer():
    data = np.arange(100_000, dtype=np.uint8)
    assert _core.touch_pages(data) == np.bitwise_xor.reduce(data[::4096].tolist() + [data[-1]])
    assert _core.touch_pages(np.zeros(0, np.uint8)) == 0
    _core.will_need(pa.py_buffer(b"abc"))  # a hint on heap memory: no error
    assert _core.resident(data)  # heap memory in use is in memory (or the OS cannot tell: False)
    assert _core.resident(np.zeros(0, np.uint8))


def test_a_file_dropped_from_the_page_cache_is_not_resident(tmp_path):
    # posix_fadvise(DONTNEED) drops a clean file's pages; its mapping is then not resident.
    if not hasattr(os, "posix_fadvise") or not hasattr(os, "sync"):
        pytest.skip("no posix_fadvise here")
    path = tmp_path / "cold.bin"
    path.write_bytes(np.random.default_rng(0).bytes(1 << 22))
    os.sync()
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    with pa.memory_map(str(path)) as source:
        buffer = source.read_buffer()
        if _core.resident(buffer):
            pytest.skip("the OS kept the pages (or cannot tell)")
        _core.touch_pages(buffer)
        assert _core.resident(buffer)
