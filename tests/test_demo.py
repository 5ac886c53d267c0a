"""The offline demo finds injected label noise."""

from __future__ import annotations

import json
import re

import pytest


def test_demo_cli_prints_precision_and_recall(cli, tmp_path, monkeypatch):
    # Plain `aum-score demo`, as a new user would type it: works offline, leaves nothing behind.
    monkeypatch.chdir(tmp_path)
    r = cli("demo")
    assert r.exception is None, r
    assert r.exit_code == 0, r
    assert re.search(r"precision", r.stdout, re.IGNORECASE), r.stdout
    assert re.search(r"recall", r.stdout, re.IGNORECASE), r.stdout
    assert "Traceback" not in r.output
    assert list(tmp_path.iterdir()) == []


def test_demo_cli_workdir_keeps_files(cli, tmp_path):
    r = cli("demo", "--workdir", tmp_path / "demo", "--seed", "1")
    assert r.exit_code == 0, r
    assert list((tmp_path / "demo").rglob("epoch_*.arrow"))


def test_demo_cli_json(cli, tmp_path):
    r = cli("demo", "--workdir", tmp_path / "demo", "--json", "--epochs", "5")
    assert r.exit_code == 0, r
    d = json.loads(r.stdout)
    assert 0.0 <= d["precision"] <= 1.0 and 0.0 <= d["recall"] <= 1.0


def test_run_demo_finds_the_noise(tmp_path):
    from aum_score.demo import run_demo

    lines = []
    report = run_demo(workdir=tmp_path, seed=0, echo=lines.append)
    get = (lambda k: report[k]) if isinstance(report, dict) else (lambda k: getattr(report, k))
    assert get("precision") > 0.5, report
    assert get("recall") > 0.5, report
    # The demo scores a real log with the real scorer: its files are on disk.
    assert list(tmp_path.rglob("epoch_*.arrow"))


def test_run_demo_is_deterministic(tmp_path):
    from aum_score.demo import run_demo

    a = run_demo(workdir=tmp_path / "a", seed=3, epochs=3, echo=lambda s: None)
    b = run_demo(workdir=tmp_path / "b", seed=3, epochs=3, echo=lambda s: None)
    assert (a.precision, a.recall, a.flagged) == (b.precision, b.recall, b.flagged)


@pytest.mark.parametrize("bad", [["--noise", "1.5"], ["--epochs", "0"]])
def test_demo_bad_arguments(cli, tmp_path, bad):
    r = cli("demo", "--workdir", tmp_path, *bad)
    assert r.exit_code != 0
    assert r.exception is None, r
    assert "Traceback" not in r.output
