#!/usr/bin/env python
"""Speed of aum-score against the machine's floors, careful numpy and the `aum` library (issue 4).

    python benchmarks/bench_perf.py                 # small logs, a few minutes
    python benchmarks/bench_perf.py --scale issue   # the issue's sizes (~9 GB of logs)
    python benchmarks/bench_perf.py --write         # also update benchmarks/RESULTS.md

One run writes synthetic logit logs (Arrow IPC files of ~8 MB record batches, rows shuffled in
every epoch, as LogitWriter writes them), then times, interleaved and best of --repeat:

- floor: a memory-mapped read of every logits buffer with a trivial reduction (xor), one thread;
- scatter floor (C = 10): sums[id] += margin, counts[id] += 1 over precomputed margins, one thread;
- numpy: per record batch, label logit, masked row max, float64 bincount (dense ids only);
- `aum` library: AUMCalculator fed 256-row torch batches, on a subset, extrapolated;
- aum-score: aum_score.score() in this process (1 and 2 threads), and the whole `aum-score`
  command minus its time on a tiny log (start-up).

Every method's AUMs are checked against aum-score's (exact for `aum`, 1e-9 for numpy whose
per-batch bincount adds in another order). Timings are reported, never asserted; the exit status
is 1 only when results disagree. The log is in the page cache (just written): this measures
compute and memory bandwidth, not the disk.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import ipc

import aum_score
from aum_score import _core
from aum_score.logs import open_log
from aum_score.scoring import AddSettings, Sources, accumulate_log, expect_samples

BATCH_BYTES = 8 << 20  # LogitWriter's default record batch size
RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- bench_perf:start -->", "<!-- bench_perf:end -->"


# --- logs ---------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    samples: int
    classes: int
    epochs: int
    dtype: str = "float32"  # float16, float32, float64, bfloat16
    ids: str = "dense"  # dense (0..N-1), sparse (random int64), string
    path: Path | None = None
    rows: int = 0
    logit_bytes: int = 0
    times: dict = field(default_factory=dict)  # method -> best seconds
    peak_mb: float = 0.0  # peak private memory of the command
    notes: list = field(default_factory=list)

    @property
    def gb(self) -> float:
        return self.logit_bytes / 1e9



def aum_score_command() -> str:
    """The `aum-score` script beside this interpreter (a venv not activated), else on PATH."""
    beside = Path(sys.executable).parent / "aum-score"
    return str(beside) if beside.exists() else "aum-score"

def id_values(kind: str, samples: int, rng: np.random.Generator):
    if kind == "dense":
        return np.arange(samples, dtype=np.int64)
    if kind == "sparse":  # distinct random ids over the whole int64 range, negatives included
        ids = np.unique(rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, samples * 2))
        return rng.permutation(ids)[:samples]
    return np.array(
        [f"img_{i:08d}_{h:06x}" for i, h in enumerate(rng.integers(0, 1 << 24, samples))]
    )


def write_log(case: Case, root: Path, seed: int) -> None:
    """Epoch files of ~8 MB record batches; one batch in memory at a time."""
    rng = np.random.default_rng(seed)
    n, c = case.samples, case.classes
    ids = id_values(case.ids, n, rng)
    truth = rng.integers(0, c, n)
    labels = truth.copy()
    noisy = rng.random(n) < 0.1
    labels[noisy] = (truth[noisy] + rng.integers(1, c, noisy.sum())) % c
    strength = rng.uniform(0.0, 3.0, n)  # per-sample signal, so the AUMs spread out
    if case.dtype == "bfloat16":
        storage, itemsize = pa.uint16(), 2
    else:
        storage, itemsize = pa.from_numpy_dtype(np.dtype(case.dtype)), np.dtype(case.dtype).itemsize
    meta = {"aum_score.dtype": "bfloat16"} if case.dtype == "bfloat16" else None
    schema = pa.schema(
        [
            pa.field("sample_id", pa.string() if case.ids == "string" else pa.int64()),
            pa.field("label", pa.int64()),
            pa.field("logits", pa.list_(storage, c), metadata=meta),
        ]
    )
    per_batch = max(1, BATCH_BYTES // (c * itemsize))
    case.path = root / case.name
    case.path.mkdir(parents=True, exist_ok=True)
    for epoch in range(case.epochs):
        order = rng.permutation(n)
        with ipc.new_file(str(case.path / f"epoch_{epoch:04d}.arrow"), schema) as sink:
            for start in range(0, n, per_batch):
                rows = order[start : start + per_batch]
                z = rng.standard_normal((len(rows), c), dtype=np.float32)
                z[np.arange(len(rows)), truth[rows]] += strength[rows] * (epoch + 1) / case.epochs
                if case.dtype == "bfloat16":  # round to nearest even, keep the top 16 bits
                    u = z.view(np.uint32)
                    flat = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).reshape(-1)
                else:
                    flat = z.astype(case.dtype).reshape(-1)
                logits = pa.FixedSizeListArray.from_arrays(pa.array(flat, storage), c)
                sink.write_batch(
                    pa.record_batch(
                        [pa.array(ids[rows]), pa.array(labels[rows]), logits], schema=schema
                    )
                )
        case.rows += n
    case.logit_bytes = case.rows * c * itemsize


def batches(path: Path):
    for f in sorted(path.glob("*.arrow")):
        with pa.memory_map(str(f)) as source:
            reader = ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)


def logits_of(batch: pa.RecordBatch) -> np.ndarray:
    col = batch.column("logits")
    return col.values.to_numpy(zero_copy_only=True).reshape(len(batch), col.type.list_size)


# --- methods ------------------------------------------------------------------------------------


def floor_read(case: Case) -> None:
    """Memory-mapped read of every logits buffer, trivial reduction, one thread."""
    for b in batches(case.path):
        _core.read_floor(b.column("logits").values.buffers()[1])


def numpy_aum(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """Careful streaming numpy: label logit, masked row max, bincount; float32 margins."""
    n = case.samples
    sums, counts = np.zeros(n), np.zeros(n, dtype=np.int64)
    for b in batches(case.path):
        ids = b.column("sample_id").to_numpy()
        y = b.column("label").to_numpy()
        z = logits_of(b)
        if case.dtype == "bfloat16":
            z = (z.astype(np.uint32) << 16).view(np.float32)
        elif z.dtype == np.float16:
            z = z.astype(np.float32)
        rows = np.arange(len(b))
        zy = z[rows, y]
        other = z.copy()  # the memory-mapped batch is read-only
        other[rows, y] = -np.inf
        margin = (zy - other.max(axis=1)).astype(np.float64)
        sums += np.bincount(ids, weights=margin, minlength=n)
        counts += np.bincount(ids, minlength=n)
    return np.arange(n), sums / counts


def scatter_inputs(case: Case) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for b in batches(case.path):
        y = b.column("label").to_numpy()
        out.append((b.column("sample_id").to_numpy(), _core.margins(logits_of(b), y)))
    return out


def scatter_floor(inputs, n: int) -> None:
    sums, counts = np.zeros(n), np.zeros(n, dtype=np.int64)
    for ids, m in inputs:
        _core.scatter_floor(ids, m, sums, counts)


def score(case: Case, threads: int):
    return aum_score.score(case.path, threads=threads)


def aums(case: Case, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """aum-score's part of the job numpy does: read the log, margins, per-sample sums and
    counts, AUM = sum / count (no result table: no sorting, cut-off or bootstrap)."""
    files = open_log(case.path)
    acc = _core.Accumulator(files[0].classes, files[0].string_ids)
    expect_samples(acc, files[0])  # as score() does
    accumulate_log(acc, files, Sources(), slice(None), AddSettings(threads=threads))
    keys, _, aums, _ = acc.aums()  # AUM = sum / count, as score() takes it
    return keys, aums


def cli_seconds(path: Path, threads: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        [aum_score_command(), "score", str(path), "--json", "-q", "--threads", str(threads)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def cli_peak_anon_mb(path: Path, threads: int) -> float:
    """Peak private (anonymous) memory of the command, sampled from /proc every 2 ms: the
    memory-mapped log is file-backed and not counted, as it can be evicted at any time."""
    command = [aum_score_command(), "score", str(path), "--json", "-q", "--threads", str(threads)]
    return command_peak_anon_mb(command)[1]


def command_peak_anon_mb(command: list[str], env: dict | None = None) -> tuple[float, float]:
    """(seconds, peak private memory in MB) of a command, output discarded."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
    peak = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.002)
    if proc.wait() != 0:
        raise subprocess.CalledProcessError(proc.returncode, command)
    return time.perf_counter() - start, peak / 1024


