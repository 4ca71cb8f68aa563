"""Time to first token over each front-end protocol, against the app's own SSE API in the same run.

    python -m benchmarks.protocols            # 9 answers per route
    python -m benchmarks.protocols --quick    # 3 (the test suite runs this)

One `python app.py` with the demo model waiting a fixed delay before its first token. Each route is
asked for a new conversation's answer by a client reading its stream (httpx), the routes taken in turn
so that any drift of the machine falls on all of them alike; the figure is the time from sending the
request to reading the first piece of answer text.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable

import httpx

from benchmarks.common import Row, Samples, Section, goal_row, run_as_script, served_app

FIRST_TOKEN_DELAY = 0.3
OPENAI_GOAL = 1.05
"""Issue 18: first token over `/v1/chat/completions` within 5% of the app's own SSE API."""
PROMPT = "hello"


def _sse_api(owner: str) -> tuple[str, dict, Callable[[str], bool]]:
    return "api/chat", {"message": PROMPT}, lambda line: line.startswith("event: delta")


def _openai(owner: str) -> tuple[str, dict, Callable[[str], bool]]:
    body = {"model": "demo", "messages": [{"role": "user", "content": PROMPT}], "stream": True}

    def has_text(line: str) -> bool:
        if not line.startswith("data: {"):
            return False
        choices = json.loads(line[len("data: ") :]).get("choices") or [{}]
        return bool(choices[0].get("delta", {}).get("content"))

    return "v1/chat/completions", body, has_text


def _vercel_ai(owner: str) -> tuple[str, dict, Callable[[str], bool]]:
    message = {"id": "m1", "role": "user", "parts": [{"type": "text", "text": PROMPT}]}
    body = {"id": secrets.token_urlsafe(12), "trigger": "submit-message", "messages": [message]}
    return "api/vercel-ai", body, lambda line: '"type":"text-delta"' in line


def _ag_ui(owner: str) -> tuple[str, dict, Callable[[str], bool]]:
    body = {
        "threadId": secrets.token_urlsafe(12),
        "runId": secrets.token_hex(8),
        "messages": [{"id": "m1", "role": "user", "content": PROMPT}],
        "state": None,
        "tools": [],
        "context": [],
        "forwardedProps": {},
    }
    return "api/ag-ui", body, lambda line: '"type":"TEXT_MESSAGE_CONTENT"' in line


ROUTES = {
    "the app's SSE API (`/api/chat`)": _sse_api,
    "OpenAI-compatible (`/v1/chat/completions`, streaming)": _openai,
    "Vercel AI SDK stream (`/api/vercel-ai`)": _vercel_ai,
    "AG-UI (`/api/ag-ui`)": _ag_ui,
}


def first_token(client: httpx.Client, route: Callable[[str], tuple[str, dict, Callable[[str], bool]]]) -> float:
    owner = secrets.token_urlsafe(24)
    path, body, is_text = route(owner)
    headers = {"x-chat-owner": owner, "authorization": f"Bearer bench-{owner}"}
    started = time.perf_counter()
    seen: float | None = None
    with client.stream("POST", path, json=body, headers=headers) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if seen is None and is_text(line):
                seen = time.perf_counter() - started
        # Read to the end: the next answer starts on an idle server, as the others' did.
    if seen is None:
        raise RuntimeError(f"no answer text over {path}")
    return seen


def run(quick: bool) -> Section:
    rounds = 3 if quick else 9
    samples: dict[str, list[float]] = {name: [] for name in ROUTES}
    with served_app(FIRST_TOKEN_DELAY, 0) as app, httpx.Client(base_url=app.url, timeout=60) as client:
        for route in ROUTES.values():
            first_token(client, route)  # warm-up: each route's first request sets up its own code paths
        for _ in range(rounds):
            for name, route in ROUTES.items():
                samples[name].append(first_token(client, route))
    baseline_name, *others = ROUTES
    baseline = Samples.of(samples[baseline_name])
    rows = [Row(f"first token, {baseline_name}", baseline.ms(), "(the baseline)")]
    for name in others:
        measured = Samples.of(samples[name])
        if name.startswith("OpenAI"):
            rows.append(goal_row(f"first token, {name}", measured, baseline, OPENAI_GOAL))
        else:
            rows.append(Row(f"first token, {name}", measured.ms(), baseline.ms(), measured.median / baseline.median))
    return Section(
        "Front-end protocols",
        rows,
        [
            (
                f"Baseline: the app's own SSE API in the same run and process; the demo model waits "
                f"{FIRST_TOKEN_DELAY * 1000:.0f} ms before its first token. Each answer is a new conversation of "
                "a new caller, the routes taken in turn."
            )
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
