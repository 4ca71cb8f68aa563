"""The app's catalogue beside the conversations: titles, listing, search, summaries, policies.

pydantic-ai's `ConversationStore` keeps the messages, and the title anyone set (its record's `title`, set
with `update`: the page's rename is one); it never reads the rest of this. chat/ is written
against `CataloguedStore`, a `ConversationStore` that also keeps a `Catalogue`: the SQL written once
(storage/sql_store.py, sql_catalogue.py, sql_journal.py) on SQLite (storage/sqlite_store.py, the default) or
PostgreSQL (storage/postgres_store.py, for replicas), or memory (storage/memory_store.py, over pydantic-ai's
in-memory store).

Every method takes the owner `scope`: another visitor's conversation is exactly like one that does not
exist.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from pydantic_ai.conversation import Conversation
from pydantic_ai.conversation_store import ConversationEntry, ConversationStore
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage

from storage.turn_journal import TurnJournal

CHAT_KIND = "chat"
"""Conversations of other kinds (recipes, hand-offs) are listed and searched apart."""


@dataclass(frozen=True)
class SessionSummary:
    conversation_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    model: str | None


@dataclass(frozen=True)
class TurnSettings:
    """A conversation's own settings for its next turn; None where it has none (a new conversation)."""

    context_policy: str | None = None
    summary: tuple[str, int] | None = None
    """The summary of the first `covered` messages, if one was made: (summary, covered)."""


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    title: str
    snippet: str


class CorruptConversation(LookupError):
    """A stored message or record could not be read back; the conversation is damaged, the others are not."""

    def __init__(self, conversation_id: str | None, detail: str) -> None:
        self.conversation_id = conversation_id
        super().__init__(
            "This conversation could not be read: some of its stored data is damaged "
            f"({detail}). Other conversations are not affected; you can delete this one."
        )


class StoreUnavailable(ConnectionError):
    """The database cannot be reached (a PostgreSQL restarting, a network cut): nothing was read or written."""


class Catalogue(ABC):
    """The app's metadata and search over the conversations of a store."""

    @abstractmethod
    async def list_sessions(
        self, scope: str, *, kind: str = CHAT_KIND, limit: int = 50, offset: int = 0
    ) -> list[SessionSummary]:
        """The owner's conversations of this kind, the most recently updated first."""

    @abstractmethod
    async def stored_bytes(self, scope: str) -> int:
        """What this owner's conversations (every kind) hold, in bytes of messages."""

    @abstractmethod
    async def session(self, conversation_id: str, scope: str, *, kind: str = CHAT_KIND) -> SessionSummary | None:
        """The listed facts of one conversation, even when its messages are damaged."""

    @abstractmethod
    async def describe(self, conversation_id: str, scope: str, details: TurnEnd) -> None:
        """The app's metadata beside a conversation after a run, in one write: `details.title` only where it has
        none yet (the first prompt names the chat), the model and context policy of its last turn, its kind.
        None leaves a value as it is; `journal_turn_id` is not read here."""

    @abstractmethod
    async def turn_settings(self, conversation_id: str, scope: str) -> TurnSettings:
        """What a turn reads of the app's metadata, in one read: the policy and the summary."""

    @abstractmethod
    async def context_policy(self, conversation_id: str, scope: str) -> str | None: ...

    @abstractmethod
    async def set_context_policy(self, conversation_id: str, scope: str, policy: str) -> None: ...

    @abstractmethod
    async def save_summary(self, conversation_id: str, scope: str, summary: str, covered: int) -> None:
        """Keep the summary of the conversation's first `covered` messages (replacing an older one)."""

    @abstractmethod
    async def search(self, scope: str, query: str, *, limit: int = 20) -> list[SearchHit]:
        """The owner's chats whose messages contain `query` (any case), newest first, one hit each."""

    @abstractmethod
    async def raw_messages(self, conversation_id: str, scope: str) -> list[str]:
        """Every stored message of a conversation as written, unparsed: what can be saved of a damaged one."""


@dataclass(frozen=True, kw_only=True)
class TurnEnd:
    """What is written with a turn's messages, in their transaction (`CataloguedStore.save_turn`): the app's
    metadata as `describe` takes it, and the end of the turn's journal entry. A crash keeps all of it or none
    of it, so a turn that was saved is never put back from the journal a second time."""

    title: str | None = None
    model: str | None = None
    context_policy: str | None = None
    kind: str | None = None
    journal_turn_id: str | None = None


