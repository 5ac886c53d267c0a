"""GPU benchmark of the CUDA path (issue 6), in one run; prints a Markdown table for RESULTS.md.

    python benchmarks/bench_cuda.py [--quick]

Measures on the current GPU:
  1. the device-to-device copy bandwidth (the floor a kernel that reads the logits compares to),
  2. the margin kernel at C = 10, 1000, 21843 (float32, ~1 GiB of logits): time, read GB/s,
     fraction of the copy floor, against the same reduction written with torch ops (gather,
     masked max),
  3. the per-step overhead of DeviceScorer.update for a 256 x 1000 batch (microseconds),
     against torch ops (gather, masked max, scatter_add into per-sample sums),
  4. post-hoc scoring of a log on disk, --device cuda against the CPU path.
Needs torch with CUDA and a usable aum_score._cuda; without them it says why and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def fail(message: str) -> None:
    print(f"bench_cuda: {message}", file=sys.stderr)
    sys.exit(1)


def timed(fn, repeats: int) -> float:
    """Seconds per call, by CUDA events after a warm-up call."""
    import torch

    fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / 1e3 / repeats


def torch_margins(z, y):
    """The reduction with framework ops: the label's logit, the max of the others."""

    label = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return (label - others).double()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        fail("needs torch (pip install torch with CUDA)")
    from aum_score import cuda as aum_cuda

    status = aum_cuda.cuda_status()
    if not status.usable:
        fail(f"CUDA is not usable here: {status.reason}")
    if not torch.cuda.is_available():
        fail("torch sees no CUDA device (a CPU-only torch build?)")
    import numpy as np

    gpu = torch.cuda.get_device_name()
    total = (1 << 28) if args.quick else (1 << 30)  # bytes of logits per kernel run
    repeats = 5 if args.quick else 20
    rows_out = []

    # 1. floor: device-to-device copy (reads and writes `total` bytes)
    src = torch.empty(total // 4, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    copy_s = timed(lambda a=dst, b=src: a.copy_(b), repeats)
    copy_gbs = 2 * total / copy_s / 1e9  # bytes moved (read + write)
    read_floor = total / copy_s / 1e9  # bytes read per second while copying
    del src, dst
    print(f"{gpu}: device-to-device copy {copy_gbs:.0f} GB/s moved ({read_floor:.0f} GB/s read)")

    # 2. margin kernel vs torch ops
    for classes in (10, 1000, 21843):
        rows = total // (4 * classes)
        z = torch.randn(rows, classes, device="cuda")
        y = torch.randint(0, classes, (rows,), device="cuda")
        out = torch.empty(rows, dtype=torch.float64, device="cuda")
        ours = timed(lambda z=z, y=y, out=out: aum_cuda.margins(z, y, out=out), repeats)
        theirs = timed(lambda z=z, y=y: torch_margins(z, y), repeats)
        check = torch_margins(z[:1000], y[:1000]).cpu().numpy()
        np.testing.assert_allclose(aum_cuda.margins(z[:1000], y[:1000]), check)
        gbs = rows * classes * 4 / ours / 1e9
        rows_out.append(
            (f"margins C={classes} ({rows} x {classes} float32)", f"{ours * 1e3:.2f} ms",
             f"{gbs:.0f} GB/s = {gbs / read_floor:.0%} of copy floor",
             f"torch ops {theirs * 1e3:.2f} ms ({theirs / ours:.1f}x slower)")
        )  # fmt: skip
        del z, y, out

    # 3. per-step overhead, 256 x 1000
    classes, batch, samples = 1000, 256, 50_000
    z = torch.randn(batch, classes, device="cuda")
    y = torch.randint(0, classes, (batch,), device="cuda")
    ids = torch.randint(0, samples, (batch,), device="cuda")
    scorer = aum_cuda.DeviceScorer(classes, num_samples=samples, bootstrap=0)
    steps = 200 if args.quick else 2000

    def step_ours():
        scorer.update(z, y, ids)

    sums = torch.zeros(samples, dtype=torch.float64, device="cuda")
    counts = torch.zeros(samples, dtype=torch.float64, device="cuda")
    ones = torch.ones(batch, dtype=torch.float64, device="cuda")

    def step_torch():
        sums.scatter_add_(0, ids, torch_margins(z, y))
        counts.scatter_add_(0, ids, ones)

    for name, fn in (("DeviceScorer.update", step_ours), ("torch ops + scatter_add", step_torch)):
        fn()
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            fn()
        host_us = (time.perf_counter() - started) / steps * 1e6  # launch cost on the host
        torch.cuda.synchronize()
        wall_us = (time.perf_counter() - started) / steps * 1e6
        rows_out.append(
            (f"step 256 x 1000: {name}", f"{wall_us:.1f} us/step", f"host {host_us:.1f} us", "")
        )
    scorer.result()  # the state is consistent after all those steps

    # 4. post-hoc: a log on disk, CPU path vs --device cuda
    import pyarrow as pa
    import pyarrow.feather as feather

    import aum_score

    post_rows = 50_000 if args.quick else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for epoch in range(4):
            logits = rng.normal(size=(post_rows // 4, classes)).astype(np.float32)
            table = pa.table(
                {
                    "sample_id": np.arange(post_rows // 4),
                    "label": rng.integers(0, classes, post_rows // 4),
                    "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.ravel()), classes),
                }
            )
            feather.write_feather(table, str(Path(tmp) / f"epoch_{epoch}.arrow"))
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        times = {}
        for device in ("cpu", "cuda", "cpu", "cuda"):  # second round: warm page cache
            started = time.perf_counter()
            result = aum_score.score(tmp, bootstrap=0, device=device)
            times[device] = time.perf_counter() - started
            times[device + "_table"] = result.table
        assert times["cpu_table"].equals(times["cuda_table"])
        rows_out.append(
            (f"post-hoc {post_rows} x {classes} float32 ({size / 1e9:.2f} GB, page cache)",
             f"cuda {times['cuda']:.2f} s", f"cpu {times['cpu']:.2f} s",
             f"cuda/cpu time {times['cuda'] / times['cpu']:.2f}")
        )  # fmt: skip

    print()
    print(f"GPU: {gpu}; aum_score._cuda for {status.architectures}; driver "
          f"{status.driver_version}, runtime {status.runtime_version}")  # fmt: skip
    print(f"device-to-device copy: {copy_gbs:.0f} GB/s moved, {read_floor:.0f} GB/s read\n")
    print("| measurement | time | rate | comparison |")
    print("| --- | --- | --- | --- |")
    for row in rows_out:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
