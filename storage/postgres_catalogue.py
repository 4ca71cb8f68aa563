"""The app's catalogue (storage/catalogue.py) on PostgreSQL, over the database the conversations are in.

Every query takes the owner `scope` and starts from it: a visitor's listing or search reads their own
rows, so its cost does not grow with other visitors' conversations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.catalogue import CHAT_KIND, Catalogue, SearchHit, SessionSummary, TurnSettings, like_snippet
from storage.database import off_the_event_loop
from storage.postgres_database import PostgresDatabase

if TYPE_CHECKING:
    import psycopg

_SUMMARY_COLUMNS = "id, title, created_at, updated_at, model"


class PostgresCatalogue(PostgresDatabase, Catalogue):
    @off_the_event_loop
    def list_sessions(
        self, scope: str, *, kind: str = CHAT_KIND, limit: int = 50, offset: int = 0
    ) -> list[SessionSummary]:
        with self.read() as connection:
            rows = connection.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM conversations WHERE scope = %s AND kind = %s"
                " ORDER BY updated_at DESC, seq DESC LIMIT %s OFFSET %s",
                [scope, kind, limit, offset],
            ).fetchall()
        return [_summary(row) for row in rows]

    @off_the_event_loop
    def stored_bytes(self, scope: str) -> int:
        with self.read() as connection:
            row = connection.execute(
                "SELECT COALESCE(SUM(stored_bytes), 0) FROM conversations WHERE scope = %s", [scope]
            ).fetchone()
        return int(row[0])

    @off_the_event_loop
    def session(self, conversation_id: str, scope: str, *, kind: str = CHAT_KIND) -> SessionSummary | None:
        with self.read() as connection:
            row = connection.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM conversations WHERE id = %s AND scope = %s AND kind = %s",
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
        with self.read() as connection:
            row = connection.execute(
                "SELECT c.context_policy, s.summary, s.covered FROM conversations AS c LEFT JOIN summaries AS s"
                " ON s.conversation_id = c.id AND s.scope = c.scope WHERE c.id = %s AND c.scope = %s",
                [conversation_id, scope],
            ).fetchone()
        if row is None:
            return TurnSettings()
        policy, summary, covered = row
        return TurnSettings(policy or None, None if summary is None else (summary, covered))

    @off_the_event_loop
    def context_policy(self, conversation_id: str, scope: str) -> str | None:
        with self.read() as connection:
            row = connection.execute(
                "SELECT context_policy FROM conversations WHERE id = %s AND scope = %s", [conversation_id, scope]
            ).fetchone()
        return (row[0] or None) if row else None

    @off_the_event_loop
    def set_context_policy(self, conversation_id: str, scope: str, policy: str) -> None:
        with self.write() as connection:
            connection.execute(
                "UPDATE conversations SET context_policy = %s WHERE id = %s AND scope = %s",
                [policy, conversation_id, scope],
            )

    @off_the_event_loop
    def save_summary(self, conversation_id: str, scope: str, summary: str, covered: int) -> None:
        with self.write() as connection:
            connection.execute(
                "INSERT INTO summaries (conversation_id, scope, summary, covered, updated_at)"
                " VALUES (%s, %s, %s, %s, now()) ON CONFLICT (conversation_id) DO UPDATE SET"
                " summary = excluded.summary, covered = excluded.covered, updated_at = excluded.updated_at"
                " WHERE summaries.scope = excluded.scope",
                [conversation_id, scope, summary, covered],
            )

    @off_the_event_loop
    def search(self, scope: str, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Conversations whose messages contain `query`, any case: a substring match, so Chinese and
        Japanese (no spaces between words) are found too, over the visitor's own messages only."""
        query = query.strip()
        if not query:
            return []
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.read() as connection:
            rows = connection.execute(
                """
                SELECT DISTINCT ON (c.updated_at, c.id) c.id, c.title, e.text
                FROM entries e JOIN conversations c ON c.id = e.conversation_id AND c.scope = e.scope
                WHERE e.scope = %s AND c.kind = 'chat' AND e.text ILIKE %s
                ORDER BY c.updated_at DESC, c.id, e.seq
                LIMIT %s
                """,
                [scope, f"%{escaped}%", limit],
            ).fetchall()
        return [SearchHit(cid, title or "New chat", like_snippet(text, query)) for cid, title, text in rows]

    @off_the_event_loop
    def raw_messages(self, conversation_id: str, scope: str) -> list[str]:
        with self.read() as connection:
            rows = connection.execute(
                "SELECT e.message_json FROM entries AS e JOIN conversations AS c ON c.id = e.conversation_id"
                " WHERE c.id = %s AND c.scope = %s ORDER BY e.seq",
                [conversation_id, scope],
            ).fetchall()
        return [message_json for (message_json,) in rows]


def describe_in(
    connection: psycopg.Connection,
    conversation_id: str,
    scope: str,
    title: str | None,
    model: str | None,
    context_policy: str | None = None,
    kind: str | None = None,
) -> None:
    """`describe`'s update, inside a transaction already open (its own, or a turn's save)."""
    connection.execute(
        "UPDATE conversations SET title = CASE WHEN title = '' THEN coalesce(%s, title) ELSE title END,"
        " model = coalesce(%s, model), context_policy = coalesce(%s, context_policy),"
        " kind = coalesce(%s, kind) WHERE id = %s AND scope = %s",
        [title, model, context_policy, kind, conversation_id, scope],
    )


def _summary(row: tuple) -> SessionSummary:
    conversation_id, title, created_at, updated_at, model = row
    return SessionSummary(conversation_id, title or "New chat", created_at, updated_at, model)
