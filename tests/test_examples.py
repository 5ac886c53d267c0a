"""The scripts in examples/ run end to end (a few epochs) with the real frameworks, so they
cannot rot. Each is skipped only where its framework is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("script", "framework"),
    [
        ("torch_digits.py", "torch"),
        ("keras_digits.py", "tensorflow"),
        ("hf_digits.py", "transformers"),
    ],
)
def test_example_runs(tmp_path, script, framework):
    pytest.importorskip(framework)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--epochs", "3", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "precision" in run.stdout and "F1" in run.stdout
    logs = sorted(p.name for p in (tmp_path / "logs").glob("epoch_*.arrow"))
    assert logs == ["epoch_0000.arrow", "epoch_0001.arrow", "epoch_0002.arrow"]
    result = pq.read_table(tmp_path / "aum.parquet")
    assert result.num_rows == 1797  # every digit scored
    assert sum(result.column("threshold_sample").to_pylist()) == 1797 // 11
