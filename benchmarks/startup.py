"""Start-up: `python app.py` until the page answers, vs `python -c "import gradio"`.

    python -m benchmarks.startup            # 5 runs of each
    python -m benchmarks.startup --quick    # 1 run (the test suite runs this)

A workshop restarts the app often and a Space cold-starts it; most of the wait is importing
Gradio, which no Gradio app avoids. `app.demo` (building the UI and the store, no server) shows
what our own start-up adds before the server launches.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import ROOT, Row, Samples, Section, run_as_script
from tests.apps import free_port


def timed_command(command: list[str], environment: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=environment, check=True, capture_output=True)
    return time.perf_counter() - started


def app_until_page_answers(environment: dict[str, str]) -> float:
    port = free_port()
    environment = {**environment, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("python app.py exited")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > 120:
                raise RuntimeError("python app.py did not answer in 120 s")
            time.sleep(0.01)
    finally:
        process.terminate()
        process.wait(timeout=20)


def run(quick: bool) -> Section:
    runs = 1 if quick else 5
    with tempfile.TemporaryDirectory(prefix="chat-startup-") as folder:
        environment = {**os.environ, "CHAT_DB": str(Path(folder) / "chat.db")}
        timed_command([sys.executable, "-c", "import gradio"], environment)  # warm the file cache
        gradio_import = Samples.of(
            [timed_command([sys.executable, "-c", "import gradio"], environment) for _ in range(runs)]
        )
        app_import = Samples.of(
            [timed_command([sys.executable, "-c", "import app; app.demo"], environment) for _ in range(runs)]
        )
        page = Samples.of([app_until_page_answers(environment) for _ in range(runs)])
    return Section(
        "Start-up",
        [
            Row('`python -c "import gradio"`', gradio_import.seconds(), "", None),
            Row(
                '`python -c "import app; app.demo"` (UI and store built, no server)',
                app_import.seconds(),
                gradio_import.seconds(),
                app_import.median / gradio_import.median,
            ),
            Row(
                "`python app.py` until the page answers",
                page.seconds(),
                gradio_import.seconds(),
                page.median / gradio_import.median,
            ),
        ],
        [
            "The page-answers time includes the warm-up turn the app runs before launching (pydantic-ai's first-run imports and schema builds)."
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
