"""The benchmarks run end to end in quick mode (tiny sizes, no thresholds), so they cannot rot between full runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_module(*args: str, timeout: int) -> subprocess.CompletedProcess:
    """`python -m ARGS` from the project folder, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=timeout
    )


def test_every_benchmark_runs_in_quick_mode_and_prints_its_table():
    results = ROOT / "benchmarks" / "RESULTS.md"
    before = results.read_bytes() if results.exists() else None
    finished = python_module("benchmarks", "--quick", timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    for title in (
        "## Time to first token",
        "-token answer at full speed",
        "## Simultaneous chats",
        "## One visitor against everyone else",
        "## Stop under load",
        "## A restart under load",
        "## Tools",
        "## Front-end protocols",
        "## SQLite store",
        "## Scale out",
        "## Recipe: partial structured output",
        "## Context: input tokens per request",
        "## Start-up",
    ):
        assert title in finished.stdout, title
    assert "| first token, app in Chromium" in finished.stdout
    assert " goals met." in finished.stdout
    assert "errors in 6 chats | 0 |" in finished.stdout  # the quick crowd chats without a failure
    # Every quick Stop, by the app's route and by Gradio's event, found its stop request and ended its answer.
    assert "never ended (38 stopped) | 0 |" in finished.stdout
    assert (results.read_bytes() if results.exists() else None) == before  # quick mode never overwrites results


def test_one_benchmark_can_run_alone_and_a_wrong_name_is_refused():
    alone = python_module("benchmarks.context", "--quick", timeout=300)
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert "| window: input tokens" in alone.stdout
    wrong = python_module("benchmarks", "--only", "nonsense", timeout=120)
    assert wrong.returncode != 0 and "unknown benchmark nonsense" in wrong.stderr


def test_the_lean_crowd_reads_updates_split_anywhere_and_reports_a_failed_answer():
    """The load generator reads Gradio's stream in raw blocks, which can end in the middle of a line."""
    from benchmarks.common import _UpdateLines

    generating = (
        b'data: {"msg": "process_generating", "output": {"data": [[{"role": "assistant", "content": "Uno"}]]}}\n\n'
    )
    failed = b'data: {"msg": "process_completed", "success": true, "output": {"data": ["\xe2\x9a\xa0\xef\xb8\x8f Model unavailable"]}}\n\n'
    stream = b": ping\n\n" + generating * 3 + failed
    for cut in (1, 7, 40, len(stream) // 2, len(stream) - 3):
        lines = _UpdateLines(started=0.0)
        finished = [lines.saw(stream[:cut]), lines.saw(stream[cut:])]
        assert finished == [False, True] and lines.timing.updates == 3
        assert lines.timing.first_token is not None and lines.timing.error.startswith("⚠️")
        assert lines.timing.bytes == len(stream) - 1  # every line up to the completed one, whatever the cut
