"""The real app, launched on 127.0.0.1 at a free port for integration and browser tests."""

from __future__ import annotations

import dataclasses
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from app import build_app
from chat.config import Settings
from chat.turns import ChatService
from ui import launch_options


@dataclass
class RunningApp:
    url: str
    demo: gr.Blocks
    service: ChatService


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_app(settings: Settings) -> Iterator[RunningApp]:
    """Launch the app; give `settings.db_path` a test folder, or it gets a fresh temporary one."""
    if settings.db_path == Settings().db_path:
        settings = dataclasses.replace(settings, db_path=str(Path(tempfile.mkdtemp(prefix="chat-test-")) / "chat.db"))
    demo, service = build_app(settings)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options(settings)
    )
    try:
        yield RunningApp(f"http://127.0.0.1:{port}/", demo, service)
    finally:
        demo.close()
