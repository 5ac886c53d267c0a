#!/usr/bin/env python
"""A log larger than this machine's RAM, scored from a cold page cache (issue 4, target 5).

    python benchmarks/bench_larger_than_ram.py --workdir /big/disk/aum-ram   # ~26 GB, ~5 min
    python benchmarks/bench_larger_than_ram.py --gb 2 --workdir /tmp/x      # harness smoke test

Writes a C = 1000 float16 log of --gb gigabytes (default: RAM + 2 GB) as Arrow IPC files of
8 MB record batches (rows shuffled per epoch, as LogitWriter writes them), then, each from a cold
page cache (``echo 1 > /proc/sys/vm/drop_caches`` when run as root; otherwise the log, larger
than RAM, evicts its own first files by the time they are read again):

- ``cat FILES > /dev/null``: the plain sequential read of the same files, the I/O floor;
- ``aum-score score LOG`` with read-ahead (the default: a helper thread brings in the next
  record batch while the current one is scored);
- the same with ``AUM_SCORE_READ_AHEAD=0``, for the overlap's effect;

and the command's peak private memory (the memory-mapped log is file-backed, not counted).
Timings are reported, never asserted. The log is kept in --workdir for reruns (--reuse).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from bench_perf import command_peak_anon_mb, machine
from pyarrow import ipc

CLASSES = 1000
BATCH_ROWS = 4096  # 8 MB of float16 logits


def write_log(root: Path, gigabytes: float, samples: int, seed: int = 0) -> tuple[int, int]:
    """Epoch files until the logits reach ``gigabytes``; returns (rows, epochs)."""
    rng = np.random.default_rng(seed)
    rows_wanted = int(gigabytes * 1e9 / (CLASSES * 2))
    epochs = max(1, -(-rows_wanted // samples))
    labels = rng.integers(0, CLASSES, samples)
    # A few distinct blocks of logits, reused: the content does not change the read path.
    blocks = [
        rng.standard_normal((BATCH_ROWS, CLASSES), dtype=np.float32).astype(np.float16)
        for _ in range(4)
    ]
    schema = pa.schema(
        [
            ("sample_id", pa.int64()),
            ("label", pa.int64()),
            ("logits", pa.list_(pa.float16(), CLASSES)),
        ]
    )
    root.mkdir(parents=True, exist_ok=True)
    rows = 0
    for epoch in range(epochs):
        order = rng.permutation(samples)
        with ipc.new_file(str(root / f"epoch_{epoch:04d}.arrow"), schema) as sink:
            for i, start in enumerate(range(0, samples, BATCH_ROWS)):
                ids = order[start : start + BATCH_ROWS]
                z = blocks[i % len(blocks)][: len(ids)]
                logits = pa.FixedSizeListArray.from_arrays(pa.array(z.reshape(-1)), CLASSES)
                sink.write_batch(
                    pa.record_batch([pa.array(ids), pa.array(labels[ids]), logits], schema=schema)
                )
        rows += samples
        print(f"  wrote epoch {epoch + 1}/{epochs}", file=sys.stderr, flush=True)
    return rows, epochs


def count_rows(path: str) -> int:
    with pa.memory_map(path) as source:
        reader = ipc.open_file(source)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def drop_caches() -> str:
    subprocess.run(["sync"], check=False)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return "page cache dropped before each run"
    except OSError:
        return "page cache not dropped (not root): the log, larger than RAM, evicts itself"


def timed(command: list[str], env: dict | None = None, shell: bool = False) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env, shell=shell)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, required=True, help="where the log is written")
    p.add_argument("--gb", type=float, default=round(ram + 2), help="log size (default RAM+2)")
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--reuse", action="store_true", help="score the log already in --workdir")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    log = args.workdir / "log"
    if not args.reuse:
        print(f"writing a {args.gb:g} GB log to {log} ...", file=sys.stderr)
        write_log(log, args.gb, args.samples)
    files = sorted(str(f) for f in log.glob("*.arrow"))
    size = sum(os.path.getsize(f) for f in files)
    rows = sum(count_rows(f) for f in files)
    score = ["aum-score", "score", str(log), "--json", "-q", "--threads", str(args.threads)]
    no_read_ahead = {**os.environ, "AUM_SCORE_READ_AHEAD": "0"}

    cache = drop_caches()
    cat = timed(" ".join(["cat", *files, "> /dev/null"]), shell=True)
    drop_caches()
    with_read_ahead, peak = command_peak_anon_mb(score)
    drop_caches()
    without = timed(score, env=no_read_ahead)
    gb = size / 1e9
    lines = [
        f"Machine: {machine()}; {cache}.",
        f"Command: `python benchmarks/bench_larger_than_ram.py {' '.join(argv or sys.argv[1:])}`",
        "",
        f"Log: {len(files)} epoch files, {gb:.1f} GB ({rows:,} rows x {CLASSES} float16 "
        f"logits); RAM {ram:.1f} GB.",
        "",
        "| cold-cache read of the whole log | seconds | GB/s | vs `cat` |",
        "|---|---:|---:|---:|",
        f"| `cat FILES > /dev/null` | {cat:.1f} | {gb / cat:.2f} | 1.00 |",
        f"| `aum-score score`, read-ahead on (default) | {with_read_ahead:.1f} | "
        f"{gb / with_read_ahead:.2f} | {cat / with_read_ahead:.2f} |",
        f"| `aum-score score`, `AUM_SCORE_READ_AHEAD=0` | {without:.1f} | {gb / without:.2f} | "
        f"{cat / without:.2f} |",
        "",
        f"Peak private memory of the command: {peak:.0f} MB (the log is {gb:.1f} GB).",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
