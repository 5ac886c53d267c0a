"""Corrupted files (random bytes overwritten) must give LogFormatError, never a crash, a hang or
another exception: the reader validates before the core reads any buffer."""

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aum_score


def _log_bytes(fmt: str, string_ids: bool) -> bytes:
    rng = np.random.default_rng(0)
    n, c = 40, 5
    ids = pa.array([f"id{i}" for i in range(n)]) if string_ids else pa.array(np.arange(n) * 3)
    logits = pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * c).astype("f4")), c)
    table = pa.table({"sample_id": ids, "logits": logits, "label": rng.integers(0, c, n)})
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        pq.write_table(table, sink, row_group_size=16)
    else:
        new = pa.ipc.new_file if fmt == "file" else pa.ipc.new_stream
        with new(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=16)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("fmt", ["file", "stream", "parquet"])
@pytest.mark.parametrize("string_ids", [False, True])
def test_corrupted_bytes_never_crash(tmp_path, fmt, string_ids):
    good = _log_bytes(fmt, string_ids)
    path = tmp_path / ("log.parquet" if fmt == "parquet" else "log.arrow")
    rand = random.Random(f"{fmt}{string_ids}")
    outcomes = {"scored": 0, "rejected": 0}
    for _ in range(120):
        data = bytearray(good)
        for _ in range(rand.randint(1, 8)):
            data[rand.randrange(len(data))] = rand.randrange(256)
        path.write_bytes(bytes(data))
        try:
            result = aum_score.score(path)
        except aum_score.LogFormatError as exc:
            assert str(path) in str(exc)
            outcomes["rejected"] += 1
        else:
            assert result.table.num_rows > 0
            outcomes["scored"] += 1
    # Corruption of the logits values themselves still scores; structural damage is rejected.
    assert outcomes["rejected"] > 0
