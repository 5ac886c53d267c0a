"""Local log files, memory-mapped: record batches read from them are views of the mapping, and
a finished file is unmapped off the scoring threads."""

from __future__ import annotations

import mmap
import os
import queue
import threading
import time

import pyarrow as pa


def open_mapped(path: str) -> tuple[pa.NativeFile, mmap.mmap | None]:
    """A local file, memory-mapped, and its mapping (None: read as a plain file).

    Mapped with Python's mmap and read through a BufferReader rather than ``pa.memory_map``:
    Arrow's memory-mapped file calls ``madvise(WILLNEED)`` on every range it reads, which on a
    warm cache only walks the page cache again (measured: 10% of the time to read a log of
    small rows). Cold files get their read-ahead from read_ahead.py instead. Files mmap refuses
    (empty, special) are read as plain files, and Arrow then reports what is wrong with them.
    Pass the mapping to :func:`close_when_unused` when done with the file."""
    with open(path, "rb") as f:
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):
            return pa.OSFile(path), None
    return pa.BufferReader(pa.py_buffer(mapped)), mapped


#: How long the closer waits for the last user of a mapping (a caller holding on to batches);
#: after that the mapping goes whenever that user lets go of it.
CLOSE_WAIT_SECONDS = 30.0
_closing: queue.SimpleQueue = queue.SimpleQueue()
_closer: threading.Thread | None = None
_closer_lock = threading.Lock()


def close_when_unused(mapping: mmap.mmap | None) -> None:
    """Unmap ``mapping`` on a helper thread as soon as no buffer uses it any more.

    Unmapping a file takes the kernel as long as a good part of reading it (every page-table
    entry is cleared; measured: 15-30% of scoring a warm log when done on the scorer's
    thread), and it does not need the scorer: the helper does it when a core is idle (at
    Linux's idle priority), overlapping the scoring or after it."""
    global _closer
    if mapping is None:
        return
    with _closer_lock:
        if _closer is None:
            # A daemon: a mapping still in use at exit must not hold the interpreter up.
            _closer = threading.Thread(target=_close_loop, name="aum-unmap", daemon=True)
            _closer.start()
    _closing.put((mapping, time.monotonic() + CLOSE_WAIT_SECONDS))


def _forget_closer() -> None:
    """In a forked child the helper thread does not exist: start another when needed."""
    global _closer, _closing, _closer_lock
    _closer, _closing, _closer_lock = None, queue.SimpleQueue(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_closer)


#: Mapped bytes waiting to be unmapped beyond which the helper stops waiting for an idle core
#: (on a machine kept busy, the page tables of a long log would otherwise pile up). Leaving the
#: idle class needs RLIMIT_NICE > 0 or privileges; without, the helper stays idle-only.
MAX_WAITING_BYTES = 2 << 30


def _set_idle_priority(idle: bool) -> None:
    """Linux's idle scheduling class for this thread (runs only on an idle core), or back."""
    try:
        policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
        os.sched_setscheduler(0, policy, os.sched_param(0))  # 0: this thread
    except (AttributeError, OSError):
        pass


def _close_loop() -> None:
    # Only when a core is idle: when the scorer keeps every core busy, unmapping now would stall
    # its threads (a team waits for its slowest), and it can as well happen once they are done.
    idle = True
    _set_idle_priority(idle)
    pending: list[tuple[mmap.mmap, float]] = []
    while True:
        try:  # wait for work; while some is pending, look again every 2 ms
            pending.append(_closing.get(timeout=0.002 if pending else None))
        except queue.Empty:
            pass
        still = []
        for mapping, deadline in pending:
            try:
                mapping.close()  # raises while a buffer still uses the mapping
            except BufferError:
                if time.monotonic() < deadline:
                    still.append((mapping, deadline))
        pending = still
        waiting = sum(len(mapping) for mapping, _ in pending) <= MAX_WAITING_BYTES
        if waiting != idle:
            idle = waiting
            _set_idle_priority(idle)
