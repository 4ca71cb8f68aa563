"""The benchmark scripts run (tiny sizes, no thresholds), so they cannot rot between benchmark runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_first_token_benchmark_quick_mode_prints_its_table():
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.first_token", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "| time to first token" in finished.stdout


def test_store_benchmark_quick_mode_prints_its_table():
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.store", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "| save at turn 1 |" in finished.stdout and "FTS search" in finished.stdout


def test_context_benchmark_quick_mode_prints_its_table():
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.context", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "| window |" in finished.stdout and "| summary |" in finished.stdout
