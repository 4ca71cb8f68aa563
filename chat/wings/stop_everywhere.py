"""Stop a turn wherever it runs: on this server, or on another replica of the same database.

A page's Stop reaches the replica that streams its answer (nginx keeps a visitor on one replica). An API
client's stop request may land elsewhere (another replica after a failover, a client without the
cookie): this server then announces the stop to every replica (PostgreSQL NOTIFY, `ServerStore.broadcast`)
and waits, briefly, for the turn to end, which its journal rows tell (chat/wings/journal.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from chat.runs import ActiveTurns
from storage.catalogue import ServerStore
from storage.turn_journal import TurnJournal

log = logging.getLogger(__name__)

STOP_CHANNEL = "chat_stop"
WAIT_SECONDS = 5.0
"""How long a stop request waits for a turn on another replica to end and be saved."""


class StopEverywhere:
    def __init__(self, active: ActiveTurns, store: ServerStore, journal: TurnJournal | None) -> None:
        self.active = active
        self.store = store
        self.journal = journal

    def listen(self) -> None:
        """Stop this server's runs that another replica announces (from now on, on a thread of its own)."""
        self.store.subscribe(STOP_CHANNEL, self._announced)

    def _announced(self, message: str) -> None:
        owner, run_id = json.loads(message)
        if self.active.stop_running(str(owner), str(run_id)):
            log.info("stopped a turn on another replica's request")

    async def stop(self, owner: str, run_id: str, *, wait: float = WAIT_SECONDS) -> bool:
        """True when the owner's turn was running here or on another replica and has been stopped."""
        if self.active.stop(owner, run_id):
            return True
        if self.journal is None or not await self.journal.running(owner, run_id):
            return False
        await asyncio.to_thread(self.store.broadcast, STOP_CHANNEL, json.dumps([owner, run_id]))
        deadline = time.monotonic() + wait
        while await self.journal.running(owner, run_id):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True