def aum_library(case: Case, root: Path, rows_wanted: int):
    """The official library on the first rows of every epoch (256-row batches): (rows, seconds,
    max |AUM difference| to aum-score on the same rows)."""
    import pandas as pd
    import torch
    from aum import AUMCalculator

    per_epoch = max(2, rows_wanted // case.epochs)
    subset = root / f"{case.name}-subset"
    shutil.rmtree(subset, ignore_errors=True)
    subset.mkdir()
    for f in sorted(case.path.glob("*.arrow")):
        table = ipc.open_file(pa.memory_map(str(f))).read_all().slice(0, per_epoch)
        with ipc.new_file(str(subset / f.name), table.schema) as sink:
            sink.write_table(table)
    tables = [
        ipc.open_file(pa.memory_map(str(f))).read_all() for f in sorted(subset.glob("*.arrow"))
    ]
    work = root / f"{case.name}-aum"
    calc = AUMCalculator(str(work), compressed=True)
    rows = 0
    start = time.perf_counter()
    for t in tables:
        z = t.column("logits").combine_chunks()
        z = z.values.to_numpy().reshape(len(t), case.classes)
        y = t.column("label").to_numpy()
        ids = t.column("sample_id").to_pylist()
        for a in range(0, len(t), 256):
            b = min(len(t), a + 256)
            if b - a < 2:  # aum 1.0.2 fails on one-row batches
                continue
            calc.update(torch.tensor(z[a:b]), torch.tensor(y[a:b]), ids[a:b])
            rows += b - a
    calc.finalize()
    seconds = time.perf_counter() - start
    official = pd.read_csv(work / "aum_values.csv", dtype={"sample_id": object})
    ours = aum_score.score(subset).table
    ours = dict(zip(map(str, ours.column("sample_id").to_pylist()), ours.column("aum").to_pylist()))
    diff = max(abs(ours[s] - v) for s, v in zip(official["sample_id"], official["aum"]))
    if len(ours) != len(official):
        diff = float("inf")
    return rows, seconds, diff


# --- running ------------------------------------------------------------------------------------


def best(times: dict, key: str, seconds: float) -> None:
    times[key] = min(times.get(key, float("inf")), seconds)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def check_numpy(case: Case, result, ref) -> float:
    ids, aum = ref
    table = result.table
    got = dict(zip(table.column("sample_id").to_numpy(), table.column("aum").to_numpy()))
    if len(got) != len(ids):
        return float("inf")
    mine = np.array([got[i] for i in ids])
    return float(np.max(np.abs(mine - aum)))


def run_case(case: Case, args, root: Path, startup: dict) -> bool:
    ok = True
    methods = ["floor", "aums t1", "aums t2", "score t2", "cli t2"]
    if case.ids == "dense":
        methods.append("numpy")
    if case.classes <= 16 and case.ids == "dense":
        inputs = scatter_inputs(case)
        methods.append("scatter floor")
    for _ in range(args.repeat):
        for m in methods:
            if m == "floor":
                best(case.times, m, timed(lambda: floor_read(case))[0])
            elif m == "numpy":
                s, ref = timed(lambda: numpy_aum(case))
                best(case.times, m, s)
            elif m == "scatter floor":
                best(case.times, m, timed(lambda: scatter_floor(inputs, case.samples))[0])
            elif m.startswith("aums"):
                s, mine = timed(lambda threads=int(m[-1]): aums(case, threads))
                best(case.times, m, s)
            elif m.startswith("score"):
                s, result = timed(lambda threads=int(m[-1]): score(case, threads))
                best(case.times, m, s)
            else:  # the command's start-up noise is large: twice the tries
                for _ in range(2):
                    best(case.times, m, cli_seconds(case.path, 2) - startup[case.classes])
    if case.ids == "dense":
        keys, aum = mine
        order = np.argsort(keys)
        same = np.array_equal(keys[order], ref[0])
        diff = float(np.max(np.abs(aum[order] - ref[1]))) if same else float("inf")
        diff = max(diff, check_numpy(case, result, ref))
        case.notes.append(f"numpy max |AUM diff| {diff:.1e}")
        ok &= diff < 1e-9
    case.peak_mb = cli_peak_anon_mb(case.path, 2)
    if args.aum and case.dtype == "float32" and case.ids == "dense":
        try:
            rows, seconds, diff = aum_library(case, root, args.aum_rows)
        except ImportError as exc:
            case.notes.append(f"`aum` library not installed ({exc.name})")
        else:
            case.times["aum (extrapolated)"] = seconds * case.rows / rows
            case.notes.append(f"`aum` timed on {rows:,} rows, max |AUM diff| {diff:.1e}")
            ok &= diff <= 1e-12
    return ok


def startup_seconds(root: Path, classes: int, repeat: int) -> float:
    """The command's time on a 2-row log of C classes: interpreter, imports, file opening."""
    tiny = Case(f"tiny-c{classes}", 2, classes, 1)
    write_log(tiny, root, 0)
    return min(cli_seconds(tiny.path, 2) for _ in range(2 * repeat + 1))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = re.search(r"Model name:\s*(.+)", text).group(1).strip()
    except Exception:  # noqa: BLE001 - lscpu is optional
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} cores, {mem:.0f} GiB RAM, Linux "
        f"{platform.release()}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"pyarrow {pa.__version__}, aum-score {aum_score.__version__} (kernels: "
        f"{_core.simd_level()}, OpenMP: {_core.has_openmp()})"
    )


