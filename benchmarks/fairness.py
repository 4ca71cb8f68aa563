"""One visitor against everyone else, on one `python app.py` with its default limits.

    python -m benchmarks.fairness            # a hog of 20 loops; 200 "count to 999999" at once
    python -m benchmarks.fairness --quick    # 3 loops; 6 at once (the test suite runs this)

- **A hog**: one visitor (one owner, many page sessions, as a script would) keeps asking for the longest
  answer there is, "count to 999999" at full speed, from many loops at once, sending again as soon as
  an answer ends or is refused. Meanwhile another visitor chats. Their first token, against the same
  visitor's on the idle server: goal <= 2x.
- **Memory**: many visitors each ask for "count to 999999" at the same moment, at full speed; the
  server's peak memory must stay under the ceiling (the answer limit bounds what each one costs).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import uuid

import httpx

from benchmarks.common import AppPage, Row, Samples, Section, StreamTiming, run_as_script, served_app

FIRST_TOKEN_DELAY = 0.3
FIRST_TOKEN_GOAL = 2.0
MEMORY_CEILING_MB = 1024
LONGEST = "count to 999999"
DEFAULT_LIMITS = {"CHAT_MAX_MESSAGES_PER_MINUTE": "20"}  # served_app lifts it for the other benchmarks


async def neighbour_first_tokens(url: str, runs: int) -> Samples:
    """A visitor's own page session, `runs` short turns one after another; the first token of each."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        session, owner = uuid.uuid4().hex, f"neighbour-{uuid.uuid4().hex}"
        page = AppPage.of(url)
        await page.open(client, session)
        firsts = []
        for number in range(runs):
            timing = await page.chat(client, f"count to {10 + number}", owner, session)
            if timing.error or timing.first_token is None:
                raise RuntimeError(f"the neighbour's turn failed: {timing.error}")
            firsts.append(timing.first_token)
        return Samples.of(firsts)


class Hog:
    """`loops` page sessions of one owner, each asking for the longest answer again as soon as it can."""

    def __init__(self, url: str, loops: int) -> None:
        self.url, self.loops = url, loops
        self.owner = f"hog-{uuid.uuid4().hex}"
        self.answered = self.refused = self.dropped = 0
        self.client = httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=loops * 2 + 4))
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        page = AppPage.of(self.url)
        sessions = [uuid.uuid4().hex for _ in range(self.loops)]
        for session in sessions:
            await page.open(self.client, session)
        self._tasks = [asyncio.create_task(self._loop(page, session)) for session in sessions]
        await asyncio.sleep(2.0)  # the hog's answers are streaming and its refusals coming back

    async def _loop(self, page: AppPage, session: str) -> None:
        while True:
            timing: StreamTiming = await page.chat(self.client, LONGEST, self.owner, session)
            if timing.error is None:
                self.answered += 1
            elif timing.error.startswith("⚠️"):
                self.refused += 1
                await asyncio.sleep(0.5)  # a script retrying: often, but not in a busy loop
            else:
                self.dropped += 1
                print(f"  hog error: {timing.error[:200]}", file=sys.stderr, flush=True)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.aclose()


async def with_hog(url: str, loops: int, runs: int) -> tuple[Samples, Hog]:
    hog = Hog(url, loops)
    try:
        await hog.start()
        return await neighbour_first_tokens(url, runs), hog
    finally:
        await hog.stop()


async def all_at_once(url: str, size: int) -> list[StreamTiming]:
    limits = httpx.Limits(max_connections=size * 2 + 10, max_keepalive_connections=size * 2, keepalive_expiry=4.0)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        sessions = [uuid.uuid4().hex for _ in range(size)]
        page = AppPage.of(url)
        opening = asyncio.Semaphore(20)

        async def load(session: str) -> None:
            async with opening:
                await page.open(client, session)

        await asyncio.gather(*(load(session) for session in sessions))
        return list(await asyncio.gather(*(page.chat(client, LONGEST, f"many-{s}", s) for s in sessions)))


def run(quick: bool) -> Section:
    loops, runs, crowd = (3, 3, 6) if quick else (20, 5, 200)
    rows: list[Row] = []
    with served_app(FIRST_TOKEN_DELAY, 0, **DEFAULT_LIMITS) as app:
        idle = asyncio.run(neighbour_first_tokens(app.url, runs))
        busy, hog = asyncio.run(with_hog(app.url, loops, runs))
        ratio = busy.median / idle.median
        rows += [
            Row(
                f"another visitor's first token while one visitor runs {loops} loops of '{LONGEST}'",
                busy.ms(),
                idle.ms() + " (idle server)",
                ratio,
                f"<= {FIRST_TOKEN_GOAL:g}",
                ratio <= FIRST_TOKEN_GOAL,
            ),
            Row(
                "the hog's requests: answered / refused with a sentence / dropped",
                f"{hog.answered} / {hog.refused} / {hog.dropped}",
                "",
                None,
                "0 dropped",
                hog.dropped == 0,
            ),
        ]
    with served_app(FIRST_TOKEN_DELAY, 0, **DEFAULT_LIMITS) as app:
        idle_mb = app.rss_mb()
        timings = asyncio.run(all_at_once(app.url, crowd))
        failed = [t.error for t in timings if t.error]
        for message in sorted(set(failed)):
            print(f"  error x{failed.count(message)}: {message[:300]}", file=sys.stderr, flush=True)
        peak = app.peak_rss_mb()
        longest = statistics.median(t.bytes for t in timings) / 1e6
        rows += [
            Row(
                f"server memory, {crowd} visitors each asking '{LONGEST}' at once (peak)",
                f"{peak:,.0f} MiB",
                f"{idle_mb:,.0f} MiB idle",
                None,
                f"<= {MEMORY_CEILING_MB:,} MiB",
                peak <= MEMORY_CEILING_MB,
            ),
            Row(
                f"those {crowd} answers: failed / streamed bytes each (median)",
                f"{len(failed)} / {longest:.2f} MB",
                "",
                None,
                "0 failed",
                not failed,
            ),
        ]
    return Section(
        "One visitor against everyone else",
        rows,
        [
            (
                "The app runs with its default per-visitor limits (3 answers running, 20 a minute, answers of at "
                "most 40,000 characters) and the demo model at full speed: the hardest a visitor can push it."
            ),
            (
                f"The first-token figure is over {runs} turns of the other visitor; the memory ceiling is a "
                "fixed figure for a small Space, not a ratio."
            ),
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
