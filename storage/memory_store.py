"""pydantic-ai's `InMemoryConversationStore` with the app's catalogue kept in dictionaries beside it.

Nothing survives the process: it is for tests (chat/'s tests run on it and on SQLite), and it shows what
a backend has to provide. The messages stay pydantic-ai's own business; this class only adds the titles,
policies and summaries, and finds text by walking each conversation's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic_ai.conversation_store import (
    ConversationDetails,
    ConversationEntry,
    ConversationRecord,
    InMemoryConversationStore,
)
from pydantic_ai.messages import ModelMessagesTypeAdapter

from storage.catalogue import (
    CHAT_KIND,
    CataloguedStore,
    SearchHit,
    SessionSummary,
    TurnEnd,
    TurnSettings,
    like_snippet,
    message_text,
    turn_ending,
)


@dataclass
class _About:
    """What the catalogue knows of one conversation."""

    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    title: str = ""
    model: str | None = None
    context_policy: str | None = None
    kind: str = CHAT_KIND
    stored_bytes: int = 0
    summary: tuple[str, int] | None = None


class MemoryConversationStore(InMemoryConversationStore, CataloguedStore):
    def __init__(self) -> None:
        super().__init__()
        self._about: dict[str, _About] = {}

    # -- the primitives, so the catalogue follows the records ------------------------------------

    async def write_record(
        self,
        record: ConversationRecord,
        *,
        new_entries: Sequence[ConversationEntry] = (),
        expected_revision: str | None,
    ) -> None:
        await super().write_record(record, new_entries=new_entries, expected_revision=expected_revision)
        about = self._about.setdefault(record.conversation_id, _About())
        # Counted as the SQLite store counts (the message and its search text), so quotas mean the same.
        about.stored_bytes += sum(
            len(_stored_json(entry).encode()) + len(message_text(entry.message).encode()) for entry in new_entries
        )
        if (ending := turn_ending()) is not None and record.scope is not None:
            await self.describe(record.conversation_id, record.scope, ending)

    async def write_details(
        self,
        conversation_id: str,
        details: ConversationDetails,
        *,
        expected_revision: str,
        expected: ConversationDetails | None = None,
    ) -> ConversationRecord:
        record = await super().write_details(
            conversation_id, details, expected_revision=expected_revision, expected=expected
        )
        if "title" in details:  # the sidebar's title is the record's, as on SQLite
            self._of(record).title = record.title or ""
        return record

    async def delete_record(self, conversation_id: str, *, expected_revision: str) -> None:
        await super().delete_record(conversation_id, expected_revision=expected_revision)
        self._about.pop(conversation_id, None)

    # -- the catalogue -----------------------------------------------------------------------------

    async def list_sessions(
        self, scope: str, *, kind: str = CHAT_KIND, limit: int = 50, offset: int = 0
    ) -> list[SessionSummary]:
        records = [record for record in await self.read_records(scope=scope) if self._of(record).kind == kind]
        return [self._summary(record) for record in records[offset : offset + limit]]

    async def stored_bytes(self, scope: str) -> int:
        return sum(self._of(record).stored_bytes for record in await self.read_records(scope=scope))

    async def session(self, conversation_id: str, scope: str, *, kind: str = CHAT_KIND) -> SessionSummary | None:
        record = await self._owned(conversation_id, scope)
        return None if record is None or self._of(record).kind != kind else self._summary(record)

    async def describe(self, conversation_id: str, scope: str, details: TurnEnd) -> None:
        record = await self._owned(conversation_id, scope)
        if record is None:
            return
        about = self._of(record)
        about.title = about.title or details.title or ""
        about.model = details.model or about.model
        about.context_policy = details.context_policy or about.context_policy
        about.kind = details.kind or about.kind

    async def turn_settings(self, conversation_id: str, scope: str) -> TurnSettings:
        record = await self._owned(conversation_id, scope)
        if record is None:
            return TurnSettings()
        return TurnSettings(self._of(record).context_policy, self._of(record).summary)

    async def context_policy(self, conversation_id: str, scope: str) -> str | None:
        return (await self.turn_settings(conversation_id, scope)).context_policy

    async def set_context_policy(self, conversation_id: str, scope: str, policy: str) -> None:
        record = await self._owned(conversation_id, scope)
        if record is not None:
            self._of(record).context_policy = policy

    async def save_summary(self, conversation_id: str, scope: str, summary: str, covered: int) -> None:
        record = await self._owned(conversation_id, scope)
        if record is not None:
            self._of(record).summary = (summary, covered)

    async def search(self, scope: str, query: str, *, limit: int = 20) -> list[SearchHit]:
        query = query.strip()
        hits: list[SearchHit] = []
        for record in await self.read_records(scope=scope):
            if not query or len(hits) == limit or self._of(record).kind != CHAT_KIND:
                continue
            for entry in await self.read_history(record.head_id):
                text = message_text(entry.message)
                if query.lower() in text.lower():
                    hits.append(
                        SearchHit(record.conversation_id, self._summary(record).title, like_snippet(text, query))
                    )
                    break
        return hits

    async def raw_messages(self, conversation_id: str, scope: str) -> list[str]:
        record = await self._owned(conversation_id, scope)
        if record is None:
            return []
        return [_stored_json(entry) for entry in await self.read_history(record.head_id)]

    async def _owned(self, conversation_id: str, scope: str) -> ConversationRecord | None:
        record = await self.read_record(conversation_id)
        return record if record is not None and record.scope == scope else None

    def _of(self, record: ConversationRecord) -> _About:
        return self._about.setdefault(record.conversation_id, _About())

    def _summary(self, record: ConversationRecord) -> SessionSummary:
        about = self._of(record)
        return SessionSummary(
            record.conversation_id, about.title or "New chat", about.created_at, record.updated_at, about.model
        )


def _stored_json(entry: ConversationEntry) -> str:
    return ModelMessagesTypeAdapter.dump_json([entry.message]).decode()
