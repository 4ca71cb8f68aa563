"""The app's catalogue (storage/catalogue.py) on a SQL database, written once for SQLite and PostgreSQL: its
own columns beside each conversation's record, and the summaries table.

Every query takes the owner `scope` and starts from it: a visitor's listing or search reads their own
rows, so its cost does not grow with other visitors' conversations.
"""

from __future__ import annotations

from storage.catalogue import CHAT_KIND, Catalogue, SearchHit, SessionSummary, TurnEnd, TurnSettings, like_snippet
from storage.sql_database import SQLDatabase, as_datetime, now, off_the_event_loop

DESCRIBE = (
    "title = CASE WHEN title IS NULL OR title = '' THEN coalesce(?, title) ELSE title END,"
    " model = coalesce(?, model), context_policy = coalesce(?, context_policy), kind = coalesce(?, kind)"
)
"""`describe`'s changes to a conversation's row (title, model, context policy, kind), as an UPDATE's SET:
also what a turn's save writes (storage/sql_store.py)."""

_SUMMARY_COLUMNS = "id, title, created_at, updated_at, model"


class SQLCatalogue(SQLDatabase, Catalogue):
    @off_the_event_loop
    def list_sessions(
        self, scope: str, *, kind: str = CHAT_KIND, limit: int = 50, offset: int = 0
    ) -> list[SessionSummary]:
        with self.connection() as statements:
            rows = statements.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM conversations WHERE scope = ? AND kind = ?"
                f" ORDER BY updated_at DESC, {self.dialect.insertion_order} DESC LIMIT ? OFFSET ?",
                [scope, kind, limit, offset],
            ).fetchall()
        return [_summary(row) for row in rows]

    @off_the_event_loop
    def stored_bytes(self, scope: str) -> int:
        with self.connection() as statements:
            row = statements.execute(
                "SELECT COALESCE(SUM(stored_bytes), 0) FROM conversations WHERE scope = ?", [scope]
            ).fetchone()
        return int(row[0])

    @off_the_event_loop
    def session(self, conversation_id: str, scope: str, *, kind: str = CHAT_KIND) -> SessionSummary | None:
        with self.connection() as statements:
            row = statements.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM conversations WHERE id = ? AND scope = ? AND kind = ?",
                [conversation_id, scope, kind],
            ).fetchone()
        return None if row is None else _summary(row)

    @off_the_event_loop
    def describe(self, conversation_id: str, scope: str, details: TurnEnd) -> None:
        with self.connection() as statements:
            statements.execute(
                f"UPDATE conversations SET {DESCRIBE} WHERE id = ? AND scope = ?",
                [details.title, details.model, details.context_policy, details.kind, conversation_id, scope],
            )

    @off_the_event_loop
    def turn_settings(self, conversation_id: str, scope: str) -> TurnSettings:
        with self.connection() as statements:
            row = statements.execute(
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
        with self.connection() as statements:
            row = statements.execute(
                "SELECT context_policy FROM conversations WHERE id = ? AND scope = ?", [conversation_id, scope]
            ).fetchone()
        return (row[0] or None) if row else None

    @off_the_event_loop
    def set_context_policy(self, conversation_id: str, scope: str, policy: str) -> None:
        with self.connection() as statements:
            statements.execute(
                "UPDATE conversations SET context_policy = ? WHERE id = ? AND scope = ?",
                [policy, conversation_id, scope],
            )

    @off_the_event_loop
    def save_summary(self, conversation_id: str, scope: str, summary: str, covered: int) -> None:
        # Only for the owner's own conversation: another visitor who knows its id writes nothing, and so
        # cannot take the row the owner's summary will need.
        with self.connection() as statements:
            statements.execute(
                "INSERT INTO summaries (conversation_id, scope, summary, covered, updated_at)"
                " SELECT id, scope, ?, ?, ? FROM conversations WHERE id = ? AND scope = ?"
                " ON CONFLICT (conversation_id) DO UPDATE SET summary = excluded.summary,"
                " covered = excluded.covered, updated_at = excluded.updated_at WHERE summaries.scope = excluded.scope",
                [summary, covered, now(), conversation_id, scope],
            )

    @off_the_event_loop
    def search(self, scope: str, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Conversations whose messages contain `query`, any case: a substring match, so Chinese and
        Japanese (no spaces between words) are found too. It reads the visitor's own conversations (by
        index) and each one's messages until the first that matches, newest conversation first."""
        query = query.strip()
        if not query:
            return []
        order = self.dialect.insertion_order
        with self.connection() as statements:
            rows = statements.execute(
                f"""
                SELECT id, title, hit FROM (
                    SELECT c.id, c.title, c.updated_at, c.{order} AS inserted, (
                        SELECT e.text FROM entries AS e WHERE e.conversation_id = c.id AND {self.dialect.text_contains}
                        ORDER BY e.{order} LIMIT 1
                    ) AS hit
                    FROM conversations AS c WHERE c.scope = ? AND c.kind = ?
                ) AS found
                WHERE hit IS NOT NULL ORDER BY updated_at DESC, inserted DESC LIMIT ?
                """,
                [self.dialect.search_value(query), scope, CHAT_KIND, limit],
            ).fetchall()
        return [SearchHit(cid, title or "New chat", like_snippet(text, query)) for cid, title, text in rows]

    @off_the_event_loop
    def raw_messages(self, conversation_id: str, scope: str) -> list[str]:
        with self.connection() as statements:
            rows = statements.execute(
                "SELECT e.message_json FROM entries AS e JOIN conversations AS c ON c.id = e.conversation_id"
                f" WHERE c.id = ? AND c.scope = ? ORDER BY e.{self.dialect.insertion_order}",
                [conversation_id, scope],
            ).fetchall()
        return [message_json for (message_json,) in rows]


def _summary(row: tuple) -> SessionSummary:
    conversation_id, title, created_at, updated_at, model = row
    return SessionSummary(conversation_id, title or "New chat", as_datetime(created_at), as_datetime(updated_at), model)
