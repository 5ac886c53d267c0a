#!/usr/bin/env python
"""Lookups of known sample ids and the result table's gather, alone (issue 4).

    python benchmarks/bench_lookups.py                 # 1M ids, best of 5, 1 and 2 threads
    python benchmarks/bench_lookups.py --samples 200000 --repeat 9

The parts of scoring that differ between dense, sparse and string ids, each timed on its own
(no log, no margins): interning 1M known string ids (`Accumulator.intern`, the lookup a later
epoch makes per row), adding a batch of 1M known sparse int64 ids (`Accumulator.add`, 2 classes:
the id lookup and the scatter dominate), and putting four 1M-sample columns in a random order
(`_core.take` against numpy's `a[order]`). Timings are never asserted; compare in one run.
To compare builds, run it with each build's package first on `sys.path`, alternating.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from aum_score import _core
from aum_score.logs import string_buffers


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5, help="best of N")
    args = p.parse_args(argv)
    n, rng = args.samples, np.random.default_rng(0)

    # String ids as bench_perf.py writes them ("img_00000000_abcdef"), known, in a new order.
    ids = [f"img_{i:08d}_{h:06x}" for i, h in enumerate(rng.integers(0, 1 << 24, n))]
    strings = _core.Accumulator(10, True)
    strings.expect_samples(n)
    strings.intern(*string_buffers(pa.array(ids), "ids"))
    shuffled = string_buffers(pa.array([ids[i] for i in rng.permutation(n)]), "ids")

    # Sparse int64 ids over the whole range, known, in a new order.
    sparse_ids = rng.integers(-(2**62), 2**62, n)
    logits = rng.standard_normal((n, 2)).astype(np.float32)
    labels = rng.integers(0, 2, n)
    sparse = _core.Accumulator(2, False)
    sparse.expect_samples(n)
    sparse.add(logits, labels, sparse_ids)
    order = rng.permutation(n)
    batch = (logits[order], labels[order], sparse_ids[order])

    columns = [rng.standard_normal(n), rng.integers(0, n, n), rng.integers(0, 9, n), rng.random(n)]
    jobs = {
        "intern known string ids": lambda t: strings.intern(*shuffled, threads=t),
        "add known sparse ids": lambda t: sparse.add(*batch, threads=t),
    }
    if hasattr(_core, "take"):  # (builds before it had no take: compare the rest with them)
        jobs["take 4 columns"] = lambda t: [_core.take(c, order, t) for c in columns]
    # Interleaved rounds, best of each: the machine's drift hits every variant alike.
    times: dict[tuple[str, int], float] = {}
    numpy_take = float("inf")
    for _ in range(args.repeat):
        for name, job in jobs.items():
            for threads in (1, 2):
                key = (name, threads)
                times[key] = min(times.get(key, float("inf")), timed(job, threads))
        numpy_take = min(numpy_take, timed(lambda: [c[order] for c in columns]))
    print(f"{n:,} samples, best of {args.repeat} interleaved rounds:")
    for name in jobs:
        one, two = times[name, 1] * 1e3, times[name, 2] * 1e3
        print(f"  {name}: {one:.1f} ms on 1 thread, {two:.1f} ms on 2")
    print(f"  numpy a[order], 4 columns: {numpy_take * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
