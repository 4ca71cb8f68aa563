"""pydantic-ai's `ConversationStore` on SQLite: the five primitives and `read_history`, nothing of the app's.

One row per message entry (its JSON through pydantic-ai's own adapter), one row per conversation
record. A save writes the record and only the new entries, in one transaction, with a revision
compare-and-swap: its cost grows with the new messages, not with the history.

`delete` removes the conversation's record and every entry that no remaining conversation (or a
branch it left) still reaches; entries shared with a fork stay for the fork.

Every method the app calls takes the owner `scope`; the primitives the base class uses are
scope-checked by it (`load`, `save`, `delete`, `branch`, `fork` all take `scope=`).
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

from storage.catalogue import CorruptConversation, SearchHit, ServerStore, SessionSummary, message_text, write_turn_end
from storage.database import now as timestamp
from storage.database import off_the_event_loop
from storage.sqlite_catalogue import SQLiteCatalogue, describe_in
from storage.turn_journal import SQLiteTurnJournal

__all__ = ["CorruptConversation", "SQLiteConversationStore", "SearchHit", "SessionSummary", "message_text"]

_RECORDS = pydantic.TypeAdapter(ConversationRecord)


class SQLiteConversationStore(SQLiteCatalogue, ServerStore):
    """pydantic-ai's `ConversationStore` primitives on SQLite (this file), with the app's catalogue
    (storage/sqlite_catalogue.py) over the same database (storage/database.py)."""

    def turn_journal(self, server_id: str | None = None) -> SQLiteTurnJournal:
        return SQLiteTurnJournal(self, server_id)

    # -- the five primitives, plus read_history in one query ------------------------------------

    @off_the_event_loop
    def read_record(self, conversation_id: str) -> ConversationRecord | None:
        row = self.db.execute("SELECT record_json FROM conversations WHERE id = ?", [conversation_id]).fetchone()
        return None if row is None else _RECORDS.validate_json(row[0])

    @off_the_event_loop
    def read_records(self, *, scope: str | None = None, limit: int | None = None) -> Sequence[ConversationRecord]:
        sql = "SELECT record_json FROM conversations"
        params: list[object] = []
        if scope is not None:
            sql += " WHERE scope = ?"
            params.append(scope)
        sql += " ORDER BY updated_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_RECORDS.validate_json(row[0]) for row in self.db.execute(sql, params).fetchall()]

    @off_the_event_loop
    def write_record(
        self,
        record: ConversationRecord,
        *,
        new_entries: Sequence[ConversationEntry] = (),
        expected_revision: str | None,
    ) -> None:
        now = timestamp()
        with self.write() as connection:
            row = connection.execute(
                "SELECT revision FROM conversations WHERE id = ?", [record.conversation_id]
            ).fetchone()
            if (row[0] if row else None) != expected_revision:
                raise ConversationConflict(record.conversation_id)
            new_ids = {entry.id for entry in new_entries}
            if (
                record.head_id is not None
                and record.head_id not in new_ids
                and connection.execute("SELECT 1 FROM entries WHERE id = ?", [record.head_id]).fetchone() is None
            ):
                raise ConversationConflict(record.conversation_id)
            rows = [
                (
                    entry.id,
                    entry.parent_id,
                    record.conversation_id,
                    entry.kind,
                    ModelMessagesTypeAdapter.dump_json([entry.message]).decode(),
                    message_text(entry.message),
                    now,
                )
                for entry in new_entries
            ]
            connection.executemany(
                "INSERT INTO entries (id, parent_id, conversation_id, kind, message_json, text, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            added_bytes = sum(len(row[4].encode()) + len(row[5].encode()) for row in rows)
            # The app's metadata (created_at, model) lives in other columns and is left as it is; the record's
            # title and metadata are `write_details`' to change, so a save that read them before keeps them.
            connection.execute(
                "INSERT INTO conversations (id, scope, head_id, revision, branches_json, record_json, created_at,"
                " updated_at, stored_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET scope = excluded.scope, head_id = excluded.head_id,"
                " revision = excluded.revision, branches_json = excluded.branches_json,"
                " record_json = json_set(excluded.record_json,"
                " '$.title', json_extract(conversations.record_json, '$.title'),"
                " '$.metadata', json(json_extract(conversations.record_json, '$.metadata'))),"
                " updated_at = excluded.updated_at, stored_bytes = conversations.stored_bytes + excluded.stored_bytes",
                [
                    record.conversation_id,
                    record.scope,
                    record.head_id,
                    record.revision,
                    json.dumps(record.branches),
                    _RECORDS.dump_json(record).decode(),
                    now,
                    record.updated_at.isoformat(),
                    added_bytes,
                ],
            )
            write_turn_end(connection, record.conversation_id, record.scope, describe_in, SQLiteTurnJournal.forget_in)

    @off_the_event_loop
    def write_details(
        self,
        conversation_id: str,
        details: ConversationDetails,
        *,
        expected_revision: str,
        expected: ConversationDetails | None = None,
    ) -> ConversationRecord:
        with self.write() as connection:
            return write_details_in(connection, conversation_id, details, expected_revision, expected, mark="?")

    @off_the_event_loop
    def delete_record(self, conversation_id: str, *, expected_revision: str) -> None:
        with self.write() as connection:
            deleted = connection.execute(
                "DELETE FROM conversations WHERE id = ? AND revision = ?", [conversation_id, expected_revision]
            ).rowcount
            if not deleted:
                raise ConversationConflict(conversation_id)
            connection.execute("DELETE FROM summaries WHERE conversation_id = ?", [conversation_id])
            # Not only this conversation's entries: those of one deleted earlier that a fork still reached
            # may be free now too (left behind, they kept their parents from ever being deleted).
            # One statement, so the foreign key from child to parent is checked once, at its end.
            connection.execute(
                """
                WITH RECURSIVE tips(id) AS (
                    SELECT head_id FROM conversations WHERE head_id IS NOT NULL
                    UNION SELECT value FROM conversations, json_each(conversations.branches_json)
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
        row = self.db.execute(
            "SELECT id, parent_id, kind, message_json, conversation_id FROM entries WHERE id = ?", [entry_id]
        ).fetchone()
        if row is None:
            raise LookupError(f"no entry {entry_id!r}")
        return entry_from_row(row)

    @off_the_event_loop
    def read_history(self, head_id: str | None, *, limit: int | None = None) -> list[ConversationEntry]:
        if head_id is None or limit == 0:
            return []
        rows = self.db.execute(
            """
            WITH RECURSIVE chain(id, parent_id, kind, message_json, conversation_id, depth) AS (
                SELECT id, parent_id, kind, message_json, conversation_id, 1 FROM entries WHERE id = :head
                UNION ALL
                SELECT e.id, e.parent_id, e.kind, e.message_json, e.conversation_id, chain.depth + 1
                FROM entries e JOIN chain ON e.id = chain.parent_id
                WHERE :limit IS NULL OR chain.depth < :limit
            )
            SELECT id, parent_id, kind, message_json, conversation_id FROM chain ORDER BY depth DESC
            """,
            {"head": head_id, "limit": limit},
        ).fetchall()
        return history_from_rows(rows, head_id, limit)


def history_from_rows(rows: Sequence[tuple], head_id: str, limit: int | None) -> list[ConversationEntry]:
    """The entries of a history read oldest first (on either database); `LookupError` where it is cut."""
    if not rows:
        raise LookupError(f"no entry {head_id!r}")
    first_parent = rows[0][1]
    if first_parent is not None and (limit is None or len(rows) < limit):
        raise LookupError(f"the history before entry {rows[0][0]!r} is missing")
    return [entry_from_row(row) for row in rows]


def entry_from_row(row: tuple) -> ConversationEntry:
    """An entry from its stored columns (id, parent_id, kind, message_json, conversation_id), on either database."""
    entry_id, parent_id, kind, message_json, conversation_id = row
    try:
        (message,) = ModelMessagesTypeAdapter.validate_json(message_json)
    except (pydantic.ValidationError, ValueError) as error:
        raise CorruptConversation(conversation_id, f"entry {entry_id}: {type(error).__name__}") from error
    if not isinstance(message, (ModelRequest, ModelResponse)):
        raise CorruptConversation(conversation_id, f"entry {entry_id} is not a message")
    return ConversationEntry(id=entry_id, parent_id=parent_id, message=message, kind=kind)


def write_details_in(
    connection,
    conversation_id: str,
    details: ConversationDetails,
    expected_revision: str,
    expected: ConversationDetails | None,
    *,
    mark: str,
    lock: str = "",
) -> ConversationRecord:
    """`write_details` in a write transaction on either database (`mark`: its parameter marker; `lock`: what
    holds the row until the transaction ends, where the transaction alone does not)."""
    row = connection.execute(
        f"SELECT record_json FROM conversations WHERE id = {mark} AND revision = {mark}{lock}",
        [conversation_id, expected_revision],
    ).fetchone()
    record = None if row is None else _RECORDS.validate_json(row[0])
    if record is None or any(getattr(record, key) != value for key, value in (expected or {}).items()):
        raise ConversationConflict(conversation_id)
    record = dataclasses.replace(record, **details)
    # The sidebar's title is the record's: a rename through pydantic-ai's `update` is the page's rename
    # (a cleared title shows as a new chat until the next prompt names it).
    connection.execute(
        f"UPDATE conversations SET record_json = {mark}, title = {mark} WHERE id = {mark}",
        [_RECORDS.dump_json(record).decode(), record.title or "", conversation_id],
    )
    return record
