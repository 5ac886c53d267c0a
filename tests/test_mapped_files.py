"""Memory-mapped log files: a finished file is unmapped by a helper thread once nothing reads
from it, and not while something does."""

from __future__ import annotations

import gc
import mmap
import os
import time

import pyarrow as pa
import pytest
from reference import make_epochs, write_log

import aum_score
from aum_score import mapped_files


def wait_until(condition, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_a_mapping_is_closed_by_the_helper_once_its_last_batch_is_gone(tmp_path, rng):
    write_log(tmp_path, make_epochs(rng, n_epochs=1))
    path = str(next(tmp_path.glob("*.arrow")))
    source, mapping = mapped_files.open_mapped(path)
    batch = pa.ipc.open_file(source).get_batch(0)
    source.close()
    mapped_files.close_when_unused(mapping)
    assert not wait_until(lambda: mapping.closed, 0.2)  # a batch still reads from it
    assert batch.column("label").to_pylist()  # and it still can
    del batch, source
    assert wait_until(lambda: mapping.closed)


def test_a_mapping_still_in_use_after_the_wait_is_left_to_its_user(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(mapped_files, "CLOSE_WAIT_SECONDS", 0.05)
    write_log(tmp_path, make_epochs(rng, n_epochs=1))
    path = str(next(tmp_path.glob("*.arrow")))
    source, mapping = mapped_files.open_mapped(path)
    batch = pa.ipc.open_file(source).get_batch(0)
    mapped_files.close_when_unused(mapping)
    source.close()
    time.sleep(0.3)
    assert not mapping.closed and batch.num_rows > 0
    del batch, source
    assert mapping.close() is None  # the user's to close (or the garbage collector's)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_unmaps_its_files_too(tmp_path, rng):
    """The helper thread does not survive a fork: the child starts its own."""

    def open_maps():
        return [m for m in gc.get_objects() if type(m) is mmap.mmap and not m.closed]

    write_log(tmp_path, make_epochs(rng, n_epochs=2))
    aum_score.score(tmp_path)  # the parent's helper thread exists now
    assert wait_until(lambda: not open_maps())  # (a child would inherit the parent's pending)
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 when every mapping it made is closed
        code = 1
        try:
            aum_score.score(tmp_path)
            code = 0 if wait_until(lambda: not open_maps()) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_mappings_are_closed_when_too_many_bytes_wait(tmp_path, rng, monkeypatch):
    """Past the waiting limit the helper leaves the idle priority and still closes them all."""
    monkeypatch.setattr(mapped_files, "MAX_WAITING_BYTES", 0)
    write_log(tmp_path, make_epochs(rng, n_epochs=3))
    mappings = []
    for path in sorted(tmp_path.glob("*.arrow")):
        source, mapping = mapped_files.open_mapped(str(path))
        assert pa.ipc.open_file(source).get_batch(0).num_rows > 0
        del source
        mappings.append(mapping)
        mapped_files.close_when_unused(mapping)
    assert len(mappings) == 3 and wait_until(lambda: all(m.closed for m in mappings))
