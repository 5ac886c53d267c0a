"""Read-ahead: while the scorer works on one record batch, the pages of the batches after it are
read (cold cache) and mapped (warm cache) by a helper thread.

Reading a memory-mapped file costs a disk read or a page fault on first touch of every page. At
small C the faults are about half the scoring thread's time, and on a cold cache the disk is the
whole story. So the scorer keeps a window of batches ahead of it: for each it asks the OS to start
reading (madvise WILLNEED, returns at once) and a helper thread touches its pages; a batch is
scored once its pages are in. The OS then has the window's reads in flight while the scorer
computes, as a plain sequential ``cat`` would.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa

from . import _core

WINDOW_BYTES = 64 << 20  # read ahead of the scorer: 8 of LogitWriter's 8 MB batches
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def window_bytes() -> int:
    """WINDOW_BYTES, or AUM_SCORE_READ_AHEAD megabytes (0: off, to measure what it brings)."""
    setting = os.environ.get("AUM_SCORE_READ_AHEAD", "")
    try:
        return int(float(setting) * (1 << 20)) if setting else WINDOW_BYTES
    except ValueError:
        return WINDOW_BYTES


def enabled() -> bool:
    return window_bytes() > 0


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aum-read-ahead")
        return _pool


def _buffers(batch: pa.RecordBatch) -> list[pa.Buffer]:
    return [b for column in batch.columns for b in column.buffers() if b is not None and b.size]


def _touch(buffers: list[pa.Buffer]) -> None:
    for buffer in buffers:
        _core.touch_pages(buffer)


def read_ahead(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The same batches, in order; each one's pages read before it is yielded, with up to
    WINDOW_BYTES of later batches being read meanwhile."""
    limit = window_bytes()
    if limit <= 0:
        yield from batches
        return
    window: deque[tuple[pa.RecordBatch, Future, int]] = deque()
    ahead = 0
    try:
        for batch in batches:
            buffers = _buffers(batch)
            for buffer in buffers:
                _core.will_need(buffer)
            size = sum(b.size for b in buffers)
            window.append((batch, _executor().submit(_touch, buffers), size))
            ahead += size
            while window and ahead - window[0][2] >= limit:
                ready, touched, size = window.popleft()
                ahead -= size
                touched.result()
                yield ready
        while window:
            ready, touched, _ = window.popleft()
            touched.result()
            yield ready
    finally:
        # The scorer stopped early (an error, or the caller closed us): no page of these files
        # may be touched after we return, since the caller may then change or truncate them.
        for _, touched, _ in window:
            if not touched.cancel():
                touched.exception()