_turn_ending: ContextVar[TurnEnd | None] = ContextVar("turn_ending", default=None)


def turn_ending() -> TurnEnd | None:
    """The `TurnEnd` of the `save_turn` the current `write_record` is part of, if any. A context variable,
    since pydantic-ai's `save` passes nothing of ours on; `asyncio.to_thread` carries it to the worker."""
    return _turn_ending.get()


class CataloguedStore(ConversationStore, Catalogue):
    """pydantic-ai's `ConversationStore` that also keeps the app's catalogue: what chat/ is written against.

    What every backend promises, each checked on every backend by the contract suite
    (tests/test_store_conformance.py, which holds pydantic-ai's own in-memory store to the same rules, and
    tests/test_catalogue.py; the journal's by tests/test_journal.py):

    1. Owner scope: every method of the catalogue takes `scope` and reads or changes only that owner's rows;
       another owner's conversation is exactly like one that does not exist, and writing to it (a title, a
       policy, a summary) changes nothing. pydantic-ai's own methods check their `scope=` over the primitives.
    2. One stored entry per message, never one blob per conversation: a save writes only its new messages, so
       it costs the same at turn 1,000 as at turn 1.
    3. `write_record` writes the record and its new entries in one transaction, with a compare-and-swap on the
       revision: a stale `expected_revision`, a record that exists when it is None, or a head no entry holds
       raise `ConversationConflict` and leave nothing of the save behind. Of two saves from one revision at
       once, one wins.
    4. A save keeps the stored record's `title` and `metadata` (`write_details` alone changes them) and the
       app's metadata beside it.
    5. `write_details` writes only the keys it is given, only while the record has `expected_revision` and the
       `expected` values (checked and written in one step), and leaves the revision as it is; the title it
       writes is the one `session` and `list_sessions` show.
    6. `save_turn`: its `TurnEnd` (the app's metadata, the end of the turn's journal entry) is written in the
       save's own transaction, and nothing of it when the save conflicts.
    """

    async def save_turn(self, conversation: Conversation, *, scope: str, end: TurnEnd) -> list[ConversationEntry]:
        """`save`, with `end` written in the same transaction as the messages: one write per turn, not three
        one after another through the database's single writer. Every backend's `write_record` honours it."""
        token = _turn_ending.set(end)
        try:
            return await self.save(conversation, scope=scope)
        finally:
            _turn_ending.reset(token)

    async def set_title(self, conversation_id: str, scope: str, title: str) -> bool:
        """Rename, as pydantic-ai's `update` does it: the record's title, which the sidebar shows. True when
        the owner's conversation was found."""
        try:
            await self.update(conversation_id, title=title, scope=scope)
        except UserError:  # not stored, or not this owner's
            return False
        return True


class ServerStore(CataloguedStore):
    """A store a server runs on (SQLite or PostgreSQL): it also keeps the server's secrets and the
    journal of the turns running on it."""

    reaches_other_servers: bool = False
    """Whether `broadcast` reaches the other servers on this database (replicas on PostgreSQL)."""

    @abstractmethod
    def server_secret(self, name: str) -> bytes:
        """A random secret made on first use and kept in the database, the same for every replica."""

    @abstractmethod
    def turn_journal(self, server_id: str | None = None) -> TurnJournal: ...

    def broadcast(self, channel: str, message: str) -> None:
        """Tell every server on this database (replicas); on a database only one server uses, nobody."""

    def subscribe(self, channel: str, receive: Callable[[str], None]) -> None:
        """Call `receive` (on a thread of its own) with each message broadcast on `channel` from now on."""

    def close(self) -> None:
        """Let go of the database's connections."""


def message_text(message: ModelMessage) -> str:
    """The words of a message, for full-text search."""
    words = []
    for part in message.parts:
        content = getattr(part, "content", None)
        if isinstance(content, str) and part.part_kind in ("user-prompt", "text", "system-prompt"):
            words.append(content)
    return "\n".join(words)


def like_snippet(text: str, query: str, width: int = 30) -> str:
    at = text.lower().find(query.lower())
    start, end = max(at - width, 0), at + len(query) + width
    return (
        ("…" if start else "")
        + text[start:at]
        + "«"
        + text[at : at + len(query)]
        + "»"
        + text[at + len(query) : end]
        + ("…" if end < len(text) else "")
    )
