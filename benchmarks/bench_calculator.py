#!/usr/bin/env python
"""Per-update overhead of ``aum_score.AUMCalculator`` against the reference ``aum.AUMCalculator``.

    python benchmarks/bench_calculator.py                 # C = 10 and 1000, batches 64/256/1024
    python benchmarks/bench_calculator.py --updates 500 --repeat 5

Each calculator gets the same torch CPU float32 batches (ids a list of ints, as the reference
expects) for an epoch-like sweep over 4 x batch samples; the time per ``update`` call is the best
of ``--repeat`` sweeps. Both calculators' ``finalize`` outputs are compared once per setting.
Timings are printed (a markdown table), never asserted; the exit status is 1 only when the two
calculators' ``aum_values.csv`` differ.
"""

from __future__ import annotations

import argparse
import filecmp
import platform
import sys
import tempfile
import time
from functools import partial
from importlib.metadata import version
from pathlib import Path

import numpy as np

import aum_score

try:
    import aum
    import torch
except ImportError as exc:  # the reference needs torch and pandas
    sys.exit(f"this benchmark needs the reference library `aum` and torch: {exc}")


def batches(classes: int, batch: int, updates: int, seed: int) -> list[tuple]:
    """``updates`` batches over 4 x batch samples, ids in shuffled order as a loader gives."""
    rng = np.random.default_rng(seed)
    samples = 4 * batch
    out = []
    for k in range(updates):
        if k % 4 == 0:
            order = rng.permutation(samples)
        ids = order[(k % 4) * batch : (k % 4 + 1) * batch]
        logits = torch.from_numpy(rng.standard_normal((batch, classes), dtype=np.float32))
        targets = torch.from_numpy(rng.integers(0, classes, batch))
        out.append((logits, targets, ids.tolist()))
    return out


def per_update(make, data: list[tuple], repeat: int) -> tuple[float, object]:
    """Best seconds per update over ``repeat`` sweeps, and the last calculator."""
    best = float("inf")
    for _ in range(repeat):
        calc = make()
        started = time.perf_counter()
        for logits, targets, ids in data:
            calc.update(logits, targets, ids)
        best = min(best, (time.perf_counter() - started) / len(data))
    return best, calc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--updates", type=int, default=200, help="updates per sweep")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the reference's tensor ops on tiny batches: threads only add noise

    print(
        f"# AUMCalculator per-update overhead ({platform.processor() or platform.machine()}, "
        f"aum {version('aum')}, "
        f"aum-score {aum_score.__version__}, torch {torch.__version__})\n"
    )
    print("| C | batch | aum (us/update) | aum-score (us/update) | speed-up | same CSV |")
    print("| ---: | ---: | ---: | ---: | ---: | :---: |")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for classes in args.classes:
            for batch in args.batches:
                data = batches(classes, batch, args.updates, seed=classes * 7919 + batch)
                where = Path(tmp) / f"{classes}_{batch}"
                theirs, ref = per_update(
                    partial(aum.AUMCalculator, str(where / "aum")), data, args.repeat
                )
                ours, calc = per_update(
                    partial(aum_score.AUMCalculator, where / "ours"), data, args.repeat
                )
                ref.finalize()
                calc.finalize()
                same = filecmp.cmp(
                    where / "aum" / "aum_values.csv",
                    where / "ours" / "aum_values.csv",
                    shallow=False,
                )
                failed |= not same
                print(
                    f"| {classes} | {batch} | {theirs * 1e6:.0f} | {ours * 1e6:.0f} | "
                    f"{theirs / ours:.0f}x | {'yes' if same else 'NO'} |"
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