def rate(case: Case, key: str) -> str:
    s = case.times.get(key)
    if s is None:
        return ""
    if case.classes <= 16:
        return f"{s:.3f} s ({case.rows / s / 1e6:.1f}M rows/s)"
    return f"{s:.3f} s ({case.gb / s:.1f} GB/s)"


def report(cases: list[Case], args, startup: dict) -> str:
    lines = [
        f"Machine: {machine()}.  ",
        f"Command: `python benchmarks/bench_perf.py {' '.join(args.argv)}`".rstrip()
        + f" (best of {args.repeat}, interleaved; logs in the page cache).",
        "",
        "| log | rows | GB logits | floor | numpy | `aum` library | AUMs, 1 thread | "
        "AUMs, 2 threads | score() | `aum-score` command | AUMs / floor | AUMs vs numpy | "
        "command / floor | command peak private memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        t = c.times
        aum_best = min(t["aums t1"], t["aums t2"])
        vs_floor = f"{t['floor'] / aum_best:.2f}"
        vs_numpy = f"{t['numpy'] / aum_best:.1f}x" if "numpy" in t else ""
        cli = f"{t['floor'] / t['cli t2']:.2f}" if t.get("cli t2", 0) > 0 else ""
        lines.append(
            f"| {c.name}: {c.samples:,} x {c.classes} x {c.epochs} {c.dtype}, {c.ids} ids | "
            f"{c.rows:,} | {c.gb:.2f} | {rate(c, 'floor')} | {rate(c, 'numpy')} | "
            f"{rate(c, 'aum (extrapolated)')} | {rate(c, 'aums t1')} | {rate(c, 'aums t2')} | "
            f"{rate(c, 'score t2')} | {rate(c, 'cli t2')} | {vs_floor} | {vs_numpy} | {cli} | "
            f"{c.peak_mb:.0f} MB |"
        )
    lines += [
        "",
        "- floor: memory-mapped read of every logits buffer, xor of every byte, one thread.",
        "- AUMs: what numpy computes, by aum-score: read the log, margins, per-sample sums and "
        "counts, AUM (`accumulate_log` + `Accumulator.aums()`). score(): the public API, which "
        "also builds the sorted result table, cut-off and summary. Both best of 1 and 2 threads "
        "where not said.",
        "- `aum-score` command: `aum-score score LOG --json -q --threads 2`, wall time minus its "
        "time on a 2-row log (start-up: "
        + ", ".join(f"C = {k}: {v:.2f} s" for k, v in sorted(startup.items()))
        + "); noisy when the work is short next to the start-up.",
        "- `aum` library: timed on the subset named below, extrapolated to the whole log.",
    ]
    for c in cases:
        if "scatter floor" in c.times:
            lines.append(
                f"- Scatter floor ({c.name}): {rate(c, 'scatter floor')}; aum-score's AUMs take "
                f"{min(c.times['aums t1'], c.times['aums t2']) / c.times['scatter floor']:.1f}x "
                "its time."
            )
    dense = {c.classes: c for c in cases if c.ids == "dense" and c.dtype == "float32"}
    for c in cases:
        if c.ids != "dense" and c.classes in dense:
            d = dense[c.classes]
            mine = min(c.times["aums t1"], c.times["aums t2"])
            theirs = min(d.times["aums t1"], d.times["aums t2"])
            lines.append(
                f"- {c.ids.capitalize()} ids: AUMs in {mine / theirs:.2f}x the time of dense ids, "
                f"score() in {c.times['score t2'] / d.times['score t2']:.2f}x ({c.name} vs "
                f"{d.name})."
            )
    for c in cases:
        if c.notes:
            lines.append(f"- {c.name}: " + "; ".join(c.notes) + ".")
    return "\n".join(lines) + "\n"


def scaling(args, root: Path) -> str:
    """AUMs time as N, C and E vary one at a time (threads 1 and 2): it should be linear in
    N x C x E once C is large enough for the logits to dominate the per-row work. Writes
    perf_scaling.png next to RESULTS.md when matplotlib is installed."""
    base = {"samples": 100_000, "classes": 250, "epochs": 2}
    grid = {
        "samples": [25_000, 50_000, 100_000, 200_000, 400_000],
        "classes": [10, 30, 100, 250, 1000],
        "epochs": [1, 2, 4, 8],
    }
    lines = [
        "| varied | N | C | E | N x C x E | AUMs, 1 thread | 2 threads | "
        "ns per N x C x E (1 / 2 threads) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    points = {}
    for name, values in grid.items():
        for v in values:
            shape = dict(base, **{name: v})
            case = Case(f"scale-{name}-{v}", shape["samples"], shape["classes"], shape["epochs"])
            write_log(case, root, args.seed)
            for _ in range(args.repeat):
                for t in (1, 2):
                    best(case.times, t, timed(lambda t=t, c=case: aums(c, t))[0])
            shutil.rmtree(case.path)
            work = case.rows * case.classes
            t1, t2 = case.times[1], case.times[2]
            points.setdefault(name, []).append((work, t1, t2))
            lines.append(
                f"| {name} | {case.samples:,} | {case.classes} | {case.epochs} | {work:,} | "
                f"{t1:.3f} s | {t2:.3f} s | {t1 / work * 1e9:.2f} / {t2 / work * 1e9:.2f} |"
            )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        lines.append("\n(matplotlib not installed: no plot)")
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, pts in points.items():
            work, t1, t2 = map(np.array, zip(*pts))
            ax.loglog(work, t1, "o-", label=f"{name} varied, 1 thread")
            ax.loglog(work, t2, "s--", label=f"{name} varied, 2 threads")
        ax.set_xlabel("N x C x E (logits)")
        ax.set_ylabel("seconds (AUMs)")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(RESULTS.with_name("perf_scaling.png"), dpi=100)
        lines.append("\n![time vs N x C x E](perf_scaling.png)")
    return "\n".join(lines) + "\n"


def memory(args, root: Path, sizes_gb: list[float]) -> str:
    """Peak private memory and time of the command on C = 1000 float32 logs of growing size:
    the same samples, more epochs (memory should depend on the samples, not the log's size)."""
    n = 80_000
    lines = [
        f"| log ({n:,} samples, C = 1000 float32) | GB logits | command time | "
        "peak private memory |",
        "|---|---:|---:|---:|",
    ]
    for gb in sizes_gb:
        case = Case(f"mem-{gb:g}gb", n, 1000, max(1, round(gb * 1e9 / (n * 1000 * 4))))
        write_log(case, root, args.seed)
        seconds = min(cli_seconds(case.path, 2) for _ in range(args.repeat))
        peak = max(cli_peak_anon_mb(case.path, 2) for _ in range(2))
        shutil.rmtree(case.path)
        lines.append(f"| {case.epochs} epochs | {case.gb:.1f} | {seconds:.2f} s | {peak:.0f} MB |")
    return "\n".join(lines) + "\n"


SCALES = {
    # name: (C=1000 samples, epochs), (C=10 samples, epochs)
    "tiny": ((5_000, 2), (50_000, 2)),  # a smoke test of the harness
    "small": ((50_000, 3), (500_000, 5)),
    "issue": ((200_000, 3), (1_000_000, 5)),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="small")
    p.add_argument("--repeat", type=int, default=3, help="best of N, interleaved")
    p.add_argument("--only", help="regular expression: run the cases whose name matches")
    p.add_argument("--no-aum", dest="aum", action="store_false", help="skip the `aum` library")
    p.add_argument("--aum-rows", type=int, default=20_000, help="rows the `aum` library scores")
    p.add_argument("--workdir", type=Path, help="write the logs here and keep them")
    p.add_argument("--write", action="store_true", help=f"update the table in {RESULTS.name}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scaling", action="store_true", help="also time N, C, E and threads")
    p.add_argument(
        "--memory",
        metavar="GB,GB,...",
        help="also the command's peak private memory on logs of these sizes, e.g. 1,2,4,8",
    )
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv

    (big_n, big_e), (small_n, small_e) = SCALES[args.scale]
    cases = [
        Case("c1000-f32", big_n, 1000, big_e),
        Case("c1000-f16", big_n, 1000, big_e, "float16"),
        Case("c1000-bf16", big_n, 1000, big_e, "bfloat16"),
        Case("c1000-sparse", big_n, 1000, big_e, ids="sparse"),
        Case("c1000-string", big_n, 1000, big_e, ids="string"),
        Case("c10-f32", small_n, 10, small_e),
        Case("c10-sparse", small_n, 10, small_e, ids="sparse"),
        Case("c10-string", small_n, 10, small_e, ids="string"),
    ]
    if args.only is not None:  # --only '' runs no case (with --scaling or --memory alone)
        cases = [c for c in cases if args.only and re.search(args.only, c.name)]
    root = args.workdir or Path(tempfile.mkdtemp(prefix="aum-perf-"))
    ok = True
    try:
        for c in cases:
            t = time.perf_counter()
            write_log(c, root, args.seed)
            print(
                f"{c.name}: {c.rows:,} rows, {c.gb:.2f} GB of logits, written in "
                f"{time.perf_counter() - t:.1f} s",
                file=sys.stderr,
            )
        startup = {
            k: startup_seconds(root, k, args.repeat) for k in sorted({c.classes for c in cases})
        }
        for c in cases:
            ok &= run_case(c, args, root, startup)
            print(
                f"{c.name}: " + ", ".join(f"{k} {v:.3f} s" for k, v in c.times.items()),
                file=sys.stderr,
            )
        text = report(cases, args, startup) if cases else ""
        if args.scaling:
            text += "\nScaling (`--scaling`):\n\n" + scaling(args, root)
        if args.memory:
            sizes = [float(x) for x in args.memory.split(",")]
            text += "\nMemory (`--memory`):\n\n" + memory(args, root, sizes)
        print(text)
        if args.write:
            write_results(text)
        return 0 if ok else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def write_results(text: str) -> None:
    """Replace the marked block in RESULTS.md (append it if missing)."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{START}\n{text}{END}"
    if START in old and END in old:
        new = old[: old.index(START)] + block + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(new)


if __name__ == "__main__":
    sys.exit(main())
