"""The real app, launched on 127.0.0.1 at a free port for integration and browser tests."""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from chat.config import Settings
from chat.turns import ChatService
from deploy.local_postgres import free_port
from server import build_app, serve


@dataclass
class RunningApp:
    url: str
    demo: gr.Blocks
    service: ChatService


def visitor_token(label: str) -> str:
    """An API caller's owner token (at least 128 random bits), readable in a failing test's output."""
    return f"{label}-{secrets.token_urlsafe(16)}"


@contextmanager
def running_app(settings: Settings, port: int | None = None) -> Iterator[RunningApp]:
    """Launch the app; give `settings.db_path` a test folder, or it gets a fresh temporary one."""
    if settings.db_path == Settings().db_path:
        settings = dataclasses.replace(settings, db_path=str(Path(tempfile.mkdtemp(prefix="chat-test-")) / "chat.db"))
    demo, services = build_app(settings)
    port = port or free_port()
    serve(demo, services, settings, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield RunningApp(f"http://127.0.0.1:{port}/", demo, services.page.chat)
    finally:
        demo.close()


def queue_call(url: str, handler: str, data: list, session_hash: str, event_data: dict | None = None) -> list:
    """Run any event the way a raw `POST /gradio_api/queue/join` does, hidden or not; return its last output.

    `event_data`: what a page script sends with its event (the sidebar's rows send the chat they act on)."""
    import json

    import httpx

    config = httpx.get(f"{url}config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == handler)
    payload = {"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": event_data}
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("gradio_api/queue/join", json=payload).raise_for_status()
        last: list = []
        with client.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") in ("process_generating", "process_completed"):
                        last = (message.get("output") or {}).get("data") or last
                    if message.get("msg") == "process_completed":
                        return last
    return last


@contextmanager
def app_process(environment: dict[str, str], *, flags: bool = False) -> Iterator[tuple[subprocess.Popen, str]]:
    """`python app.py` as a user runs it (README command 1), on a free port; yields the process and its URL.

    The port and address are given as Gradio's environment variables, or with `flags` as `--port`/`--host`."""
    port = free_port()
    command = [sys.executable, "app.py"]
    if flags:
        command += ["--port", str(port), "--host", "127.0.0.1"]
        environment = {k: v for k, v in environment.items() if not k.startswith("GRADIO_SERVER_")}
    else:
        environment = {**environment, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    with serving_process(command, environment, port) as served:
        yield served


@contextmanager
def serving_process(
    command: list[str], environment: dict[str, str], port: int
) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start a server process from the project folder; yield it and its URL once `GET /` answers 200."""
    import httpx

    process = subprocess.Popen(
        command,
        cwd=Path(__file__).resolve().parent.parent,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{' '.join(command)} did not answer"
            time.sleep(0.05)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)
