"""Getting a Dask client, and sizing a run against the workers' memory."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import LogFormatError

MODES = ("auto", "reduce", "shard")

#: Peak worker memory per sample of the reduce mode's last merge: the merged state being built
#: (a 16-byte slot and its label's source, its key in the order list and the id index:
#: ~44-60 bytes), the incoming
#: partial state (another), and both states' serialised bytes (40 bytes each). Measured in
#: benchmarks/bench_distributed.py (docs/distributed.md); rounded up.
REDUCE_BYTES_PER_SAMPLE = 256
#: The same for one shard's merge, plus the shard's result table while it is written.
SHARD_BYTES_PER_SAMPLE = 320
#: Share of a worker's memory limit a run plans to use (Dask pauses a worker at 80%).
MEMORY_FRACTION = 0.5


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise LogFormatError(
            "distributed scoring needs Dask: pip install 'aum-score[distributed]'"
        ) from None
    return distributed


@contextmanager
def dask_client(scheduler: Any = None, workers: int | None = None) -> Iterator[Any]:
    """A client of ``scheduler`` (an address such as ``tcp://10.0.0.1:8786``, or a
    ``distributed.Client`` / cluster object, used as it is), else of a local cluster of
    ``workers`` worker processes that lives as long as the run."""
    distributed = _import_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
    elif scheduler is not None and not isinstance(scheduler, (str, os.PathLike)):
        with distributed.Client(scheduler) as client:  # a cluster object
            yield client
    elif scheduler is not None:
        with distributed.Client(os.fspath(scheduler), timeout="30s") as client:
            yield client
    else:
        if workers is None or workers < 1:
            raise LogFormatError("give a scheduler address or a number of workers (>= 1)")
        with (
            distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client


def worker_memory(client: Any) -> tuple[int, int | None]:
    """(workers, the smallest worker memory limit in bytes or None when unlimited)."""
    infos = (
        client.scheduler_info(n_workers=-1)["workers"]
        if _takes_n(client)
        else (client.scheduler_info()["workers"])
    )
    if not infos:
        raise LogFormatError("the Dask cluster has no workers")
    limits = [int(w.get("memory_limit") or 0) for w in infos.values()]
    return len(infos), (min(limits) if all(limits) else None)


def _takes_n(client: Any) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def choose_mode(
    mode: str, samples: int | None, workers: int, memory: int | None, shards: int | None
) -> tuple[str, int]:
    """("reduce" | "shard", shards): reduce when the run's per-sample state fits one worker's
    share of memory (or its size is unknown), else shards sized to fit one worker each."""
    if mode not in MODES:
        raise LogFormatError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    budget = memory * MEMORY_FRACTION if memory else None
    if mode == "auto":
        too_big = samples is not None and budget and samples * REDUCE_BYTES_PER_SAMPLE > budget
        mode = "shard" if too_big else "reduce"
    if mode == "reduce":
        return mode, 1
    if shards is None:
        needed = math.ceil(samples * SHARD_BYTES_PER_SAMPLE / budget) if samples and budget else 1
        shards = max(workers, needed)
    if shards < 1:
        raise LogFormatError(f"shards must be at least 1, got {shards}")
    return mode, shards
