"""A 20,000-token answer at full speed: the app vs the same agent behind a minimal FastAPI SSE endpoint.

    python -m benchmarks.long_answer            # 5 runs each of a 20,000- and a 5,000-token answer
    python -m benchmarks.long_answer --quick    # 2 runs of 2,000 and 500 tokens (the test suite runs this)

Measured as a client sees it: total time, updates received, bytes on the wire. The app is measured
twice: through Gradio's queue (what the page uses) and through its own SSE API (`/api/chat/stream`).
Bytes must grow linearly with the answer: re-sending the whole message on every update would not.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from benchmarks.common import AppPage, Row, Samples, Section, StreamTiming, run_as_script, served_app, served_baseline

FIRST_TOKEN_DELAY = 0.3
GOAL = 2.0
LINEAR_GOAL = 1.25


async def sse_stream(
    url: str, params: dict, headers: dict | None = None, update_event: str | None = None
) -> StreamTiming:
    """Read one SSE answer to its end; an update is a `data:` event (of `update_event`, when named)."""
    timing = StreamTiming()
    started = time.perf_counter()
    event = None
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("GET", url, params=params, headers=headers or {}) as stream,
    ):
        stream.raise_for_status()
        async for line in stream.aiter_lines():
            timing.bytes += len(line.encode()) + 1
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and (update_event is None or event == update_event):
                timing.updates += 1
                if timing.first_token is None:
                    timing.first_token = time.perf_counter() - started
            elif not line:
                event = None
    timing.total = time.perf_counter() - started
    return timing


async def through_queue(url: str, prompt: str, runs: int) -> list[StreamTiming]:
    """Each answer in a new page session, so each starts a new conversation (no long history to send)."""
    page = AppPage.of(url)
    timings = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for _ in range(runs):
            session = uuid.uuid4().hex
            await page.open(client, session)
            timing = await page.chat(client, prompt, f"long-{session}", session)
            if timing.error:
                raise RuntimeError(f"chat failed: {timing.error}")
            timings.append(timing)
    return timings


async def measure(tokens: int, runs: int) -> dict[str, list[StreamTiming]]:
    prompt = f"count to {tokens}"
    measured: dict[str, list[StreamTiming]] = {}
    with served_baseline("sse", FIRST_TOKEN_DELAY, 0) as raw:
        measured["sse"] = [await sse_stream(f"{raw.url}stream", {"message": prompt}) for _ in range(runs)]
    with served_app(FIRST_TOKEN_DELAY, 0, CHAT_MAX_ANSWER_CHARS="0") as app:  # it measures long answers
        measured["app"] = await through_queue(app.url, prompt, runs)
        measured["api"] = [
            await sse_stream(
                f"{app.url}api/chat/stream",
                {"message": prompt},
                {"x-chat-owner": f"long-{uuid.uuid4().hex}"},
                update_event="delta",
            )
            for _ in range(runs)
        ]
    return measured


def _totals(timings: list[StreamTiming]) -> Samples:
    return Samples.of([t.total for t in timings])


def _counts(timings: list[StreamTiming], attribute: str) -> Samples:
    return Samples.of([float(getattr(t, attribute)) for t in timings])


def run(quick: bool) -> Section:
    runs, long, short = (2, 2_000, 500) if quick else (5, 20_000, 5_000)
    at_long = asyncio.run(measure(long, runs))
    at_short = asyncio.run(measure(short, runs))
    sse_total = _totals(at_long["sse"])
    rows = []
    for name, label in (("app", "app through Gradio's queue"), ("api", "app's own SSE API")):
        total = _totals(at_long[name])
        ratio = total.median / sse_total.median
        rows.append(
            Row(
                f"{long:,}-token answer, {label}: total time",
                total.seconds(),
                sse_total.seconds(),
                ratio,
                f"<= {GOAL:g}",
                ratio <= GOAL,
            )
        )
    for name, label in (("app", "Gradio queue"), ("api", "SSE API"), ("sse", "minimal SSE")):
        updates, size = _counts(at_long[name], "updates"), _counts(at_long[name], "bytes")
        growth = size.median / _counts(at_short[name], "bytes").median / (long / short)
        rows.append(Row(f"{long:,}-token answer, {label}: updates received", updates.count(), "", None))
        rows.append(
            Row(
                f"bytes, {label}: {long:,} vs {short:,} tokens, per token",
                f"{size.median / 1024:,.0f} KiB",
                f"{_counts(at_short[name], 'bytes').median / 1024:,.0f} KiB",
                growth,
                f"<= {LINEAR_GOAL:g} (linear = 1, quadratic = {long / short:g})",
                growth <= LINEAR_GOAL,
            )
        )
    return Section(
        f"A {long:,}-token answer at full speed",
        rows,
        [
            (
                "Baseline: the same agent behind a minimal FastAPI endpoint sending one SSE event per delta "
                "(`benchmarks/baselines.py sse`). The app coalesces its updates to at most one per 50 ms, so it "
                "sends far fewer updates; Gradio sends each update as a diff, so bytes stay linear."
            ),
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
