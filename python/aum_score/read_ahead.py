"""Read-ahead, off unless asked for: while the scorer works on one record batch of a file that is
not in memory yet, the OS reads the batches after it and a helper thread maps their pages.

Reading a memory-mapped file costs a disk read (cold cache) or a page fault (warm cache) on
first touch of every page. By default the kernel's own read-ahead on those faults does the
reading ahead, and I/O and scoring overlap without help: measured on a 28 GB log from a cold
cache (benchmarks/RESULTS.md), it reads at the speed of ``cat``, faster than with this module's
window (which paid when files were read through ``pa.memory_map``, whose ``madvise(WILLNEED)``
on every read the kernel handled worse than its plain read-ahead). AUM_SCORE_READ_AHEAD=MB
turns the window on, for storage where it may pay: for a cold file (judged from a sample of
pages with mincore; a file once cold stays cold) the scorer keeps up to that many bytes of
batches ahead of it: for each it asks the OS to start reading (madvise WILLNEED, returns at
once) and a helper thread touches its pages. The scorer never waits for the helper: a batch it
reaches first it reads itself, and the helper skips it. A warm file gets no helper: there it
only competed with the scorer for a core (measured).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa

from . import _core

WINDOW_BYTES = 0  # off: the kernel's read-ahead measured faster (64 << 20 was the default)
SKIP_RESIDENT = True  # batches already in memory need no helper (tests turn this off)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def window_bytes() -> int:
    """WINDOW_BYTES, or AUM_SCORE_READ_AHEAD megabytes (0: off)."""
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


class _Progress:
    """Batches [0, consumed) were reached by the scorer: the helper skips them."""

    consumed = 0


def _touch(buffers: list[pa.Buffer], index: int, progress: _Progress) -> None:
    for buffer in buffers:
        if index < progress.consumed:
            return
        _core.touch_pages(buffer)


def read_ahead(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The same batches, in order, with up to the window's bytes of later batches being read
    and mapped by the helper meanwhile."""
    limit = window_bytes()
    if limit <= 0:
        yield from batches
        return
    progress = _Progress()
    window: deque[tuple[pa.RecordBatch, int]] = deque()  # read ahead, not yet yielded
    touching: list[Future] = []
    ahead = 0
    cold = False
    try:
        for index, batch in enumerate(batches):
            buffers = _buffers(batch)
            size = sum(b.size for b in buffers)
            # Pages already in memory (a warm cache): the scorer maps them faster itself than
            # it would share a core with the helper. Only pages still to be read are worth it.
            # The logits, the largest buffer, speak for the batch (each check is a few syscalls).
            # Once a batch of the file was cold, the rest is treated as cold too: the kernel's
            # own read-ahead may have brought in the sampled pages of the next batch, and
            # judging batch by batch would then shrink the window to one batch.
            largest = max(buffers, key=lambda b: b.size, default=None)
            cold = cold or (largest is not None and not (SKIP_RESIDENT and _core.resident(largest)))
            if cold:
                for buffer in buffers:
                    _core.will_need(buffer)
                touching = [f for f in touching if not f.done()]
                touching.append(_executor().submit(_touch, buffers, index, progress))
            window.append((batch, size))
            ahead += size
            # A batch in memory is not held back (nothing to overlap; decoded Parquet batches
            # would only add to the memory): it goes out with every batch before it.
            while window and (ahead - window[0][1] >= limit or not cold):
                ready, size = window.popleft()
                ahead -= size
                progress.consumed += 1
                yield ready
        while window:
            progress.consumed += 1
            yield window.popleft()[0]
    finally:
        # Done, failed or closed early: no page of these files may be touched after we return,
        # since the caller may then change or truncate them.
        progress.consumed = 1 << 62
        for touched in touching:
            if not touched.cancel():
                touched.exception()
