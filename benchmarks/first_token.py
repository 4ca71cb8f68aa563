"""Time to first token: through the running app (its real queue, over HTTP) vs pydantic-ai in-process.

    python -m benchmarks.first_token            # 7 runs each, writes benchmarks/RESULTS.md
    python -m benchmarks.first_token --quick    # 2 runs, no file (the test suite runs this)

Both sides use the same demo model with a fixed 300 ms first-token delay, so what is measured is
the app's own overhead. The app is driven like a browser drives it: join the queue, then read the
SSE stream with httpx (gradio_client polls every 50 ms and would measure itself).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import gradio
import httpx
import pydantic_ai
from pydantic_ai import Agent
from pydantic_ai.conversation import Conversation

from chat.config import Settings
from chat.demo_model import DemoModel, DemoPace
from tests.apps import running_app

FIRST_TOKEN_DELAY = 0.3
RESULTS = Path(__file__).with_name("RESULTS.md")


async def raw_first_token(pace: DemoPace) -> float:
    agent = Agent(DemoModel(pace))
    started = time.perf_counter()
    async with agent.run_stream("hello", conversation=Conversation()) as run:
        async for _ in run.stream_text(delta=True, debounce_by=None):
            return time.perf_counter() - started
    raise RuntimeError("no text streamed")


def chat_fn_index(base_url: str) -> int:
    config = httpx.get(f"{base_url}config").json()
    for index, dependency in enumerate(config["dependencies"]):
        if dependency.get("api_name") == "chat":
            return dependency.get("id", index)
    raise RuntimeError("no /chat endpoint")


def app_first_token(base_url: str, fn_index: int, owner: str) -> float:
    session = uuid.uuid4().hex  # the last input is the conversation-id State: None starts a new one
    payload = {
        "data": ["hello", "demo", owner, None, "window"],
        "fn_index": fn_index,
        "session_hash": session,
        "event_data": None,
    }
    with httpx.Client(base_url=base_url, timeout=30) as client:
        started = time.perf_counter()
        client.post("gradio_api/queue/join", json=payload).raise_for_status()
        with client.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_generating":
                    return time.perf_counter() - started
                if message.get("msg") == "process_completed":
                    raise RuntimeError(f"completed without streaming: {message}")
    raise RuntimeError("stream ended early")


def summarize(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f} ms (min {min(samples) * 1000:.0f}, max {max(samples) * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two runs each and no results file")
    args = parser.parse_args()
    runs = 2 if args.quick else 7
    pace = DemoPace(first_token_delay=FIRST_TOKEN_DELAY, tokens_per_second=0)

    asyncio.run(raw_first_token(pace))  # warm-up, as the app does at start
    raw = [asyncio.run(raw_first_token(pace)) for _ in range(runs)]
    settings = Settings(demo_first_token_delay=FIRST_TOKEN_DELAY, demo_tokens_per_second=0)
    with running_app(settings) as app:
        fn_index = chat_fn_index(app.url)
        app_first_token(app.url, fn_index, "bench-warm-up")
        through_app = [app_first_token(app.url, fn_index, f"bench-{n}") for n in range(runs)]

    ratio = statistics.median(through_app) / statistics.median(raw)
    table = "\n".join(
        [
            "| benchmark | app | raw pydantic-ai | app / raw | goal |",
            "|---|---|---|---|---|",
            f"| time to first token (HTTP queue, {FIRST_TOKEN_DELAY * 1000:.0f} ms model) | {summarize(through_app)} "
            f"| {summarize(raw)} | {ratio:.2f} | <= 1.10 |",
        ]
    )
    print(table)
    if not args.quick:
        RESULTS.write_text(
            "# Benchmark results\n\n"
            f"`python -m benchmarks.first_token` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{platform.machine()}, {platform.python_version()}, pydantic-ai {pydantic_ai.__version__}, "
            f"gradio {gradio.__version__}; median of {runs} runs.\n\n{table}\n"
        )


if __name__ == "__main__":
    main()
