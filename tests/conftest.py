"""Shared fixtures: seeded RNG, CLI runners (in-process and the installed command)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

# Make `import reference` work whatever import mode pytest is configured with.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def rng(request) -> np.random.Generator:
    # Seeded from the test id: deterministic, but different data in each test.
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


class CliRun:
    """Result of one CLI invocation, the same shape for CliRunner and subprocess."""

    def __init__(
        self, exit_code: int, stdout: str, stderr: str, exception: BaseException | None = None
    ):
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.exception = exception

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:
        return (
            f"CliRun(exit={self.exit_code}, stdout={self.stdout[-2000:]!r}, "
            f"stderr={self.stderr[-2000:]!r}, exc={self.exception!r})"
        )


@pytest.fixture
def cli():
    """Run aum_score.cli.main in-process with click's CliRunner; stdout and stderr kept apart."""
    from click.testing import CliRunner

    from aum_score.cli import main

    def run(*args: str) -> CliRun:
        res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
        exc = res.exception
        # click exits via SystemExit; anything else escaped the CLI's error handling.
        if isinstance(exc, SystemExit):
            exc = None
        return CliRun(res.exit_code, res.stdout, res.stderr, exc)

    return run


def installed_command() -> str:
    exe = shutil.which("aum-score")
    if exe is None:
        cand = Path(sys.executable).parent / "aum-score"
        if cand.exists():
            exe = str(cand)
    assert exe is not None, "the `aum-score` console script is not installed"
    return exe


@pytest.fixture
def cmd():
    """Run the installed `aum-score` console script in a subprocess."""
    exe = installed_command()

    def run(*args: str, timeout: float = 120) -> CliRun:
        p = subprocess.run(
            [exe, *map(str, args)], check=False, capture_output=True, text=True, timeout=timeout
        )
        return CliRun(p.returncode, p.stdout, p.stderr)

    return run


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: torch's thread pool only adds waits on a busy CPU; one thread keeps the
    framework tests fast and steady."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
