"""Where the AUMs' time goes, log file by log file: each epoch's file added on its own, then
the result gather, on the logs `bench_perf.py --workdir DIR` wrote (issue 4). With
`--baseline PKGDIR` the same runs alternate with another build of aum-score, installed with
`pip install --no-deps --target PKGDIR <checkout>`, each in its own process: a before/after on
one machine in one run.

    python benchmarks/bench_epochs.py --logs /tmp/perf --cases c10-f32,c10-sparse,c10-string
    python benchmarks/bench_epochs.py --logs /tmp/perf --baseline /tmp/oldpkg --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(logs: Path, cases: list[str], threads: int, repeat: int) -> dict[str, list[float]]:
    """Best of `repeat` per file (ms): the first epoch's file, the next ones, then the gather."""
    sys.path.insert(0, str(HERE))
    from bench_perf import AddSettings, Sources, accumulate_log, expect_samples, open_log

    from aum_score import _core

    out = {}
    for case in cases:
        files = open_log(logs / case)
        best: list[float] = []
        for _ in range(repeat):
            acc = _core.Accumulator(files[0].classes, files[0].string_ids)
            expect_samples(acc, files[0])
            times = []
            for i in range(len(files)):
                start = time.perf_counter()
                settings = AddSettings(threads=threads)
                accumulate_log(acc, files[i : i + 1], Sources(), slice(None), settings)
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            if hasattr(acc, "aums"):  # the AUMs as score() takes them
                acc.aums()
            else:  # a build from before aums(): the sums, divided in numpy
                _, _, sums, counts = acc.arrays()
                sums / counts
            times.append(time.perf_counter() - start)
            best = times if not best else [min(a, b) for a, b in zip(best, times)]
        out[case] = [round(t * 1e3, 1) for t in best]
    return out


def run_child(args: argparse.Namespace, package: str | None) -> dict[str, list[float]]:
    """One measurement in a fresh process, importing aum-score from `package` if given."""
    env = dict(os.environ)
    if package:
        env["AUM_BENCH_PACKAGE"] = package
    command = [sys.executable, __file__, "--child", "--logs", str(args.logs), "--cases"]
    command += [args.cases, "--threads", str(args.threads), "--repeat", str(args.repeat)]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def use_package(path: str) -> None:
    """Import aum_score from `path` (a pip --target folder), not from an editable install."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
    sys.path.insert(0, path)
    import aum_score

    if not Path(aum_score.__file__).resolve().is_relative_to(Path(path).resolve()):
        raise SystemExit(f"aum_score came from {aum_score.__file__}, not {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=Path, default=Path("/tmp/perf"), help="bench_perf's workdir")
    parser.add_argument("--cases", default="c10-f32,c10-sparse,c10-string")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="best of N, in one process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per build, alternating")
    parser.add_argument("--baseline", help="a pip --target folder of another build")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if os.environ.get("AUM_BENCH_PACKAGE"):
            use_package(os.environ["AUM_BENCH_PACKAGE"])
        print(json.dumps(measure(args.logs, args.cases.split(","), args.threads, args.repeat)))
        return 0
    builds = [("baseline", args.baseline)] if args.baseline else []
    builds.append(("this tree", None))
    print(f"ms, best of {args.repeat} per process, {args.threads} threads:", end=" ")
    print("each epoch's file, then the gather\n")
    print("| build | log | first epoch | later epochs | gather | total |")
    print("|---|---|---:|---:|---:|---:|")
    for _ in range(args.rounds):
        for name, package in builds:
            for case, ms in run_child(args, package).items():
                later = ", ".join(f"{t:.1f}" for t in ms[1:-1])
                print(f"| {name} | {case} | {ms[0]:.1f} | {later} | {ms[-1]:.1f} | {sum(ms):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
