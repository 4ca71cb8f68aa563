"""pydantic-ai's `ConversationStore` on a SQL database, written once for SQLite and PostgreSQL: the five
primitives, `write_details` and `read_history` in one query.

One row per message entry (its JSON through pydantic-ai's own adapter), one row per conversation record.
A save writes the record and only the new entries, in one transaction; the record's write is the revision
compare-and-swap itself (an insert that must not find the row, or an update of the expected revision),
so two servers saving the same conversation at once cannot both win. Its cost grows with the new
messages, not with the history.

`delete` removes the conversation's record and every entry that no remaining conversation (or a branch
it left) still reaches; entries shared with a fork stay for the fork.

The primitives the base class uses are scope-checked by it (`load`, `save`, `delete`, `branch`, `fork` all
take `scope=`); the catalogue's methods (storage/sql_catalogue.py) take the scope themselves.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import pydantic
from pydantic_ai.conversation_store import (
    ConversationConflict,
    ConversationDetails,
    ConversationEntry,
    ConversationRecord,
)
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, ModelResponse

from storage.catalogue import CorruptConversation, ServerStore, TurnEnd, message_text, turn_ending
from storage.sql_catalogue import DESCRIBE, SQLCatalogue
from storage.sql_database import now, off_the_event_loop
from storage.sql_journal import SQLTurnJournal, end_turn_in

_RECORDS = pydantic.TypeAdapter(ConversationRecord)
_ENTRY_COLUMNS = "id, parent_id, kind, message_json, conversation_id"


class SQLConversationStore(SQLCatalogue, ServerStore):
    """The store over a `SQLDatabase`; a backend is a subclass that also inherits its database
    (storage/sqlite_store.py, storage/postgres_store.py) and names its journal."""

    journal_type: type[SQLTurnJournal]

    def turn_journal(self, server_id: str | None = None) -> SQLTurnJournal:
        return self.journal_type(self, server_id)

    @off_the_event_loop
    def read_record(self, conversation_id: str) -> ConversationRecord | None:
        with self.connection() as statements:
            row = statements.execute("SELECT record_json FROM conversations WHERE id = ?", [conversation_id]).fetchone()
        return None if row is None else record_from(row[0], conversation_id)

    @off_the_event_loop
    def read_records(self, *, scope: str | None = None, limit: int | None = None) -> Sequence[ConversationRecord]:
        sql = "SELECT record_json FROM conversations"
        params: list[object] = []
        if scope is not None:
            sql += " WHERE scope = ?"
            params.append(scope)
        sql += f" ORDER BY updated_at DESC, {self.dialect.insertion_order} DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self.connection() as statements:
            rows = statements.execute(sql, params).fetchall()
        return [record_from(row[0]) for row in rows]

    @off_the_event_loop
    def write_record(
        self,
        record: ConversationRecord,
        *,
        new_entries: Sequence[ConversationEntry] = (),
        expected_revision: str | None,
    ) -> None:
        written_at = now()
        rows = [entry_row(entry, record, written_at) for entry in new_entries]
        added_bytes = sum(len(row["message_json"].encode()) + len(row["text"].encode()) for row in rows)
        # The `TurnEnd` of a `save_turn` goes in the record's own statement, and its journal entry ends here too.
        ending = (turn_ending() if record.scope is not None else None) or TurnEnd()
        described = [ending.title, ending.model, ending.context_policy, ending.kind]
        facts = [record.scope, record.head_id, record.revision, json.dumps(record.branches)]
        record_json = _RECORDS.dump_json(record).decode()
        with self.transaction() as statements:
            new_ids = {entry.id for entry in new_entries}
            if (
                record.head_id is not None
                and record.head_id not in new_ids
                and statements.execute("SELECT 1 FROM entries WHERE id = ?", [record.head_id]).fetchone() is None
            ):
                raise ConversationConflict(record.conversation_id)
            # The app's columns beside the record are left as they are but for a `TurnEnd`'s; the record's title
            # and metadata are `write_details`' to change, so a save that read them before keeps them.
            if expected_revision is None:
                written = statements.execute(
                    "INSERT INTO conversations (scope, head_id, revision, branches_json, record_json, updated_at,"
                    " stored_bytes, id, created_at, title, model, context_policy, kind)"
                    f" VALUES (?, ?, ?, {self.dialect.json_value}, ?, ?, ?, ?, ?,"
                    " coalesce(?, ''), ?, coalesce(?, ''), coalesce(?, 'chat')) ON CONFLICT (id) DO NOTHING",
                    [*facts, record_json, record.updated_at.isoformat(), added_bytes, record.conversation_id]
                    + [written_at, *described],
                ).rowcount
            else:
                written = statements.execute(
                    "UPDATE conversations SET scope = ?, head_id = ?, revision = ?,"
                    f" branches_json = {self.dialect.json_value}, record_json = {self.dialect.record_keeping_details},"
                    " updated_at = ?,"
                    f" stored_bytes = stored_bytes + ?, {DESCRIBE} WHERE id = ? AND revision = ?",
                    [*facts, record_json, record.updated_at.isoformat(), added_bytes]
                    + [*described, record.conversation_id, expected_revision],
                ).rowcount
            if written != 1:
                raise ConversationConflict(record.conversation_id)
            columns = self.dialect.entry_columns
            statements.executemany(
                f"INSERT INTO entries ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                [[row[column] for column in columns] for row in rows],
            )
            if ending.journal_turn_id is not None:
                end_turn_in(statements, ending.journal_turn_id)

    @off_the_event_loop
    def write_details(
        self,
        conversation_id: str,
        details: ConversationDetails,
        *,
        expected_revision: str,
        expected: ConversationDetails | None = None,
    ) -> ConversationRecord:
        with self.transaction() as statements:
            row = statements.execute(
                f"SELECT record_json FROM conversations WHERE id = ? AND revision = ?{self.dialect.lock_to_update}",
                [conversation_id, expected_revision],
            ).fetchone()
            record = None if row is None else record_from(row[0], conversation_id)
            if record is None or any(getattr(record, key) != value for key, value in (expected or {}).items()):
                raise ConversationConflict(conversation_id)
            record = dataclasses.replace(record, **details)
            # The sidebar's title is the record's: a rename through pydantic-ai's `update` is the page's rename
            # (a cleared title shows as a new chat until the next prompt names it).
            statements.execute(
                "UPDATE conversations SET record_json = ?, title = ? WHERE id = ?",
                [_RECORDS.dump_json(record).decode(), record.title or "", conversation_id],
            )
        return record

    async def delete(self, conversation_id: str, *, scope: str | None = None) -> None:
        """pydantic-ai's `delete` (the revision compared, another owner's left as it is), reading the owner and
        revision from their own columns instead of the record: a conversation whose record is damaged can still
        be deleted by its owner."""
        while (revision := await self._revision(conversation_id, scope)) is not None:
            try:
                await self.delete_record(conversation_id, expected_revision=revision)
            except ConversationConflict:
                continue  # saved or replaced since it was read: check its owner again
            return

    @off_the_event_loop
    def _revision(self, conversation_id: str, scope: str | None) -> str | None:
        sql, params = "SELECT revision FROM conversations WHERE id = ?", [conversation_id]
        if scope is not None:
            sql, params = sql + " AND scope = ?", [*params, scope]
        with self.connection() as statements:
            row = statements.execute(sql, params).fetchone()
        return None if row is None else row[0]

    @off_the_event_loop
    def delete_record(self, conversation_id: str, *, expected_revision: str) -> None:
        with self.transaction() as statements:
            deleted = statements.execute(
                "DELETE FROM conversations WHERE id = ? AND revision = ?", [conversation_id, expected_revision]
            ).rowcount
            if not deleted:
                raise ConversationConflict(conversation_id)
            statements.execute("DELETE FROM summaries WHERE conversation_id = ?", [conversation_id])
            # Not only this conversation's entries: those of one deleted earlier that a fork still reached
            # may be free now too (left behind, they kept their parents from ever being deleted).
            # One statement, so the foreign key from child to parent is checked once, at its end.
            statements.execute(
                f"""
                WITH RECURSIVE tips(id) AS (
                    SELECT head_id FROM conversations WHERE head_id IS NOT NULL
                    UNION {self.dialect.branch_tips}
                ),
                reachable(id) AS (
                    SELECT id FROM tips
                    UNION SELECT entries.parent_id FROM entries JOIN reachable ON entries.id = reachable.id
                    WHERE entries.parent_id IS NOT NULL
                )
                DELETE FROM entries
                WHERE conversation_id NOT IN (SELECT id FROM conversations) AND id NOT IN (SELECT id FROM reachable)
                """
            )

    @off_the_event_loop
    def read_entry(self, entry_id: str) -> ConversationEntry:
        with self.connection() as statements:
            row = statements.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id = ?", [entry_id]).fetchone()
        if row is None:
            raise LookupError(f"no entry {entry_id!r}")
        return entry_from_row(row)

    @off_the_event_loop
    def read_history(self, head_id: str | None, *, limit: int | None = None) -> list[ConversationEntry]:
        if head_id is None or limit == 0:
            return []
        with self.connection() as statements:
            rows = statements.execute(
                f"""
                WITH RECURSIVE chain(id, parent_id, kind, message_json, conversation_id, depth) AS (
                    SELECT {_ENTRY_COLUMNS}, 1 FROM entries WHERE id = ?
                    UNION ALL
                    SELECT e.id, e.parent_id, e.kind, e.message_json, e.conversation_id, chain.depth + 1
                    FROM entries e JOIN chain ON e.id = chain.parent_id
                    WHERE CAST(? AS INTEGER) IS NULL OR chain.depth < CAST(? AS INTEGER)
                )
                SELECT {_ENTRY_COLUMNS} FROM chain ORDER BY depth DESC
                """,
                [head_id, limit, limit],
            ).fetchall()
        if not rows:
            raise LookupError(f"no entry {head_id!r}")
        first_parent = rows[0][1]
        if first_parent is not None and (limit is None or len(rows) < limit):
            raise LookupError(f"the history before entry {rows[0][0]!r} is missing")
        return [entry_from_row(row) for row in rows]


def entry_row(entry: ConversationEntry, record: ConversationRecord, written_at: str) -> dict[str, object]:
    """Every column an entry can be stored with; each database writes those of its `dialect.entry_columns`."""
    return {
        "id": entry.id,
        "parent_id": entry.parent_id,
        "conversation_id": record.conversation_id,
        "scope": record.scope,
        "kind": entry.kind,
        "message_json": ModelMessagesTypeAdapter.dump_json([entry.message]).decode(),
        "text": message_text(entry.message),
        "created_at": written_at,
    }


def record_from(record_json: str, conversation_id: str | None = None) -> ConversationRecord:
    """A stored record, or `CorruptConversation` when it cannot be read (the conversation's owner can delete it)."""
    try:
        return _RECORDS.validate_json(record_json)
    except (pydantic.ValidationError, ValueError) as error:
        raise CorruptConversation(conversation_id, f"its record: {type(error).__name__}") from error


def entry_from_row(row: tuple) -> ConversationEntry:
    """An entry from its stored columns (id, parent_id, kind, message_json, conversation_id)."""
    entry_id, parent_id, kind, message_json, conversation_id = row
    try:
        (message,) = ModelMessagesTypeAdapter.validate_json(message_json)
    except (pydantic.ValidationError, ValueError) as error:
        raise CorruptConversation(conversation_id, f"entry {entry_id}: {type(error).__name__}") from error
    if not isinstance(message, (ModelRequest, ModelResponse)):
        raise CorruptConversation(conversation_id, f"entry {entry_id} is not a message")
    return ConversationEntry(id=entry_id, parent_id=parent_id, message=message, kind=kind)
