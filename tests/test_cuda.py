"""The CUDA path (aum_score.cuda, aum_score._cuda).

Tests marked ``cuda`` need a usable GPU and skip elsewhere; they compare every kernel with the
CPU core on random and adversarial rows. The rest run everywhere: the build and status report,
the DLPack consumer (on host arrays, which it must refuse with a clear message), and the CLI's
error without a GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

import aum_score
from aum_score import cuda as aum_cuda
from aum_score.compact import compact_records

STATUS = aum_cuda.cuda_status()
needs_gpu = pytest.mark.skipif(not STATUS.usable, reason=f"no usable CUDA: {STATUS.reason}")
needs_module = pytest.mark.skipif(not STATUS.built, reason="aum_score._cuda is not built")


# ---------------------------------------------------------------------- everywhere
def test_status_is_reported_without_crashing():
    info = aum_score.build_info()["cuda"]
    assert set(info) >= {"built", "usable", "reason"}
    assert info["built"] == STATUS.built and info["usable"] == STATUS.usable
    assert info["usable"] or info["reason"]  # unusable always says why


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc on PATH")
def test_module_is_built_when_nvcc_is_on_path():
    # AUM_SCORE_CUDA=AUTO (the default) builds aum_score._cuda whenever nvcc is found; a
    # kernel that does not compile fails the install, so this guards CI against a silent skip.
    if os.environ.get("AUM_SCORE_CUDA", "AUTO").upper() == "OFF":
        pytest.skip("built with AUM_SCORE_CUDA=OFF")
    if "site-packages" not in aum_score.__file__:  # an editable dev install: builds vary
        pytest.skip("editable install; CI's `pip install .` checks this")
    assert STATUS.built, STATUS.reason
    assert "120" in STATUS.architectures  # PTX of the newest architecture


def test_core_imports_without_the_cuda_runtime():
    # The CPU module never links the CUDA runtime (and _cuda links it statically).
    script = "import aum_score._core, sys; print('cudart' in open('/proc/self/maps').read())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@needs_module
def test_unusable_module_reports_instead_of_crashing():
    from aum_score import _cuda

    info = _cuda.runtime_info()
    assert (info["devices"] > 0) == (info["error"] == "")
    if not STATUS.usable:
        with pytest.raises(aum_cuda.CudaUnavailableError, match="not usable"):
            aum_cuda.margins(np.zeros((2, 3), np.float32), np.zeros(2, np.int64))


@needs_module
@pytest.mark.parametrize("versioned", [True, False])
def test_dlpack_consumer_reads_the_layout(versioned):
    from aum_score import _cuda

    base = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    view = base[1:, 2:6]  # offset data, row stride 7, 4 columns
    capsule = view.__dlpack__(max_version=(1, 0)) if versioned else view.__dlpack__()
    info = _cuda.describe(capsule)
    assert info["dtype"] == "float32" and info["shape"] == (4, 4)
    assert info["strides"] == (7, 1) and info["device_type"] == 1
    assert info["versioned"] == versioned
    with pytest.raises(ValueError, match="each capsule can be used once"):
        _cuda.describe(capsule)


@needs_module
def test_dlpack_consumer_refuses_host_memory_and_bad_dtypes():
    import torch

    from aum_score import _cuda

    logits = torch.zeros(4, 3, dtype=torch.bfloat16)
    assert _cuda.describe(logits.__dlpack__())["dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="logits: is not on a CUDA device"):
        _cuda.margins_host(logits.__dlpack__(), torch.zeros(4).long().__dlpack__(), 1)
    with pytest.raises(TypeError, match="expected a DLPack capsule"):
        _cuda.margins_host(logits, torch.zeros(4).long().__dlpack__(), 1)


def _write_log(path, rows=40, classes=5):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(rows, classes)).astype(np.float32)
    table = pa.table(
        {
            "sample_id": np.arange(rows),
            "label": rng.integers(0, classes, rows),
            "logits": pa.FixedSizeListArray.from_arrays(pa.array(z.ravel()), classes),
        }
    )
    path.mkdir()
    feather.write_feather(table, str(path / "epoch_0.arrow"))
    return path


@pytest.mark.skipif(STATUS.usable, reason="checks the error without a usable GPU")
def test_device_cuda_without_gpu_is_one_clear_error(tmp_path, cmd):
    log = _write_log(tmp_path / "log")
    out = tmp_path / "aum.parquet"
    res = cmd(str(log), "--device", "cuda", "-o", str(out))
    assert res.exit_code == 1
    assert "Error: CUDA is not usable" in res.stderr
    assert "Traceback" not in res.output
    assert not out.exists()
    with pytest.raises(aum_cuda.CudaUnavailableError):
        aum_score.score(log, device="cuda")


def test_unknown_device_is_refused(tmp_path, cli):
    log = _write_log(tmp_path / "log")
    with pytest.raises(aum_score.LogFormatError, match="device must be 'cpu' or 'cuda'"):
        aum_score.score(log, device="tpu")
    res = cli(str(log), "--device", "tpu")
    assert res.exit_code == 2 and "tpu" in res.output


# ---------------------------------------------------------------------- on a GPU
torch = pytest.importorskip("torch")
gpu = [needs_gpu, pytest.mark.cuda]

DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


def _host(z: torch.Tensor):
    """(numpy logits, bfloat16 flag) as the CPU core takes them."""
    if z.dtype == torch.bfloat16:
        return z.cpu().view(torch.int16).numpy().view(np.uint16), True
    return z.cpu().numpy(), False


def _cpu_margins(z: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    from aum_score import _core

    logits, bf16 = _host(z.contiguous())
    return _core.margins(logits, y.cpu().numpy().astype(np.int64), 1, bf16)


def _adversarial(rng, rows, classes, dtype):
    z = torch.tensor(rng.normal(size=(rows, classes)) * 4, dtype=torch.float32)
    z = z.round() if classes > 2 else z  # many ties
    y = torch.tensor(rng.integers(0, classes, rows))
    if rows >= 8:
        z[1, :] = 3.0  # all equal
        z[2, int(y[2])] = float("nan")
        z[3, (int(y[3]) + 1) % classes] = float("-inf")
        z[4, :] = float("-inf")
        z[5, int(y[5])] = float("inf")
        z[6, (int(y[6]) + 1) % classes] = float("nan")
    return z.to(dtype).cuda(), y.cuda()


SHAPES = [(0, 10), (1, 2), (37, 2), (300, 3), (257, 10), (129, 33), (64, 1000), (9, 4097),
          (8, 21843)]  # fmt: skip


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("rows,classes", SHAPES)
def test_margins_equal_the_cpu_core(rng, dtype, rows, classes):
    z, y = _adversarial(rng, rows, classes, DTYPES[dtype])
    ours = aum_cuda.margins(z, y)
    np.testing.assert_array_equal(ours, _cpu_margins(z, y))  # bit for bit, NaN where NaN


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_margins_of_strided_and_unaligned_views(rng, dtype):
    base = torch.randn(300, 1031, dtype=DTYPES[dtype], device="cuda")
    for view in (
        base[:, 3:1003],
        base[1::3, 1:],
        base[5:6, 7:900],
        base.t().contiguous().t()[:, :5],
    ):
        if view.stride(-1) != 1:
            continue
        y = torch.randint(0, view.shape[1], (view.shape[0],), device="cuda")
        np.testing.assert_array_equal(aum_cuda.margins(view, y), _cpu_margins(view, y))
    # int32 labels, a strided label view, into a device output, on a side stream
    z = base[:, :1000]
    labels = torch.randint(0, 1000, (600,), device="cuda", dtype=torch.int32)[::2]
    out = torch.empty(300, dtype=torch.float64, device="cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        aum_cuda.margins(z, labels, out=out)
    side.synchronize()
    np.testing.assert_array_equal(out.cpu().numpy(), _cpu_margins(z, labels.long()))


@pytest.mark.cuda
@needs_gpu
def test_bad_label_is_an_error_naming_the_row():
    z = torch.randn(5, 4, device="cuda")
    with pytest.raises(aum_score.LogFormatError, match="row 3"):
        aum_cuda.margins(z, torch.tensor([0, 1, 2, 4, 0], device="cuda"))


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("rows,classes", SHAPES)
def test_compact_records_equal_numpy(rng, dtype, rows, classes):
    z, y = _adversarial(rng, rows, classes, DTYPES[dtype])
    ours = aum_cuda.compact_records(z, y)
    host = z.float() if dtype in ("float16", "bfloat16") else z
    want = compact_records(host.cpu().numpy(), y.cpu().numpy())
    np.testing.assert_array_equal(ours.label_logit, want.label_logit)
    np.testing.assert_array_equal(ours.other_logit, want.other_logit)
    np.testing.assert_array_equal(ours.other_class, want.other_class)
    tol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(ours.logsumexp, want.logsumexp, rtol=tol, atol=tol)
    np.testing.assert_array_equal(ours.margins, want.margins)


def _scorer_pair(classes, **options):
    return aum_score.Scorer(classes, bootstrap=0, **options), aum_cuda.DeviceScorer(
        classes, bootstrap=0, **options
    )


def _by_id(table):
    order = np.argsort(table.column("sample_id").to_numpy())
    return {
        name: table.column(name).to_numpy(zero_copy_only=False)[order]
        for name in table.column_names
    }


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("classes", [2, 10, 1000, 21843])
@pytest.mark.parametrize("num_samples", [None, 300])
def test_device_scorer_equals_the_cpu_scorer(rng, classes, num_samples):
    cpu, gpu_scorer = _scorer_pair(classes, threshold_class=classes - 1)
    if num_samples:
        gpu_scorer = aum_cuda.DeviceScorer(
            classes, num_samples=num_samples, threshold_class=classes - 1, bootstrap=0
        )
    rows = 64 if classes > 5000 else 256
    for epoch in range(3):
        for _ in range(2):
            z = torch.randn(rows, classes, device="cuda")
            ids = torch.tensor(rng.permutation(300)[:rows], device="cuda")
            y = ids % classes
            cpu.update(z.cpu().numpy(), y.cpu().numpy(), ids.cpu().numpy(), epoch=epoch)
            gpu_scorer.update(z, y, ids, epoch=epoch)
    want, got = _by_id(cpu.result().table), _by_id(gpu_scorer.result().table)
    for name in ("sample_id", "label", "count", "threshold_sample"):
        np.testing.assert_array_equal(got[name], want[name])
    np.testing.assert_array_equal(got["aum"], want["aum"])  # one row per sample per batch
    cpu_monitor, gpu_monitor = cpu.result().monitor, gpu_scorer.result().monitor
    assert gpu_monitor.column("rows").to_pylist() == cpu_monitor.column("rows").to_pylist()
    np.testing.assert_allclose(
        gpu_monitor.column("mean_margin").to_numpy(), cpu_monitor.column("mean_margin").to_numpy()
    )


@pytest.mark.cuda
@needs_gpu
def test_device_scorer_reports_errors_at_result():
    scorer = aum_cuda.DeviceScorer(3, num_samples=10)
    z = torch.randn(4, 3, device="cuda")
    z[2, 0] = float("nan")
    scorer.update(z, torch.tensor([0, 1, 2, 0], device="cuda"), torch.arange(4, device="cuda"))
    with pytest.raises(aum_score.LogFormatError, match="batch 0: row 2: NaN or infinite"):
        scorer.result()
    skip = aum_cuda.DeviceScorer(3, num_samples=10, nonfinite="skip")
    skip.update(z, torch.tensor([0, 1, 2, 0], device="cuda"), torch.arange(4, device="cuda"))
    assert skip.result().summary.skipped_rows == 1
    conflict = aum_cuda.DeviceScorer(3, num_samples=10)
    ids = torch.arange(4, device="cuda")
    conflict.update(torch.randn(4, 3, device="cuda"), torch.zeros(4, dtype=torch.long).cuda(), ids)
    conflict.update(torch.randn(4, 3, device="cuda"), torch.ones(4, dtype=torch.long).cuda(), ids)
    with pytest.raises(aum_score.LogFormatError, match="batch 1: row 0: the label differs"):
        conflict.result()
    unlabeled = aum_cuda.DeviceScorer(3, num_samples=10)
    unlabeled.set_labels([0, 1], [2, 2])
    unlabeled.update(torch.randn(3, 3, device="cuda"), None, torch.arange(3, device="cuda"))
    with pytest.raises(aum_score.LogFormatError, match="row 2: the sample has no label"):
        unlabeled.result()


@pytest.mark.cuda
@needs_gpu
def test_empty_batches():
    z = torch.empty(0, 10, device="cuda")
    y = torch.empty(0, dtype=torch.long, device="cuda")
    assert aum_cuda.margins(z, y).shape == (0,)
    assert len(aum_cuda.compact_records(z, y)) == 0
    scorer = aum_cuda.DeviceScorer(10)
    scorer.update(z, y, y)
    scorer.update(
        torch.randn(2, 10, device="cuda"), torch.tensor([1, 2]).cuda(), torch.tensor([0, 1]).cuda()
    )
    assert scorer.result().summary.samples == 2


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_calculator_with_cuda_tensors_equals_the_cpu_path(tmp_path, rng, dtype):
    from aum_score import AUMCalculator

    cpu = AUMCalculator(tmp_path / "cpu", compressed=False)
    gpu_calc = AUMCalculator(tmp_path / "gpu", compressed=False)
    for _ in range(4):
        z, y = _adversarial(rng, 50, 7, DTYPES[dtype])
        z[2:7] = 0.5  # keep margins finite (NaN rows are an error in both paths)
        ids = rng.permutation(60)[:50]
        assert gpu_calc.update(z, y, ids) == cpu.update(z.cpu(), y.cpu(), ids)
    cpu.finalize()
    gpu_calc.finalize()
    for name in ("aum_values.csv", "full_aum_records.csv"):
        assert (tmp_path / "gpu" / name).read_bytes() == (tmp_path / "cpu" / name).read_bytes()


@pytest.mark.cuda
@needs_gpu
def test_recorder_with_cuda_tensors_writes_the_cpu_records(tmp_path, rng):
    from aum_score.integrations.torch import LogitRecorder

    z = torch.randn(64, 1000, device="cuda")
    y = torch.randint(0, 1000, (64,), device="cuda")
    ids = torch.arange(64, device="cuda")
    for where, logits in (("gpu", z), ("cpu", z.cpu())):
        with LogitRecorder(tmp_path / where, compact=True) as recorder:
            recorder.record(ids, logits, y if where == "gpu" else y.cpu())
            recorder.end_epoch()
    gpu_scores = aum_score.score(tmp_path / "gpu", bootstrap=0).table
    cpu_scores = aum_score.score(tmp_path / "cpu", bootstrap=0).table
    assert gpu_scores.equals(cpu_scores)


@pytest.mark.cuda
@needs_gpu
def test_post_hoc_device_cuda_equals_cpu(tmp_path, cli):
    log = _write_log(tmp_path / "log", rows=5000, classes=100)
    cpu = aum_score.score(log, bootstrap=0).table
    gpu_result = aum_score.score(log, bootstrap=0, device="cuda").table
    assert gpu_result.equals(cpu)
    res = cli(str(log), "--device", "cuda", "-o", str(tmp_path / "a.parquet"), "-q")
    assert res.exit_code == 0, res


@pytest.mark.cuda
@needs_gpu
def test_cupy_and_jax_arrays_via_dlpack(rng):
    z = rng.normal(size=(33, 17)).astype(np.float32)
    y = rng.integers(0, 17, 33)
    want = aum_score.margins(z, y)
    tried = 0
    try:
        import cupy
    except ImportError:
        pass
    else:
        tried += 1
        np.testing.assert_array_equal(aum_cuda.margins(cupy.asarray(z), cupy.asarray(y)), want)
    try:
        import jax
    except ImportError:
        pass
    else:
        if any(d.platform == "gpu" for d in jax.devices()):
            tried += 1
            gpu_dev = [d for d in jax.devices() if d.platform == "gpu"][0]
            zj, yj = jax.device_put(z, gpu_dev), jax.device_put(y, gpu_dev)
            np.testing.assert_array_equal(aum_cuda.margins(zj, yj), want)
    if not tried:
        pytest.skip("neither CuPy nor a CUDA JAX is installed")
