"""``import aum_score`` (and the framework-free parts of the integrations) import no training
framework: each framework is an optional extra, imported only by its own integration module."""

from __future__ import annotations

import json
import subprocess
import sys

FRAMEWORKS = [
    "torch",
    "tensorflow",
    "keras",
    "lightning",
    "pytorch_lightning",
    "transformers",
    "jax",
    "pandas",
    "aum",
]


def test_import_aum_score_imports_no_framework():
    code = (
        "import sys, json, aum_score, aum_score.integrations;"
        "aum_score.AUMCalculator(None).update([[1.0, 0.0]], [0], [0]);"
        f"print(json.dumps([m for m in {FRAMEWORKS!r} if m in sys.modules]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(run.stdout) == []
