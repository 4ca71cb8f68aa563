"""`pip install .` from a clean clone: the wheel holds the app and its page, and `pydantic-ai-chat` runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked_files() -> list[str]:
    # As a commit would have them: tracked, and new files git does not ignore.
    command = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if listed.returncode == 0 and listed.stdout.strip():
        return listed.stdout.split()
    return [str(path.relative_to(ROOT)) for path in ROOT.rglob("*") if path.is_file() and ".git" not in path.parts]


def test_the_wheel_installs_the_app_its_page_and_a_command_that_runs(tmp_path):
    clone = tmp_path / "clone"  # a copy, as a clean clone is: the build writes its own files beside the source
    for name in tracked_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), "."],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("pydantic_ai_gradio_chat-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"app.py", "server.py", "chat/turns.py", "storage/sqlite_store.py", "ui/chat_tab.py"} <= names
    assert "web/sse_demo.html" in names  # the /sse-demo page is package data
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)

    target = tmp_path / "installed"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run_installed(*command: str) -> subprocess.CompletedProcess:
        """From another folder, with the installed copy (not this source tree) on the path."""
        environment = {**os.environ, "PYTHONPATH": str(target)}
        return subprocess.run(command, cwd=elsewhere, env=environment, capture_output=True, text=True, check=False)

    helped = run_installed(str(target / "bin" / "pydantic-ai-chat"), "--help")
    assert helped.returncode == 0 and "--max-streams" in helped.stdout, helped.stderr[-2000:]
    page = run_installed(
        sys.executable, "-c", "import web.sse as m; print(m.__file__); print(m.DEMO_PAGE.read_text()[:15])"
    )
    assert page.stdout.startswith(str(target)) and "<!doctype html>" in page.stdout.lower(), page.stderr[-2000:]
    assert list(elsewhere.iterdir()) == []
