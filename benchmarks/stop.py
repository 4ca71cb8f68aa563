"""Stop under load: from pressing Stop to the end of the answer's stream, alone and with 200 chats at once.

    python -m benchmarks.stop            # 1 and 200 chats, 5 runs each
    python -m benchmarks.stop --quick    # 1 and 6 chats, 2 runs (the test suite runs this)

Each visitor opens its page session, starts a long answer ("count to 3000" at 30 tokens/s) through
Gradio's queue as the page does, and once every answer is streaming presses Stop the way the page's
Stop button does: Gradio's unqueued `/run/predict` with that session (its state knows the chat). The
figure is each chat's time from its Stop request to the last message of its answer's stream.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import httpx

from benchmarks.common import AppPage, Row, Samples, Section, chat_payload, p95, run_as_script, served_app

GOAL_MS = 250
LONG = "count to 3000"


def stop_fn_index(base_url: str) -> int:
    config = httpx.get(f"{base_url}config", timeout=30).json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == "stop")


class StoppedChat:
    """One visitor's answer: streaming, then stopped; when its stream ended after the Stop was sent."""

    def __init__(self, client: httpx.AsyncClient, session: str) -> None:
        self.client, self.session = client, session
        self.owner = f"stopper-{uuid.uuid4().hex}"
        self.streaming = asyncio.Event()
        self.stop_sent: float | None = None
        self.ended: float | None = None
        self.error: str | None = None

    async def answer(self, fn_index: int) -> None:
        try:
            joined = await self.client.post(
                "gradio_api/queue/join", json=chat_payload(fn_index, LONG, self.owner, self.session)
            )
            joined.raise_for_status()
            params = {"session_hash": self.session}
            async with self.client.stream("GET", "gradio_api/queue/data", params=params) as stream:
                async for line in stream.aiter_lines():
                    if '"process_generating"' in line:
                        self.streaming.set()
                    elif '"process_completed"' in line:
                        self.ended = time.perf_counter()
                        break
        except httpx.HTTPError as error:
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.streaming.set()

    async def stop(self, fn_index: int) -> None:
        self.stop_sent = time.perf_counter()
        body = {"data": [self.owner, None], "fn_index": fn_index, "session_hash": self.session, "event_data": None}
        (await self.client.post("gradio_api/run/predict", json=body)).raise_for_status()

    @property
    def seconds(self) -> float | None:
        if self.error or self.ended is None or self.stop_sent is None:
            return None
        return self.ended - self.stop_sent


async def stop_all(url: str, size: int) -> tuple[list[float], int]:
    """`size` answers streaming at once, all stopped at once: each one's press-to-end time, and the failures."""
    limits = httpx.Limits(max_connections=size * 3 + 10, max_keepalive_connections=size * 3)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        page, stop_index = AppPage.of(url), stop_fn_index(url)
        chats = [StoppedChat(client, uuid.uuid4().hex) for _ in range(size)]
        opening = asyncio.Semaphore(20)

        async def load(chat: StoppedChat) -> None:
            async with opening:
                await page.open(client, chat.session)

        await asyncio.gather(*(load(chat) for chat in chats))
        answers = [asyncio.create_task(chat.answer(page.chat_index)) for chat in chats]
        await asyncio.gather(*(chat.streaming.wait() for chat in chats))
        await asyncio.sleep(1.0)  # every answer well under way
        await asyncio.gather(*(chat.stop(stop_index) for chat in chats))
        await asyncio.wait_for(asyncio.gather(*answers), timeout=60)
        times = [chat.seconds for chat in chats]
        return [t for t in times if t is not None], sum(1 for t in times if t is None)


def measure(url: str, size: int, runs: int) -> tuple[Samples, int]:
    """The p95 of each run (the median alone), and the chats whose stream failed or never ended."""
    figures, failures = [], 0
    for run_number in range(runs):
        times, failed = asyncio.run(stop_all(url, size))
        failures += failed
        figures.append(p95(times) if times else float("nan"))
        print(
            f"  stop with {size} streaming, run {run_number + 1}/{runs}: p95 {figures[-1] * 1000:.0f} ms",
            file=sys.stderr,
        )
    return Samples.of(figures), failures


def run(quick: bool) -> Section:
    runs, crowd = (2, 6) if quick else (5, 200)
    with served_app(0.3, 30.0) as app:
        alone, alone_failed = measure(app.url, 1, runs)
        crowded, failed = measure(app.url, crowd, runs)
    met = crowded.median * 1000 <= GOAL_MS and failed == 0
    rows = [
        Row("Stop of one answer alone: press to end of stream", alone.ms(), "", None),
        Row(
            f"Stop with {crowd} answers streaming, all pressed at once: p95 press to end of stream",
            crowded.ms(),
            alone.ms() + " (alone)",
            crowded.median / alone.median,
            f"<= {GOAL_MS} ms, none lost",
            met if not quick else None,
        ),
        Row(
            f"answers whose stream failed or never ended ({crowd * runs + runs} stopped)",
            str(failed + alone_failed),
            "",
            None,
        ),
    ]
    return Section(
        "Stop under load",
        rows,
        [
            (
                f"Each figure over {runs} runs; a run's figure with {crowd} is its p95 over all its chats. The "
                "page's Stop is an unqueued event, so it does not wait behind the answers it ends."
            )
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
