"""pydantic-ai's `ConversationStore` on PostgreSQL: the five primitives and `read_history`.

The same shape as the SQLite store (storage/sqlite_store.py): one row per message entry, one row per
conversation record, a save that writes only the new entries in one transaction, a revision
compare-and-swap. Here the compare-and-swap is the write itself (`UPDATE ... WHERE revision = the
expected one`, or an insert that must not find the row), so two replicas saving the same conversation
at once cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence

import pydantic
from psycopg.types.json import Jsonb
from pydantic_ai.conversation_store import (
    ConversationConflict,
    ConversationDetails,
    ConversationEntry,
    ConversationRecord,
)
from pydantic_ai.messages import ModelMessagesTypeAdapter

from storage.catalogue import ServerStore, message_text, write_turn_end
from storage.database import off_the_event_loop
from storage.postgres_catalogue import PostgresCatalogue, describe_in
from storage.sqlite_store import entry_from_row, history_from_rows, write_details_in
from storage.turn_journal import PostgresTurnJournal

_RECORDS = pydantic.TypeAdapter(ConversationRecord)


class PostgresConversationStore(PostgresCatalogue, ServerStore):
    """pydantic-ai's `ConversationStore` primitives on PostgreSQL (this file), with the app's catalogue
    (storage/postgres_catalogue.py) over the same database (storage/postgres_database.py)."""

    reaches_other_servers = True

    def turn_journal(self, server_id: str | None = None) -> PostgresTurnJournal:
        return PostgresTurnJournal(self, server_id)

    @off_the_event_loop
    def read_record(self, conversation_id: str) -> ConversationRecord | None:
        with self.read() as connection:
            row = connection.execute(
                "SELECT record_json FROM conversations WHERE id = %s", [conversation_id]
            ).fetchone()
        return None if row is None else _RECORDS.validate_json(row[0])

    @off_the_event_loop
    def read_records(self, *, scope: str | None = None, limit: int | None = None) -> Sequence[ConversationRecord]:
        sql = "SELECT record_json FROM conversations"
        params: list[object] = []
        if scope is not None:
            sql += " WHERE scope = %s"
            params.append(scope)
        sql += " ORDER BY updated_at DESC, seq DESC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        with self.read() as connection:
            rows = connection.execute(sql, params).fetchall()
        return [_RECORDS.validate_json(row[0]) for row in rows]

    @off_the_event_loop
    def write_record(
        self,
        record: ConversationRecord,
        *,
        new_entries: Sequence[ConversationEntry] = (),
        expected_revision: str | None,
    ) -> None:
        rows = [
            (
                entry.id,
                entry.parent_id,
                record.conversation_id,
                record.scope,
                entry.kind,
                ModelMessagesTypeAdapter.dump_json([entry.message]).decode(),
                message_text(entry.message),
            )
            for entry in new_entries
        ]
        added_bytes = sum(len(row[5].encode()) + len(row[6].encode()) for row in rows)
        facts = [
            record.scope,
            record.head_id,
            record.revision,
            Jsonb(record.branches),
            _RECORDS.dump_json(record).decode(),
            record.updated_at,
        ]
        with self.write() as connection:
            new_ids = {entry.id for entry in new_entries}
            if (
                record.head_id is not None
                and record.head_id not in new_ids
                and connection.execute("SELECT 1 FROM entries WHERE id = %s", [record.head_id]).fetchone() is None
            ):
                raise ConversationConflict(record.conversation_id)
            # The app's metadata (created_at, model) lives in other columns and is left as it is; the record's
            # title and metadata are `write_details`' to change, so a save that read them before keeps them.
            if expected_revision is None:
                written = connection.execute(
                    "INSERT INTO conversations (scope, head_id, revision, branches_json, record_json, updated_at,"
                    " stored_bytes, id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                    [*facts, added_bytes, record.conversation_id],
                ).rowcount
            else:
                written = connection.execute(
                    "UPDATE conversations SET scope = %s, head_id = %s, revision = %s, branches_json = %s,"
                    " record_json = (%s::jsonb || jsonb_build_object('title', record_json::jsonb -> 'title',"
                    " 'metadata', record_json::jsonb -> 'metadata'))::text,"
                    " updated_at = %s, stored_bytes = stored_bytes + %s"
                    " WHERE id = %s AND revision = %s",
                    [*facts, added_bytes, record.conversation_id, expected_revision],
                ).rowcount
            if written != 1:
                raise ConversationConflict(record.conversation_id)
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO entries (id, parent_id, conversation_id, scope, kind, message_json, text)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    rows,
                )
            write_turn_end(connection, record.conversation_id, record.scope, describe_in, PostgresTurnJournal.forget_in)

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
            return write_details_in(
                connection, conversation_id, details, expected_revision, expected, mark="%s", lock=" FOR UPDATE"
            )

    @off_the_event_loop
    def delete_record(self, conversation_id: str, *, expected_revision: str) -> None:
        with self.write() as connection:
            deleted = connection.execute(
                "DELETE FROM conversations WHERE id = %s AND revision = %s", [conversation_id, expected_revision]
            ).rowcount
            if not deleted:
                raise ConversationConflict(conversation_id)
            connection.execute("DELETE FROM summaries WHERE conversation_id = %s", [conversation_id])
            # As on SQLite: every entry of a deleted conversation that no remaining head or branch reaches,
            # in one statement (the parent foreign key is checked at its end).
            connection.execute(
                """
                WITH RECURSIVE tips(id) AS (
                    SELECT head_id FROM conversations WHERE head_id IS NOT NULL
                    UNION SELECT jsonb_array_elements_text(branches_json) FROM conversations
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
        with self.read() as connection:
            row = connection.execute(
                "SELECT id, parent_id, kind, message_json, conversation_id FROM entries WHERE id = %s", [entry_id]
            ).fetchone()
        if row is None:
            raise LookupError(f"no entry {entry_id!r}")
        return entry_from_row(row)

    @off_the_event_loop
    def read_history(self, head_id: str | None, *, limit: int | None = None) -> list[ConversationEntry]:
        if head_id is None or limit == 0:
            return []
        with self.read() as connection:
            rows = connection.execute(
                """
                WITH RECURSIVE chain(id, parent_id, kind, message_json, conversation_id, depth) AS (
                    SELECT id, parent_id, kind, message_json, conversation_id, 1 FROM entries WHERE id = %(head)s
                    UNION ALL
                    SELECT e.id, e.parent_id, e.kind, e.message_json, e.conversation_id, chain.depth + 1
                    FROM entries e JOIN chain ON e.id = chain.parent_id
                    WHERE %(limit)s::integer IS NULL OR chain.depth < %(limit)s::integer
                )
                SELECT id, parent_id, kind, message_json, conversation_id FROM chain ORDER BY depth DESC
                """,
                {"head": head_id, "limit": limit},
            ).fetchall()
        return history_from_rows(rows, head_id, limit)
