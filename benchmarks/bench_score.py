#!/usr/bin/env python
"""Time aum_score.score() against a careful streaming numpy AUM on the same synthetic log.

    python benchmarks/bench_score.py --samples 200000 --classes 100 --epochs 3

Writes a synthetic logit log with LogitWriter (shuffled rows per epoch, some label noise so
margins vary), then reads it twice: (a) numpy, batch by batch from memory-mapped Arrow files,
(b) aum_score.score(). Checks the AUMs agree (max abs diff < 1e-9) and prints a markdown table.
Timings are reported, never asserted. Exit status 1 only when the results disagree.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import ipc

import aum_score


def make_log(
    logdir: Path,
    samples: int,
    classes: int,
    epochs: int,
    noise: float,
    batch: int,
    dtype: str,
    seed: int,
) -> int:
    """Write the synthetic log; returns the number of rows. Memory: one batch at a time."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, samples)
    labels = truth.copy()
    noisy = rng.random(samples) < noise
    labels[noisy] = (truth[noisy] + rng.integers(1, classes, noisy.sum())) % classes
    difficulty = rng.uniform(0.0, 3.0, samples)  # per-sample signal strength, so AUMs spread out
    rows = 0
    with aum_score.LogitWriter(logdir) as writer:
        for epoch in range(epochs):
            order = rng.permutation(samples)  # rows in any order, as a shuffling loader gives
            for start in range(0, samples, batch):
                ids = order[start : start + batch]
                z = rng.standard_normal((len(ids), classes), dtype=np.float32)
                # The true class gains signal as "training" goes on.
                z[np.arange(len(ids)), truth[ids]] += difficulty[ids] * (epoch + 1) / epochs
                writer.write(ids, z.astype(dtype, copy=False), labels[ids])
                rows += len(ids)
            writer.end_epoch()
    return rows


def numpy_aum(logdir: Path, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Streaming numpy AUM over the log's files: returns (sample_ids, aum).

    Margins are computed in float32 for float16/float32 logits (float64 for float64), then summed
    in float64, the same numerics as the core. Ids are known to be 0..samples-1 here, so dense
    bincount accumulators stand in for the core's hash map (a best case for numpy).
    """
    sums = np.zeros(samples)
    counts = np.zeros(samples, dtype=np.int64)
    for path in sorted(logdir.glob("epoch_*.arrow")):
        with pa.memory_map(str(path)) as source:
            reader = ipc.open_file(source)
            for i in range(reader.num_record_batches):
                b = reader.get_batch(i)
                ids = b.column("sample_id").to_numpy()
                y = b.column("label").to_numpy()
                logits = b.column("logits")
                z = logits.values.to_numpy().reshape(len(b), logits.type.list_size)
                if z.dtype == np.float16:
                    z = z.astype(np.float32)
                if ids.min() < 0 or ids.max() >= samples:
                    raise ValueError(f"{path}: sample_id outside 0..{samples - 1}")
                rows = np.arange(len(b))
                zy = z[rows, y]
                other = z.copy()  # the memory-mapped batch is read-only
                other[rows, y] = -np.inf
                margin = (zy - other.max(axis=1)).astype(np.float64)
                sums += np.bincount(ids, weights=margin, minlength=samples)
                counts += np.bincount(ids, minlength=samples)
    seen = np.flatnonzero(counts)
    return seen, sums[seen] / counts[seen]


def best_time(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--noise", type=float, default=0.1, help="fraction of flipped labels")
    p.add_argument("--batch", type=int, default=8192, help="rows per writer.write() call")
    p.add_argument("--dtype", choices=["float16", "float32", "float64"], default="float32")
    p.add_argument("--threads", type=int, default=None, help="passed to aum_score.score()")
    p.add_argument("--repeat", type=int, default=1, help="report the best of N timings")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="write the log here and keep it (default: a temporary directory)",
    )
    args = p.parse_args(argv)

    root = args.workdir or Path(tempfile.mkdtemp(prefix="aum-bench-"))
    logdir = root / "logs"
    if logdir.exists():
        shutil.rmtree(logdir)
    try:
        t = time.perf_counter()
        rows = make_log(
            logdir,
            args.samples,
            args.classes,
            args.epochs,
            args.noise,
            args.batch,
            args.dtype,
            args.seed,
        )
        gen_s = time.perf_counter() - t
        gb = rows * args.classes * np.dtype(args.dtype).itemsize / 1e9
        disk_gb = sum(f.stat().st_size for f in logdir.iterdir()) / 1e9
        print(
            f"log: {rows} rows x {args.classes} {args.dtype} logits, {gb:.3f} GB of logits "
            f"({disk_gb:.3f} GB on disk), written in {gen_s:.1f} s to {logdir}",
            file=sys.stderr,
        )

        np_s, (ref_ids, ref_aum) = best_time(lambda: numpy_aum(logdir, args.samples), args.repeat)
        core_s, result = best_time(
            lambda: aum_score.score(logdir, threads=args.threads), args.repeat
        )

        table = result.table
        ids = table.column("sample_id").to_numpy()
        order = np.argsort(ids)
        ids, aum = ids[order], table.column("aum").to_numpy()[order]
        if not np.array_equal(ids, ref_ids):
            print(f"DISAGREE: aum_score has {len(ids)} samples, numpy {len(ref_ids)}")
            return 1
        diff = float(np.max(np.abs(aum - ref_aum))) if len(ids) else 0.0

        info = aum_score.build_info() if hasattr(aum_score, "build_info") else {}
        machine = platform.processor() or platform.machine()
        cores = len(os.sched_getaffinity(0))
        print(
            f"\n{machine}, {cores} cores available; aum_score {info.get('version', '?')}, "
            f"openmp={info.get('openmp', '?')}, threads={info.get('threads', '?')}; "
            f"best of {args.repeat}, warm page cache\n"
        )
        print("| method | rows | GB logits | seconds | rows/s | GB/s |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, s in (("numpy (streaming, bincount)", np_s), ("aum_score.score", core_s)):
            print(f"| {name} | {rows:,} | {gb:.3f} | {s:.3f} | {rows / s:,.0f} | {gb / s:.2f} |")
        print(
            f"\nspeed-up aum_score vs numpy: {np_s / core_s:.1f}x; "
            f"max |AUM diff| = {diff:.2e} ({'agree' if diff < 1e-9 else 'DISAGREE'})"
        )
        return 0 if diff < 1e-9 else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
