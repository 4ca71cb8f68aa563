"""Stop under load: from pressing Stop to the end of the answer's stream, alone and with 200 chats at once.

    python -m benchmarks.stop            # 1 and 200 chats, 5 runs each
    python -m benchmarks.stop --quick    # 1 and 6 chats, 2 runs (the test suite runs this)

Each visitor opens its page session, starts a long answer ("count to 3000" at 30 tokens/s) through
Gradio's queue as the page does, and once every answer is streaming presses Stop the way the page's
Stop button does: it posts the stop request that the answer's first update handed the page (its
conversation and its run's tag) to the app's own `/api/chat/stop`, on a connection it holds
(`benchmarks/lean_http.py`). The figure is each chat's time from its Stop request to the last message
of its answer's stream: with all pressed at once, with some pressed one at a time while the others
stream on, and, for comparison, all at once through Gradio's unqueued Stop event (`/run/predict`,
which the page presses only when its own route stops nothing or cannot be reached).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import httpx

from benchmarks.common import AppPage, Row, Samples, Section, chat_payload, p95, run_as_script, served_app
from benchmarks.lean_http import LeanConnection

GOAL_MS = 250
PRESS_GAP = 0.1
"""Between two Stops pressed one at a time: a crowd whose presses come apart, as a workshop room's do."""
LONG = "count to 3000"


def stop_fn_index(base_url: str) -> int:
    config = httpx.get(f"{base_url}config", timeout=30).json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == "stop")


def page_stop_request(message: dict) -> dict | None:
    """The stop request among an update's outputs, as the page keeps it for its Stop button."""
    for value in message.get("output", {}).get("data", []):
        if isinstance(value, str) and value.startswith('{"conversation_id"'):
            return json.loads(value)
    return None


class StoppedChat:
    """One visitor's answer: streaming, then stopped; when its stream ended after the Stop was sent.

    Its Stop goes over a connection it opened before its answer started, as a browser's page holds one
    (`benchmarks/lean_http.py`: with 200 visitors in one process, that is what keeps the figure the
    server's and not the load generator's). `by_gradio` presses Gradio's Stop event instead of
    posting the answer's own stop request to the app's route."""

    def __init__(self, url: str, session: str, by_gradio: bool = False) -> None:
        self.url, self.session, self.by_gradio = url, session, by_gradio
        self.owner = f"stopper-{uuid.uuid4().hex}"
        self.streaming = asyncio.Event()
        self.stop_request: dict | None = None
        self.stop_sent: float | None = None
        self.ended: float | None = None
        self.error: str | None = None
        self._stopper: LeanConnection | None = None
        self._first_lines = b""

    async def answer(self, client: httpx.AsyncClient, fn_index: int) -> None:
        try:
            self._stopper = await LeanConnection.open(self.url)
            joined = await client.post(
                "gradio_api/queue/join", json=chat_payload(fn_index, LONG, self.owner, self.session)
            )
            joined.raise_for_status()
            stream = await LeanConnection.open(self.url)
            try:
                await stream.read_stream_until(
                    "gradio_api/queue/data", {"session_hash": self.session}, b'"process_completed"', self._saw
                )
                self.ended = time.perf_counter()
            finally:
                await stream.close()
        except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as error:
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.streaming.set()

    def _saw(self, block: bytes) -> None:
        """Reads the answer's first update whole (its stop request is in it); later blocks only pass."""
        if self.streaming.is_set():
            return
        self._first_lines += block
        for line in self._first_lines.split(b"\n")[:-1]:
            if line.startswith(b"data:") and b'"process_generating"' in line:
                self.stop_request = page_stop_request(json.loads(line[5:]))
                self.streaming.set()
                return

    async def stop(self, fn_index: int) -> None:
        self.stop_sent = time.perf_counter()
        if self._stopper is None:
            self.error = "no connection to press Stop on"
            return
        try:
            if self.by_gradio:
                event = {
                    "data": [self.owner, None],
                    "fn_index": fn_index,
                    "session_hash": self.session,
                    "event_data": None,
                }
                status, reply = await self._stopper.post_json("gradio_api/run/predict", event)
                stopped = status == 200
            elif self.stop_request is None:
                self.error = "the answer's first update carried no stop request"
                return
            else:
                status, reply = await self._stopper.post_json(
                    "api/chat/stop", self.stop_request, {"X-Chat-Owner": self.owner}
                )
                stopped = status == 200 and json.loads(reply).get("stopped") is True
            if not stopped:
                self.error = f"Stop answered {status}: {reply[:200]!r}"
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            self.error = f"{type(error).__name__}: {error}"
        finally:
            await self._stopper.close()

    @property
    def seconds(self) -> float | None:
        if self.error or self.ended is None or self.stop_sent is None:
            return None
        return self.ended - self.stop_sent


