"""The margin kernels alone: ns a row on one thread, per dtype and number of classes, for each
SIMD level this CPU has (issue 4). In-memory rows, no log, no accumulator.

    python benchmarks/bench_kernels.py                     # every level, a few seconds each
    python benchmarks/bench_kernels.py --levels avx2 --classes 10,100
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from aum_score import _core


def ns_per_row(z: np.ndarray, y: np.ndarray, bfloat16: bool, repeat: int) -> float:
    _core.margins(z, y, 1, bfloat16)  # warm: pages, caches
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        _core.margins(z, y, 1, bfloat16)
        best = min(best, time.perf_counter() - start)
    return best / len(y) * 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(_core.simd_levels()))
    parser.add_argument("--classes", default="10,16,32,64,100,128,256,1000")
    parser.add_argument("--dtypes", default="float16,bfloat16,float32,float64")
    parser.add_argument("--values", type=int, default=8_000_000, help="logits a timed call reads")
    parser.add_argument("--repeat", type=int, default=7, help="best of N")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    widths = [int(c) for c in args.classes.split(",")]
    print(f"ns a row, one thread, best of {args.repeat} ({args.values:,} logits a call)\n")
    print("| level | dtype | " + " | ".join(f"C = {c}" for c in widths) + " |")
    print("|---|---|" + "---:|" * len(widths))
    for level in args.levels.split(","):
        _core.set_simd_level(level)
        for dtype in args.dtypes.split(","):
            cells = []
            for classes in widths:
                rows = max(1000, args.values // classes)
                z = rng.standard_normal((rows, classes), dtype=np.float32)
                if dtype == "bfloat16":
                    z = (z.view(np.uint32) >> 16).astype(np.uint16)
                else:
                    z = z.astype(dtype)
                y = rng.integers(0, classes, rows)
                cells.append(f"{ns_per_row(z, y, dtype == 'bfloat16', args.repeat):.1f}")
            print(f"| {level} | {dtype} | " + " | ".join(cells) + " |")
    _core.set_simd_level(_core.simd_levels()[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
