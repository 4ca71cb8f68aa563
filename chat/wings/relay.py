"""Resume a running answer from any replica: the reader comes back here, the answer streams on another one.

An SSE client that reconnects with `Last-Event-ID` usually lands on the replica that runs its turn (nginx
hashes the visitor), and reads it there (`ChatService.follow`). After the replicas change (one added, a
client without the cookie or header nginx hashes on), it lands elsewhere: then, if the journal says the
turn is running, this server asks every replica over PostgreSQL NOTIFY (`ServerStore.broadcast`); the one
that runs it sends the answer from the reader's place on, on this server's own channel, and this server
streams it on. NOTIFY carries at most 8,000 bytes a message, so the text goes in pieces. Only the text and
how the answer ended travel; the agent's steps are in the stored conversation once it is saved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from chat.runs import LiveRun, RunStatus
from chat.steps import Step
from chat.turn_stats import TurnStats
from chat.turns import ChatService, TurnUpdate
from storage.catalogue import ServerStore
from storage.turn_journal import TurnJournal

log = logging.getLogger(__name__)

ASK_CHANNEL = "chat_relay_ask"
PIECE_CHARS = 1_000
"""Text per message: even escaped as JSON (6 bytes a character at worst) it stays under NOTIFY's 8,000 bytes."""
FIRST_WORD_SECONDS = 3.0
"""How long a reader waits for the replica that runs the turn to answer before it is told it cannot resume."""
SILENCE_SECONDS = 60.0
"""A relay that sends nothing for this long (its replica died) ends the reader's stream."""


@dataclass(frozen=True)
class RelayedUpdate:
    """A turn's update as another replica sent it: `text` starts where the reader was, not at the answer's
    beginning (it is the rest of the answer so far)."""

    text: str
    status: RunStatus = RunStatus.STREAMING
    error: str | None = None
    stats: TurnStats | None = None
    steps: tuple[Step, ...] = ()

    @property
    def final(self) -> bool:
        return self.status is not RunStatus.STREAMING


class AnswerRelay:
    def __init__(self, service: ChatService, store: ServerStore, journal: TurnJournal | None) -> None:
        self.service = service
        self.store = store
        self.journal = journal
        server_id = journal.server_id if journal is not None else uuid.uuid4().hex
        # A channel name is an identifier (63 bytes at most): this server's, whatever its id is made of.
        self.reply_channel = "chat_relay_" + re.sub(r"[^a-z0-9]", "", server_id.lower())[-40:]
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = {}

    def listen(self) -> None:
        """Answer other replicas' asks, and receive what they send this server's readers (from now on)."""
        if self.store.reaches_other_servers:
            self.store.subscribe(ASK_CHANNEL, self._asked)
            self.store.subscribe(self.reply_channel, self._received)

    async def follow(
        self, owner: str, conversation_id: str, tag: str, offset: int
    ) -> AsyncIterator[RelayedUpdate] | None:
        """The rest of this owner's running turn from another replica, from `offset` characters on; None
        when no replica runs it (or none answered in time)."""
        journal = self.journal
        if not self.store.reaches_other_servers or journal is None or not await journal.running(owner, conversation_id):
            return None
        request = uuid.uuid4().hex
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting[request] = (asyncio.get_running_loop(), queue)
        ask = {"owner": owner, "conversation_id": conversation_id, "tag": tag, "offset": offset}
        ask |= {"request": request, "reply_to": self.reply_channel}
        await asyncio.to_thread(self.store.broadcast, ASK_CHANNEL, json.dumps(ask))
        try:
            first = await asyncio.wait_for(queue.get(), FIRST_WORD_SECONDS)
        except TimeoutError:
            self._waiting.pop(request, None)
            return None
        return self._relayed(request, queue, first)

    async def _relayed(
        self, request: str, queue: asyncio.Queue[dict[str, Any]], first: dict[str, Any]
    ) -> AsyncIterator[RelayedUpdate]:
        text, message = "", first
        try:
            while True:
                if "text" in message:
                    text += message["text"]
                    yield RelayedUpdate(text)
                else:
                    stats = TurnStats(**message["stats"]) if message.get("stats") else None
                    yield RelayedUpdate(text, RunStatus(message["status"]), message.get("error"), stats)
                    return
                try:
                    message = await asyncio.wait_for(queue.get(), SILENCE_SECONDS)
                except TimeoutError:
                    yield RelayedUpdate(text, RunStatus.FAILED, "The server writing this answer stopped answering.")
                    return
        finally:
            self._waiting.pop(request, None)

    def _asked(self, message: str) -> None:
        """On the listening thread: if the turn asked for runs here, relay it from the run's own loop."""
        ask = json.loads(message)
        run = self.service.live_turn(str(ask["owner"]), str(ask["conversation_id"]))
        if run is None or run.tag != ask["tag"] or run.task is None:
            return  # another replica's, or over: that replica answers, or nobody does and the reader is told
        asyncio.run_coroutine_threadsafe(self._send(run, ask), run.task.get_loop())

    async def _send(self, run: LiveRun[TurnUpdate], ask: dict[str, Any]) -> None:
        request, reply_to, offset = str(ask["request"]), str(ask["reply_to"]), int(ask["offset"])

        async def send(body: dict[str, Any]) -> None:
            await asyncio.to_thread(self.store.broadcast, reply_to, json.dumps({"request": request, **body}))

        try:
            await send({"text": ""})  # at once, so the reader knows its turn is here even before more text
            async for update in self.service.follow(run):
                while len(update.text) > offset:
                    piece = update.text[offset : offset + PIECE_CHARS]
                    offset += len(piece)
                    await send({"text": piece})
                if update.final:
                    stats = dataclasses.asdict(update.stats) if update.stats is not None else None
                    await send({"status": update.status.value, "error": update.error, "stats": stats})
                    return
        except Exception:
            log.exception("relaying a turn to another replica failed")

    def _received(self, message: str) -> None:
        """On the listening thread: hand a relayed piece to the reader waiting for it."""
        body = json.loads(message)
        waiting = self._waiting.get(str(body.get("request")))
        if waiting is not None:
            loop, queue = waiting
            loop.call_soon_threadsafe(queue.put_nowait, body)
