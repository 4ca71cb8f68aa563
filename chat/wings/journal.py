"""A turn's prompt and partial answer kept on disk while it streams, and put back after a crash.

A killed server (kill -9, an out-of-memory kill, a power cut) loses at most the last `every` seconds of
an answer, and never the prompt: at the next start, `recover_unfinished_turns` saves each unfinished
turn into its conversation, its answer marked as interrupted by a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator

from pydantic_ai.conversation import Conversation
from pydantic_ai.messages import ModelRequest, UserPromptPart

from chat.endings import SERVER_RESTARTED, interrupted_answer
from chat.text import title_from_prompt
from chat.turn_hooks import Turn, TurnHooks
from storage.catalogue import CataloguedStore, StoreUnavailable, TurnEnd
from storage.turn_journal import TurnJournal

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 2.0
"""Seconds between checkpoints of a streaming answer: the most text a crash can lose."""


@dataclasses.dataclass
class Checkpoints:
    """One turn's entry in the journal: `saw` as the answer grows, `end` once the turn is saved."""

    journal: TurnJournal | None
    turn_id: str | None
    every: float = CHECKPOINT_EVERY
    clock: Callable[[], float] = time.monotonic
    written: int = 0
    last: float = 0.0
    _writing: asyncio.Task[None] | None = None

    @classmethod
    async def begin(
        cls,
        journal: TurnJournal | None,
        owner: str,
        conversation_id: str,
        prompt: str,
        model: str,
        *,
        every: float = CHECKPOINT_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> Checkpoints:
        turn_id = None
        if journal is not None:
            with _best_effort("begin"):
                turn_id = await journal.begin(owner, conversation_id, prompt, model)
        return cls(journal, turn_id, every, clock, last=clock())

    def saw(self, text: str) -> None:
        """The whole answer so far; written down when `every` seconds have passed since the last time.

        The write runs beside the stream, which never waits for the database: while one is still
        going (a slow or unreachable database), the next checkpoint waits its turn and then catches up."""
        if self.journal is None or self.turn_id is None or self.clock() - self.last < self.every:
            return
        if self._writing is not None and not self._writing.done():
            return
        self.last = self.clock()
        self._writing = asyncio.create_task(self._append(self.journal, self.turn_id, text))

    async def _append(self, journal: TurnJournal, turn_id: str, text: str) -> None:
        with _best_effort("checkpoint"):
            await journal.append(turn_id, text[self.written :])
            self.written = len(text)  # only once written: a failed checkpoint's text goes with the next one

    async def flushed(self) -> None:
        """Wait for the checkpoint being written, if any."""
        if self._writing is not None:
            await self._writing

    def saved(self) -> None:
        """The turn's save ended its entry (`TurnEnd.journal_turn_id`): nothing left to end. A checkpoint still
        being written is not waited for before the save: one that comes after it finds no entry to add to."""
        self.turn_id = None

    async def end(self) -> None:
        if self.journal is not None and self.turn_id is not None:
            await self.flushed()
            try:
                await self.journal.finish(self.turn_id)
            except StoreUnavailable:
                # Its visitor is told it failed (the database is away): left in the journal, it would come back
                # as "server restarted" once this server is gone. Ended when the database is back instead.
                log.warning("turn journal: end deferred, the database is not reachable")
                self.journal.ends_owed.add(self.turn_id)
            self.turn_id = None


class JournalledTurns(TurnHooks):
    """A wing: every chat turn's prompt is on disk before the model is asked, and its answer every few
    seconds after, until the turn is saved (its entry ends in the save's own transaction). A turn a dead
    server left in a conversation is put back before that conversation is read for a turn."""

    def __init__(self, journal: TurnJournal, store: CataloguedStore) -> None:
        self.journal = journal
        self.store = store

    async def opening(self, owner: str, conversation_id: str) -> None:
        # The periodic look (`keep_recovering`) comes every few seconds; the visitor of a replica that died, sent
        # to another one, writes again at once, to a chat whose first turn is not saved yet.
        await recover_unfinished_turns(self.journal, self.store, only=(owner, conversation_id))

    async def for_turn(self, turn: Turn) -> TurnHooks:
        checkpoints = await Checkpoints.begin(
            self.journal, turn.owner, turn.conversation_id, turn.prompt, turn.model_name
        )
        return _CheckpointedTurn(checkpoints)


@dataclasses.dataclass
class _CheckpointedTurn(TurnHooks):
    checkpoints: Checkpoints

    def streamed(self, turn: Turn, text: str) -> None:
        self.checkpoints.saw(text)

    def ending(self, turn: Turn, end: TurnEnd) -> TurnEnd:
        return dataclasses.replace(end, journal_turn_id=self.checkpoints.turn_id)

    def saved(self, turn: Turn) -> None:
        self.checkpoints.saved()

    async def ended(self, turn: Turn) -> None:
        # Saved, or failed as the visitor was told: nothing to put back after a restart.
        await self.checkpoints.end()


@contextlib.contextmanager
def _best_effort(step: str) -> Iterator[None]:
    """The journal only guards against a crash: a database away for a moment must not fail the answer."""
    try:
        yield
    except StoreUnavailable:
        log.warning("turn journal: %s skipped, the database is not reachable", step)


async def recover_unfinished_turns(
    journal: TurnJournal, store: CataloguedStore, *, only: tuple[str, str] | None = None
) -> int:
    """Save every turn a server that is gone left unfinished (`only` in one owner's conversation); returns how
    many. Run before serving, then every so often (`keep_recovering`): with replicas, the one that died may
    never start again; and before a turn reads its conversation (`JournalledTurns.opening`). First, end the
    entries of this server's turns that ended while the database was away."""
    for turn_id in list(journal.ends_owed):  # this server's turns that ended while the database was away
        await journal.finish(turn_id)
        journal.ends_owed.discard(turn_id)
    recovered = 0
    for turn in await journal.left_by_earlier_servers(only):
        conversation = await store.load(turn.conversation_id, scope=turn.scope)
        if conversation is None and await store.read_record(turn.conversation_id) is not None:
            await journal.finish(turn.turn_id)  # deleted meanwhile, or not this owner's: nothing to put back
            continue
        conversation = conversation or Conversation(conversation_id=turn.conversation_id)
        answer = interrupted_answer(turn.partial, SERVER_RESTARTED, turn.model)
        conversation.messages.extend([ModelRequest(parts=[UserPromptPart(turn.prompt)]), answer])
        # Saved and out of the journal in one transaction: a crash now cannot put it back twice.
        end = TurnEnd(title=title_from_prompt(turn.prompt), model=turn.model, journal_turn_id=turn.turn_id)
        await store.save_turn(conversation, scope=turn.scope, end=end)
        recovered += 1
    if recovered:
        log.warning("put back %d turn(s) a previous server left unfinished (marked: server restarted)", recovered)
    return recovered


def keep_recovering(
    journal: TurnJournal, store: CataloguedStore, stop: threading.Event, every: float
) -> threading.Thread:
    """Look for turns of servers that died every `every` seconds, on a thread of its own, until `stop` is set."""

    def watch() -> None:
        while not stop.wait(every):
            try:
                asyncio.run(recover_unfinished_turns(journal, store))
            except Exception:  # the database is away for a moment: the next look tries again
                log.exception("could not look for unfinished turns")

    watcher = threading.Thread(target=watch, name="recover-unfinished-turns", daemon=True)
    watcher.start()
    return watcher
