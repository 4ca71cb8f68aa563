"""The app's catalogue beside the conversations: titles, listing, search, summaries, policies.

Every query takes the owner `scope`: another visitor's conversation is exactly like one that does not
exist. These are the app's own columns and tables; pydantic-ai's `ConversationStore` never reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.database import SQLiteDatabase, now


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


class Catalogue(SQLiteDatabase):
    """The app's metadata and search over the conversations stored in this database."""

    def list_sessions(
        self, scope: str, *, kind: str = "chat", limit: int = 50, offset: int = 0
    ) -> list[SessionSummary]:
        rows = self.db.execute(
            "SELECT id, title, created_at, updated_at, model FROM conversations WHERE scope = ? AND kind = ?"
            " ORDER BY updated_at DESC, rowid DESC LIMIT ? OFFSET ?",
            [scope, kind, limit, offset],
        ).fetchall()
        return [_summary(row) for row in rows]

    def stored_bytes(self, scope: str) -> int:
        """What this owner's conversations (chats, recipes and hand-offs) hold, in bytes of messages."""
        row = self.db.execute("SELECT COALESCE(SUM(stored_bytes), 0) FROM conversations WHERE scope = ?", [scope])
        return int(row.fetchone()[0])

    def session(self, conversation_id: str, scope: str, *, kind: str = "chat") -> SessionSummary | None:
        row = self.db.execute(
            "SELECT id, title, created_at, updated_at, model FROM conversations WHERE id = ? AND scope = ? AND kind = ?",
            [conversation_id, scope, kind],
        ).fetchone()
        return None if row is None else _summary(row)

    def set_title(self, conversation_id: str, scope: str, title: str) -> bool:
        """Rename: True when the owner's conversation was found."""
        with self.write() as connection:
            sql = "UPDATE conversations SET title = ? WHERE id = ? AND scope = ?"
            return connection.execute(sql, [title, conversation_id, scope]).rowcount == 1

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
        """The app's metadata beside a conversation after a run, in one write: `title` only where it has none
        yet (the first prompt names the chat), the model and context policy of its last turn, its kind.
        None leaves a column as it is."""
        with self.write() as connection:
            connection.execute(
                "UPDATE conversations SET title = CASE WHEN title IS NULL OR title = '' THEN coalesce(?, title)"
                " ELSE title END, model = coalesce(?, model), context_policy = coalesce(?, context_policy),"
                " kind = coalesce(?, kind) WHERE id = ? AND scope = ?",
                [title, model, context_policy, kind, conversation_id, scope],
            )

    def turn_settings(self, conversation_id: str, scope: str) -> TurnSettings:
        """What a turn reads of the app's metadata, in one query: the policy and the summary."""
        row = self.db.execute(
            "SELECT c.context_policy, s.summary, s.covered FROM conversations AS c LEFT JOIN summaries AS s"
            " ON s.conversation_id = c.id AND s.scope = c.scope WHERE c.id = ? AND c.scope = ?",
            [conversation_id, scope],
        ).fetchone()
        if row is None:
            return TurnSettings()
        policy, summary, covered = row
        return TurnSettings(policy or None, None if summary is None else (summary, covered))

    def context_policy(self, conversation_id: str, scope: str) -> str | None:
        row = self.db.execute(
            "SELECT context_policy FROM conversations WHERE id = ? AND scope = ?", [conversation_id, scope]
        ).fetchone()
        return (row[0] or None) if row else None

    def set_context_policy(self, conversation_id: str, scope: str, policy: str) -> None:
        with self.write() as connection:
            connection.execute(
                "UPDATE conversations SET context_policy = ? WHERE id = ? AND scope = ?",
                [policy, conversation_id, scope],
            )

    def summary(self, conversation_id: str, scope: str) -> tuple[str, int] | None:
        """The stored summary of the conversation's first `covered` messages, if one was made."""
        row = self.db.execute(
            "SELECT summary, covered FROM summaries WHERE conversation_id = ? AND scope = ?", [conversation_id, scope]
        ).fetchone()
        return (row[0], row[1]) if row else None

    def save_summary(self, conversation_id: str, scope: str, summary: str, covered: int) -> None:
        with self.write() as connection:
            connection.execute(
                "INSERT INTO summaries (conversation_id, scope, summary, covered, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(conversation_id) DO UPDATE SET summary = excluded.summary, covered = excluded.covered,"
                " updated_at = excluded.updated_at WHERE summaries.scope = excluded.scope",
                [conversation_id, scope, summary, covered, now()],
            )

    def search(self, scope: str, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Conversations whose messages contain `query` (FTS5 trigram; LIKE below three characters)."""
        query = query.strip()
        if not query:
            return []
        if len(query) >= 3:
            phrase = '"' + query.replace('"', '""') + '"'
            rows = self.db.execute(
                """
                SELECT c.id, c.title, snippet(entries_fts, 0, '«', '»', '…', 12)
                FROM entries_fts JOIN entries e ON e.rowid = entries_fts.rowid
                JOIN conversations c ON c.id = e.conversation_id
                WHERE entries_fts MATCH ? AND c.scope = ? AND c.kind = 'chat'
                ORDER BY c.updated_at DESC
                """,
                [phrase, scope],
            ).fetchall()
        else:
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self.db.execute(
                """
                SELECT c.id, c.title, e.text FROM entries e JOIN conversations c ON c.id = e.conversation_id
                WHERE c.scope = ? AND c.kind = 'chat' AND e.text LIKE ? ESCAPE '\\' ORDER BY c.updated_at DESC
                """,
                [scope, f"%{escaped}%"],
            ).fetchall()
            rows = [(cid, title, _like_snippet(text, query)) for cid, title, text in rows]
        hits: dict[str, SearchHit] = {}
        for conversation_id, title, snippet in rows:
            if conversation_id not in hits:
                hits[conversation_id] = SearchHit(conversation_id, title or "New chat", snippet)
        return list(hits.values())[:limit]

    def raw_messages(self, conversation_id: str, scope: str) -> list[str]:
        """Every stored message of a conversation as written, unparsed: what can be saved of a damaged one."""
        rows = self.db.execute(
            "SELECT e.message_json FROM entries AS e JOIN conversations AS c ON c.id = e.conversation_id"
            " WHERE c.id = ? AND c.scope = ? ORDER BY e.rowid",
            [conversation_id, scope],
        ).fetchall()
        return [message_json for (message_json,) in rows]


def _summary(row: tuple) -> SessionSummary:
    conversation_id, title, created_at, updated_at, model = row
    return SessionSummary(
        conversation_id=conversation_id,
        title=title or "New chat",
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
        model=model,
    )


def _like_snippet(text: str, query: str, width: int = 30) -> str:
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