async def stop_all(url: str, size: int, one_by_one: int = 0, by_gradio: bool = False) -> tuple[list[float], int]:
    """`size` answers streaming at once, all stopped at once: each one's press-to-end time, and the failures.

    With `one_by_one`, that many are stopped one at a time (`PRESS_GAP` apart) while the others stream
    on, and only theirs are timed; the rest are stopped together afterwards. `by_gradio`: every Stop
    through Gradio's event instead of the app's route."""
    limits = httpx.Limits(max_connections=size * 3 + 10, max_keepalive_connections=size * 3)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        page, stop_index = AppPage.of(url), stop_fn_index(url)
        chats = [StoppedChat(url, uuid.uuid4().hex, by_gradio) for _ in range(size)]
        opening = asyncio.Semaphore(20)

        async def load(chat: StoppedChat) -> None:
            async with opening:
                await page.open(client, chat.session)

        await asyncio.gather(*(load(chat) for chat in chats))
        answers = [asyncio.create_task(chat.answer(client, page.chat_index)) for chat in chats]
        await asyncio.gather(*(chat.streaming.wait() for chat in chats))
        await asyncio.sleep(1.0)  # every answer well under way
        if one_by_one:
            timed, rest = chats[:one_by_one], chats[one_by_one:]
            presses = []
            for chat in timed:
                presses.append(asyncio.create_task(chat.stop(stop_index)))
                await asyncio.sleep(PRESS_GAP)
            await asyncio.gather(*presses)
            await asyncio.wait_for(asyncio.gather(*answers[:one_by_one]), timeout=60)
            await asyncio.gather(*(chat.stop(stop_index) for chat in rest))  # the others, untimed
        else:
            timed = chats
            await asyncio.gather(*(chat.stop(stop_index) for chat in chats))
        await asyncio.wait_for(asyncio.gather(*answers), timeout=60)
        times = [chat.seconds for chat in timed]
        failed = sum(1 for chat in chats if chat.error or chat.ended is None)
        return [t for t in times if t is not None], failed


def measure(url: str, size: int, runs: int, one_by_one: int = 0, by_gradio: bool = False) -> tuple[Samples, int]:
    """The p95 of each run (the median alone), and the chats whose stream failed or never ended."""
    figures, failures = [], 0
    for run_number in range(runs):
        times, failed = asyncio.run(stop_all(url, size, one_by_one, by_gradio))
        failures += failed
        figures.append(p95(times) if times else float("nan"))
        print(
            f"  stop with {size} streaming{' one by one' if one_by_one else ''}{' by Gradio' if by_gradio else ''}, run {run_number + 1}/{runs}: p95 {figures[-1] * 1000:.0f} ms",
            file=sys.stderr,
        )
    return Samples.of(figures), failures


def run(quick: bool) -> Section:
    runs, crowd, sample = (2, 6, 3) if quick else (5, 200, 30)
    with served_app(0.3, 30.0) as app:
        alone, alone_failed = measure(app.url, 1, runs)
        crowded, failed = measure(app.url, crowd, runs)
        apart, apart_failed = measure(app.url, crowd, runs, one_by_one=sample)
        through_gradio, gradio_failed = measure(app.url, crowd, runs, by_gradio=True)
    failed += apart_failed + gradio_failed
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
            f"Stop with {crowd} answers streaming, {sample} pressed one at a time {PRESS_GAP * 1000:.0f} ms apart: "
            "p95 press to end of stream",
            apart.ms(),
            alone.ms() + " (alone)",
            apart.median / alone.median,
        ),
        Row(
            f"Stop with {crowd} answers streaming, all pressed at once through Gradio's Stop event (the page's "
            "fallback): p95 press to end of stream",
            through_gradio.ms(),
            crowded.ms() + " (the app's route)",
            through_gradio.median / crowded.median,
        ),
        Row(
            f"answers whose stream failed or never ended ({3 * crowd * runs + runs} stopped)",
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
                "page's Stop posts its answer's stop request to the app's own /api/chat/stop, which neither "
                "waits behind the answers it ends nor goes through Gradio's event processing."
            )
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
