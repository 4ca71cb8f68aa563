"""Many visitors at once: 50 and 200 simultaneous chats vs one chat alone, on one `python app.py`.

    python -m benchmarks.load            # 300-token answers at 30 tokens/s, 5 runs of each
    python -m benchmarks.load --quick    # 3 and 6 visitors, 20-token answers (the test suite runs this)

Each visitor has its own page session (opened first, as a page load does) and owner, and chats
through Gradio's queue like the page. The server runs in its own process; its memory is read from
/proc. The load generator is one asyncio process; each chat goes over a bare connection
(`benchmarks/lean_http.py`), since with httpx that process fell seconds behind at 200 chats and
counted its own lag as the server's first-token time.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import httpx

from benchmarks.common import (
    AppPage,
    Row,
    Samples,
    Section,
    StreamTiming,
    lean_queue_chat,
    p95,
    run_as_script,
    served_app,
)

FIRST_TOKEN_DELAY = 0.3
WALL_GOAL = 1.3
FIRST_TOKEN_GOAL = 2.0


class Crowd:
    """`size` visitors, each with an open page session, chatting at the same moment."""

    def __init__(self, url: str, size: int, *, own_browsers: bool = False) -> None:
        """`own_browsers`: each visitor has a client of its own, with its own cookie jar, as separate
        browsers do (behind nginx, the visitor cookie is what keeps a visitor on one replica)."""
        self.url = url
        self.sessions = [uuid.uuid4().hex for _ in range(size)]
        self.own_browsers = own_browsers
        clients = size if own_browsers else 1
        self.clients = [
            httpx.AsyncClient(
                base_url=url,
                timeout=120,
                # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them: a POST
                # on a connection the server has just closed fails with ReadError, which a browser retries.
                limits=httpx.Limits(
                    max_connections=size * 2 // clients + 10,
                    max_keepalive_connections=size * 2 // clients + 2,
                    keepalive_expiry=4.0,
                ),
            )
            for _ in range(clients)
        ]
        self.page = AppPage.of(url)

    def client_of(self, visitor: int) -> httpx.AsyncClient:
        return self.clients[visitor % len(self.clients)]

    async def open(self) -> None:
        """Open every visitor's page, 20 at a time: a workshop's pages do not all load in the same instant."""
        loading = asyncio.Semaphore(20)

        async def load(visitor: int, session: str) -> None:
            async with loading:
                if self.own_browsers:
                    (await self.client_of(visitor).get("/")).raise_for_status()  # the page: its visitor cookie
                await self.page.open(self.client_of(visitor), session)

        await asyncio.gather(*(load(n, session) for n, session in enumerate(self.sessions)))

    def cookie_of(self, visitor: int) -> str:
        """The cookies the visitor's browser holds since its page loaded, as it sends them."""
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.client_of(visitor).cookies.jar)

    async def chat_at_once(self, prompt: str) -> tuple[float, list[StreamTiming]]:
        """Every visitor sends `prompt` at once; each chat on a bare connection of its own, so that the load
        generator takes as little of the cores it shares with the server as it can (`lean_queue_chat`)."""
        index, cookies = self.page.chat_index, [self.cookie_of(n) for n in range(len(self.sessions))]
        started = time.perf_counter()
        timings = await asyncio.gather(
            *(
                lean_queue_chat(self.url, index, prompt, f"crowd-{session}", session, cookies[n])
                for n, session in enumerate(self.sessions)
            )
        )
        return time.perf_counter() - started, list(timings)

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


async def measure(
    url: str, size: int, prompt: str, runs: int, *, own_browsers: bool = False
) -> tuple[Samples, Samples, int]:
    """Wall time of each run, the p95 first-token time of each run, and the errors over all runs.

    Each distinct error is printed to stderr with its count, so a failure can be looked into."""
    crowd = Crowd(url, size, own_browsers=own_browsers)
    try:
        await crowd.open()
        walls, first_tokens, errors = [], [], 0
        for run_number in range(runs):
            wall, timings = await crowd.chat_at_once(prompt)
            print(f"  {size} at once, run {run_number + 1}/{runs}: {wall:.1f} s", file=sys.stderr, flush=True)
            walls.append(wall)
            failed = [t.error for t in timings if t.error]
            errors += len(failed)
            for message in sorted(set(failed)):
                print(f"  error x{failed.count(message)}: {message[:300]}", file=sys.stderr, flush=True)
            first_tokens.append(p95([t.first_token for t in timings if t.first_token is not None] or [float("nan")]))
        return Samples.of(walls), Samples.of(first_tokens), errors
    finally:
        await crowd.close()


def run(quick: bool) -> Section:
    runs, tokens, pace, crowds = (2, 20, 100.0, (3, 6)) if quick else (5, 300, 30.0, (50, 200))
    prompt = f"count to {tokens}"
    rows: list[Row] = []
    with served_app(FIRST_TOKEN_DELAY, pace) as app:
        idle_mb = app.rss_mb()
        alone_wall, alone_first, alone_errors = asyncio.run(measure(app.url, 1, prompt, runs))
        rows.append(Row(f"one chat alone: {tokens} tokens at {pace:g} tokens/s", alone_wall.seconds(), "", None))
        rows.append(Row("one chat alone: first token", alone_first.ms(), "", None))
        for size in crowds:
            wall, first, errors = asyncio.run(measure(app.url, size, prompt, runs))
            wall_ratio, first_ratio = wall.median / alone_wall.median, first.median / alone_first.median
            strict = size == crowds[0]
            rows += [
                Row(
                    f"{size} chats at once: wall time",
                    wall.seconds(),
                    alone_wall.seconds(),
                    wall_ratio,
                    f"<= {WALL_GOAL:g}" if strict else "report",
                    wall_ratio <= WALL_GOAL if strict else None,
                ),
                Row(
                    f"{size} chats at once: p95 first token",
                    first.ms(),
                    alone_first.ms(),
                    first_ratio,
                    f"<= {FIRST_TOKEN_GOAL:g}" if strict else "report",
                    first_ratio <= FIRST_TOKEN_GOAL if strict else None,
                ),
                Row(
                    f"{size} chats at once: errors in {size * runs} chats",
                    str(errors),
                    str(alone_errors),
                    None,
                    "0" if strict else "report",
                    errors == 0 if strict else None,
                ),
            ]
        rows.append(
            Row(
                f"server memory after {crowds[-1]} at once (peak)",
                f"{app.peak_rss_mb():,.0f} MiB",
                f"{idle_mb:,.0f} MiB idle",
                None,
            )
        )
    return Section(
        "Simultaneous chats",
        rows,
        [
            (
                f"Each figure over {runs} runs; a run's first-token figure is its p95 over all its chats. "
                f"Baseline: one chat alone on the same server in the same run."
            )
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
