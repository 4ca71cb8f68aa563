"""A restart under load: SIGTERM to `python app.py` while 50 answers stream, as every redeploy does.

    python -m benchmarks.shutdown            # 50 answers, 3 runs (a fresh server each)
    python -m benchmarks.shutdown --quick    # 4 answers, 1 run (the test suite runs this)

Each visitor streams "count to 5000" over the SSE API. Once every answer has text, the server gets
SIGTERM; the figures are how long it takes to exit (against its grace period, `--shutdown-grace`, 10 s),
how many answers were saved in their conversations labelled *server restarted* (not left for the next
start to recover), and how many clients were told with a final `done` event.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sqlite3
import time

import httpx

from benchmarks.common import Row, Samples, Section, run_as_script, served_app
from chat.config import Settings
from chat.endings import END_KEY, SERVER_RESTARTED

LONG = "count to 5000"


class Streaming:
    """One visitor's answer over SSE: has it text yet, and did its stream end with `done`."""

    def __init__(self) -> None:
        self.owner = secrets.token_urlsafe(24)
        self.has_text = asyncio.Event()
        self.told = False

    async def read(self, client: httpx.AsyncClient) -> None:
        try:
            headers = {"x-chat-owner": self.owner}
            async with client.stream("POST", "api/chat", json={"message": LONG}, headers=headers) as stream:
                async for line in stream.aiter_lines():
                    if line == "event: delta":
                        self.has_text.set()
                    elif line == "event: done":
                        self.told = True
        except httpx.HTTPError:
            pass  # the server went away: `told` says whether it said goodbye first
        finally:
            self.has_text.set()


async def terminate_while_streaming(url: str, process, size: int) -> tuple[float, int]:
    """Seconds from SIGTERM to the process's exit, and the clients that got their final `done`."""
    limits = httpx.Limits(max_connections=size + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        chats = [Streaming() for _ in range(size)]
        readers = [asyncio.create_task(chat.read(client)) for chat in chats]
        await asyncio.gather(*(chat.has_text.wait() for chat in chats))
        signalled = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        while process.poll() is None:
            await asyncio.sleep(0.01)
        exited = time.perf_counter() - signalled
        await asyncio.wait_for(asyncio.gather(*readers), timeout=30)
    return exited, sum(chat.told for chat in chats)


def saved_as_restarted(database: str) -> int:
    """Conversations whose last answer is stored, labelled as cut short by the restart."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT message_json FROM entries e WHERE rowid = "
            "(SELECT max(rowid) FROM entries WHERE conversation_id = e.conversation_id)"
        ).fetchall()
    saved = 0
    for (message_json,) in rows:
        message = json.loads(message_json)[0]
        saved += message.get("kind") == "response" and (message.get("metadata") or {}).get(END_KEY) == SERVER_RESTARTED
    return saved


def run(quick: bool) -> Section:
    runs, size = (1, 4) if quick else (3, 50)
    grace = Settings().shutdown_grace
    exits, saved, told = [], 0, 0
    for _ in range(runs):
        with served_app(0.3, 30.0) as app:
            seconds, clients_told = asyncio.run(terminate_while_streaming(app.url, app.process, size))
            exits.append(seconds)
            told += clients_told
            saved += saved_as_restarted(app.database)
    exit_times = Samples.of(exits)
    return Section(
        "A restart under load",
        [
            Row(
                f"SIGTERM with {size} answers streaming: until the process exits",
                exit_times.seconds(),
                f"{grace:.0f} s (grace)",
                exit_times.median / grace,
                "<= 1 (within the grace)",
                None if quick else max(exits) <= grace,
            ),
            Row(
                f"answers saved, labelled server restarted ({size * runs} streaming)",
                str(saved),
                str(size * runs),
                saved / (size * runs),
                "= 1 (all saved)",
                None if quick else saved == size * runs,
            ),
            Row(f"clients told with a final done event ({size * runs})", str(told), "", None),
        ],
        [
            (
                f"Each run a fresh `python app.py` (demo model, 30 tokens/s); {runs} runs. The drain refuses new turns, "
                "stops every running one (each saves its partial answer) and exits once all are saved."
            )
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
