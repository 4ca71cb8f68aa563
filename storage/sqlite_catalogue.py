"""The app's catalogue (storage/catalogue.py) on SQLite, over the database the conversations are in.

Every query takes the owner `scope` and starts from it; each runs in a worker thread, like the store's
primitives.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from storage.catalogue import CHAT_KIND, Catalogue, SearchHit, SessionSummary, TurnSettings, like_snippet
from storage.database import SQLiteDatabase, now, off_the_event_loop


class SQLiteCatalogue(SQLiteDatabase, Catalogue):
    """The catalogue in the same SQLite file as the conversations: its own columns beside each record,
    the summaries table, and full-text search over the stored messages."""

    @off_the_event_loop
    def list_sessions(
        self, scope: str, *, kind: str = CHAT_KIND, limit: int = 50, offset: int = 0
    ) -> list[SessionSummary]:
        rows = self.db.execute(
            "SELECT id, title, created_at, updated_at, model FROM conversations WHERE scope = ? AND kind = ?"
            " ORDER BY updated_at DESC, rowid DESC LIMIT ? OFFSET ?",
            [scope, kind, limit, offset],
        ).fetchall()
        return [_summary(row) for row in rows]

    @off_the_event_loop
    def stored_bytes(self, scope: str) -> int:
        row = self.db.execute("SELECT COALESCE(SUM(stored_bytes), 0) FROM conversations WHERE scope = ?", [scope])
        return int(row.fetchone()[0])

    @off_the_event_loop
    def session(self, conversation_id: str, scope: str, *, kind: str = CHAT_KIND) -> SessionSummary | None:
        row = self.db.execute(
            "SELECT id, title, created_at, updated_at, model FROM conversations WHERE id = ? AND scope = ? AND kind = ?",
            [conversation_id, scope, kind],
        ).fetchone()
        return None if row is None else _summary(row)

    @off_the_event_loop
    def describe(
        self,
        conversation_id: str,
        scope: str,
        *,
        title: str | None = None,
        model: str | None = None,
        context_policy: str | None = None,
        kind: str | None = None,
    ) -> None:
        with self.write() as connection:
            describe_in(connection, conversation_id, scope, title, model, context_policy, kind)

    @off_the_event_loop
    def turn_settings(self, conversation_id: str, scope: str) -> TurnSettings:
        row = self.db.execute(
            "SELECT c.context_policy, s.summary, s.covered FROM conversations AS c LEFT JOIN summaries AS s"
            " ON s.conversation_id = c.id AND s.scope = c.scope WHERE c.id = ? AND c.scope = ?",
            [conversation_id, scope],
        ).fetchone()
        if row is None:
            return TurnSettings()
        policy, summary, covered = row
        return TurnSettings(policy or None, None if summary is None else (summary, covered))

    @off_the_event_loop
    def context_policy(self, conversation_id: str, scope: str) -> str | None:
        row = self.db.execute(
            "SELECT context_policy FROM conversations WHERE id = ? AND scope = ?", [conversation_id, scope]
        ).fetchone()
        return (row[0] or None) if row else None

    @off_the_event_loop
    def set_context_policy(self, conversation_id: str, scope: str, policy: str) -> None:
        with self.write() as connection:
            connection.execute(
                "UPDATE conversations SET context_policy = ? WHERE id = ? AND scope = ?",
                [policy, conversation_id, scope],
            )

    @off_the_event_loop
    def save_summary(self, conversation_id: str, scope: str, summary: str, covered: int) -> None:
        with self.write() as connection:
            connection.execute(
                "INSERT INTO summaries (conversation_id, scope, summary, covered, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(conversation_id) DO UPDATE SET summary = excluded.summary, covered = excluded.covered,"
                " updated_at = excluded.updated_at WHERE summaries.scope = excluded.scope",
                [conversation_id, scope, summary, covered, now()],
            )

    @off_the_event_loop
    def search(self, scope: str, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Conversations whose messages contain `query`, any case: a substring match, so Chinese and
        Japanese (no spaces between words) are found too. It reads the visitor's own messages only (their
        conversations by index, then each one's messages), so its cost does not grow with other visitors'."""
        query = query.strip()
        if not query:
            return []
        rows = self.db.execute(
            """
            SELECT c.id, c.title, e.text FROM conversations c JOIN entries e ON e.conversation_id = c.id
            WHERE c.scope = ? AND c.kind = 'chat' AND contains_any_case(e.text, ?)
            ORDER BY c.updated_at DESC, c.rowid DESC, e.rowid
            """,
            [scope, query.lower()],
        ).fetchall()
        hits: dict[str, SearchHit] = {}
        for conversation_id, title, text in rows:
            if conversation_id not in hits:
                hits[conversation_id] = SearchHit(conversation_id, title or "New chat", like_snippet(text, query))
        return list(hits.values())[:limit]

    @off_the_event_loop
    def raw_messages(self, conversation_id: str, scope: str) -> list[str]:
        rows = self.db.execute(
            "SELECT e.message_json FROM entries AS e JOIN conversations AS c ON c.id = e.conversation_id"
            " WHERE c.id = ? AND c.scope = ? ORDER BY e.rowid",
            [conversation_id, scope],
        ).fetchall()
        return [message_json for (message_json,) in rows]


def describe_in(
    connection: sqlite3.Connection,
    conversation_id: str,
    scope: str,
    title: str | None,
    model: str | None,
    context_policy: str | None = None,
    kind: str | None = None,
) -> None:
    """`describe`'s update, inside a transaction already open (its own, or a turn's save)."""
    connection.execute(
        "UPDATE conversations SET title = CASE WHEN title IS NULL OR title = '' THEN coalesce(?, title)"
        " ELSE title END, model = coalesce(?, model), context_policy = coalesce(?, context_policy),"
        " kind = coalesce(?, kind) WHERE id = ? AND scope = ?",
        [title, model, context_policy, kind, conversation_id, scope],
    )


def _summary(row: tuple) -> SessionSummary:
    conversation_id, title, created_at, updated_at, model = row
    return SessionSummary(
        conversation_id=conversation_id,
        title=title or "New chat",
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
        model=model,
    )
