#!/usr/bin/env python
"""A log larger than this machine's RAM, scored from a cold page cache (issue 4, target 5).

    python benchmarks/bench_larger_than_ram.py --workdir /big/disk/aum-ram   # ~26 GB, ~5 min
    python benchmarks/bench_larger_than_ram.py --gb 2 --workdir /tmp/x      # harness smoke test

Writes a C = 1000 float16 log of --gb gigabytes (default: RAM + 2 GB) as Arrow IPC files of
8 MB record batches (rows shuffled per epoch, as LogitWriter writes them), then, each from a cold
page cache (``echo 1 > /proc/sys/vm/drop_caches`` when run as root; otherwise the log, larger
than RAM, evicts its own first files by the time they are read again):

- ``cat FILES > /dev/null``: the plain sequential read of the same files, the I/O floor;
- ``aum-score score LOG`` with read-ahead windows of --windows megabytes (0: off): a helper
  thread brings in the batches ahead of the scorer while it scores;

in --rounds rounds (on a VM the host caches the virtual disk too, so each round's methods are
compared with that round's ``cat``), and the command's peak private memory (the memory-mapped
log is file-backed, not counted).
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



def aum_score_command() -> str:
    """The `aum-score` script beside this interpreter (a venv not activated), else on PATH."""
    beside = Path(sys.executable).parent / "aum-score"
    return str(beside) if beside.exists() else "aum-score"

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
    p.add_argument("--windows", default="0,64", help="read-ahead windows to time, in MB (0: off)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of cat + every window")
    args = p.parse_args(argv)

    log = args.workdir / "log"
    if not args.reuse:
        print(f"writing a {args.gb:g} GB log to {log} ...", file=sys.stderr)
        write_log(log, args.gb, args.samples)
    files = sorted(str(f) for f in log.glob("*.arrow"))
    size = sum(os.path.getsize(f) for f in files)
    rows = sum(count_rows(f) for f in files)
    score = [aum_score_command(), "score", str(log), "--json", "-q", "--threads", str(args.threads)]
    windows = [float(w) for w in args.windows.split(",")]
    gb = size / 1e9

    # Rounds of cat then every window, each from a cold cache: on a VM the host's own cache warms
    # up over a run, so each method is compared with the cat of its own round.
    cache = drop_caches()
    rounds = []
    for _ in range(args.rounds):
        drop_caches()
        cat = timed(" ".join(["cat", *files, "> /dev/null"]), shell=True)
        runs = []
        for mb in windows:
            drop_caches()
            env = {**os.environ, "AUM_SCORE_READ_AHEAD": f"{mb:g}"}
            runs.append((mb, *command_peak_anon_mb(score, env=env)))
        rounds.append((cat, runs))

    lines = [
        f"Machine: {machine()}; {cache}.",
        f"Command: `python benchmarks/bench_larger_than_ram.py {' '.join(argv or sys.argv[1:])}`",
        "",
        f"Log: {len(files)} epoch files, {gb:.1f} GB ({rows:,} rows x {CLASSES} float16 "
        f"logits); RAM {ram:.1f} GB.",
        "",
        "| round | `cat FILES > /dev/null` | "
        + " | ".join(
            "`aum-score score`, " + ("read-ahead off" if mb == 0 else f"read-ahead {mb:g} MB")
            for mb in windows
        )
        + " |",
        "|---" * (len(windows) + 2) + "|",
    ]
    for number, (cat, runs) in enumerate(rounds, 1):
        cells = [f"{cat:.1f} s ({gb / cat:.2f} GB/s)"]
        cells += [f"{sec:.1f} s ({gb / sec:.2f} GB/s, {cat / sec:.2f} x cat)" for _, sec, _ in runs]
        lines.append(f"| {number} | " + " | ".join(cells) + " |")
    peaks = [peak for _, runs in rounds for _, _, peak in runs]
    lines += ["", f"Peak private memory of the command: {max(peaks):.0f} MB (log: {gb:.1f} GB)."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
