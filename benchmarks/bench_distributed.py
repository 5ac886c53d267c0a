"""Scale-out on Dask (issue 7): throughput of the single-process scorer against a LocalCluster
of 1 and 2 worker processes, on the same float16 log, in one run; the per-worker rate at
ImageNet-21k's C; and the memory a per-sample state costs.

    python benchmarks/bench_distributed.py [--rows 40000] [--classes 1000] [--repeat 3]

Needs ``pip install "aum-score[distributed]"``. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
from pyarrow import ipc

import aum_score
from aum_score import _core


def write_log(directory: Path, rows: int, classes: int, epochs: int, files_per_epoch: int) -> int:
    """float16 logits, labels, int ids 0..rows-1 shuffled per epoch; returns the log's bytes."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    labels = rng.integers(0, classes, rows)
    total = 0
    for epoch in range(epochs):
        order = rng.permutation(rows)
        for part, idx in enumerate(np.array_split(order, files_per_epoch)):
            logits = rng.standard_normal((len(idx), classes), dtype=np.float32).astype(np.float16)
            table = pa.table(
                {
                    "sample_id": pa.array(idx, pa.int64()),
                    "label": pa.array(labels[idx], pa.int64()),
                    "logits": pa.FixedSizeListArray.from_arrays(
                        pa.array(logits.reshape(-1)), classes
                    ),
                }
            ).replace_schema_metadata({"epoch": str(epoch)})
            path = directory / f"epoch_{epoch}_part{part}.arrow"
            with ipc.new_file(str(path), table.schema) as writer:
                for batch in table.to_batches(max_chunksize=8192):
                    writer.write_batch(batch)
            total += path.stat().st_size
    return total


def write_compact(path: Path, rows: int, classes: int) -> int:
    """A compact log (aum_score.compact's columns: a few numbers per row instead of C logits)."""
    rng = np.random.default_rng(2)
    table = pa.table(
        {
            "sample_id": pa.array(rng.permutation(rows), pa.int64()),
            "label": pa.array(rng.integers(0, classes, rows), pa.int64()),
            "label_logit": pa.array(rng.standard_normal(rows, dtype=np.float32)),
            "other_logit": pa.array(rng.standard_normal(rows, dtype=np.float32)),
            "other_class": pa.array(rng.integers(0, classes, rows), pa.int32()),
            "logsumexp": pa.array(rng.standard_normal(rows, dtype=np.float32)),
        }
    ).replace_schema_metadata({"aum_score_log": "compact-1", "classes": str(classes)})
    with ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table, max_chunksize=1 << 16)
    return rows


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def state_bytes_per_sample(samples: int) -> dict:
    """Resident bytes of a state per sample (dense and sparse int ids), and serialised bytes."""
    process = psutil.Process()
    out = {}
    for kind in ("dense", "sparse"):
        rng = np.random.default_rng(1)
        ids = (
            np.arange(samples, dtype=np.int64)
            if kind == "dense"
            else rng.integers(-(2**62), 2**62, samples, dtype=np.int64)
        )
        margins, labels = np.ones(samples), np.zeros(samples, np.int64)
        before = process.memory_info().rss
        state = _core.Accumulator(10, False)
        state.add_margins(margins, labels, ids)
        out[f"resident_{kind}"] = (process.memory_info().rss - before) / samples
        data = state.to_bytes()
        out["serialised"] = len(data) / samples
        del state, data
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=40000, help="samples (rows per epoch)")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--files-per-epoch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    print(f"cores: {os.cpu_count()}, aum-score build: {aum_score.build_info()}")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log"
        size = write_log(log, args.rows, args.classes, args.epochs, args.files_per_epoch)
        rows = args.rows * args.epochs
        print(f"log: {rows} rows x C={args.classes} float16, {size / 1e9:.2f} GB in "
              f"{args.epochs * args.files_per_epoch} files")  # fmt: skip
        aum_score.score(log)  # page cache warm for every contender
        table = []
        for threads in (1, 2):
            seconds = best_of(args.repeat, lambda t=threads: aum_score.score(log, threads=t))
            table.append((f"single process, {threads} kernel thread(s)", seconds))
        for workers in (1, 2):
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            with cluster, Client(cluster) as client:
                aum_score.score(log, scheduler=client, mode="reduce")  # workers warm
                for mode in ("reduce", "shard"):
                    out = Path(tmp) / "dataset"
                    seconds = best_of(
                        args.repeat,
                        lambda m=mode, c=client, o=out: aum_score.distributed.score(
                            log, scheduler=c, mode=m, output=o if m == "shard" else None
                        ),
                    )
                    table.append((f"Dask LocalCluster, {workers} worker(s), {mode}", seconds))
        print("\n| scorer | seconds | rows/s | GB/s |\n| --- | --- | --- | --- |")
        for name, seconds in table:
            print(
                f"| {name} | {seconds:.2f} | {rows / seconds:,.0f} | {size / seconds / 1e9:.2f} |"
            )
        # Per-worker rate at ImageNet-21k's C (one kernel thread: one Dask task slot).
        big = Path(tmp) / "big"
        big_rows, big_c = 6000, 21843
        big_size = write_log(big, big_rows, big_c, 1, 1)
        aum_score.score(big, threads=1)
        seconds = best_of(args.repeat, lambda: aum_score.score(big, threads=1))
        print(f"\nC={big_c} float16, {big_rows} rows ({big_size / 1e9:.2f} GB), one thread: "
              f"{seconds:.2f} s = {big_rows / seconds:,.0f} rows/s = "
              f"{big_size / seconds / 1e9:.2f} GB/s")  # fmt: skip
        compact = Path(tmp) / "compact.arrow"
        compact_rows = write_compact(compact, 4_000_000, big_c)
        aum_score.score(compact, threads=1)
        seconds = best_of(args.repeat, lambda: aum_score.score(compact, threads=1))
        gigabytes = compact.stat().st_size / 1e9
        print(f"compact log, C={big_c}, {compact_rows} rows ({gigabytes:.2f} GB), one thread: "
              f"{seconds:.2f} s = {compact_rows / seconds:,.0f} rows/s")  # fmt: skip
    per_sample = state_bytes_per_sample(2_000_000)
    print("\nstate per sample (2M samples): " + ", ".join(
        f"{k} {v:.0f} B" for k, v in per_sample.items()))  # fmt: skip


if __name__ == "__main__":
    main()
