"""pydantic-ai's `ConversationStore` on SQLite (sqlite-utils), with the app's session metadata beside it.

One row per message entry (its JSON through pydantic-ai's own adapter), one row per conversation
record. A save writes the record and only the new entries, in one transaction, with a revision
compare-and-swap: its cost grows with the new messages, not with the history.

`delete` removes the conversation's record and every entry that no remaining conversation (or a
branch it left) still reaches; entries shared with a fork stay for the fork.

Every method the app calls takes the owner `scope`; the primitives the base class uses are
scope-checked by it (`load`, `save`, `delete`, `branch`, `fork` all take `scope=`).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pydantic
from pydantic_ai.conversation_store import (
    ConversationConflict,
    ConversationEntry,
    ConversationRecord,
    ConversationStore,
)
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelRequest, ModelResponse
from sqlite_utils import Database

from storage.migrations import migrations

_RECORDS = pydantic.TypeAdapter(ConversationRecord)


class CorruptConversation(LookupError):
    """A stored message could not be read back; the conversation is damaged, the others are not."""

    def __init__(self, conversation_id: str | None, detail: str) -> None:
        self.conversation_id = conversation_id
        super().__init__(
            "This conversation could not be read: a stored message is damaged "
            f"({detail}). Other conversations are not affected; you can delete this one."
        )


@dataclass(frozen=True)
class SessionSummary:
    conversation_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    model: str | None


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    title: str
    snippet: str


def _now() -> str:
    return datetime.now(UTC).isoformat()


def message_text(message: ModelMessage) -> str:
    """The words of a message, for full-text search."""
    words = []
    for part in message.parts:
        content = getattr(part, "content", None)
        if isinstance(content, str) and part.part_kind in ("user-prompt", "text", "system-prompt"):
            words.append(content)
    return "\n".join(words)


class SQLiteConversationStore(ConversationStore):
    """A `ConversationStore` in one SQLite file; safe to share between threads (one connection each)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        migrations.apply(self.db)

    @property
    def db(self) -> Database:
        """This thread's connection: Gradio runs handlers on several threads, and sqlite3 connections are per thread."""
        db = getattr(self._local, "db", None)
        if db is None:
            # Autocommit mode, so the BEGIN IMMEDIATE below is the only transaction control.
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA busy_timeout=10000")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA synchronous=NORMAL")
            db = self._local.db = Database(connection)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock before the revision is read, so two writers cannot both
        # pass the compare-and-swap (a deferred transaction would fail its upgrade instead).
        connection = self.db.conn
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    # -- the five primitives, plus read_history in one query ------------------------------------

    async def read_record(self, conversation_id: str) -> ConversationRecord | None:
        row = self.db.execute("SELECT record_json FROM conversations WHERE id = ?", [conversation_id]).fetchone()
        return None if row is None else _RECORDS.validate_json(row[0])

    async def read_records(self, *, scope: str | None = None, limit: int | None = None) -> Sequence[ConversationRecord]:
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

    async def write_record(
        self,
        record: ConversationRecord,
        *,
        new_entries: Sequence[ConversationEntry] = (),
        expected_revision: str | None,
    ) -> None:
        now = _now()
        with self._write() as connection:
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
            # The app's metadata (title, created_at, model) lives in other columns and is left as it is.
            connection.execute(
                "INSERT INTO conversations (id, scope, head_id, revision, branches_json, record_json, created_at,"
                " updated_at, stored_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET scope = excluded.scope, head_id = excluded.head_id,"
                " revision = excluded.revision, branches_json = excluded.branches_json,"
                " record_json = excluded.record_json, updated_at = excluded.updated_at,"
                " stored_bytes = conversations.stored_bytes + excluded.stored_bytes",
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

    async def delete_record(self, conversation_id: str, *, expected_revision: str) -> None:
        with self._write() as connection:
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

    async def read_entry(self, entry_id: str) -> ConversationEntry:
        row = self.db.execute(
            "SELECT id, parent_id, kind, message_json, conversation_id FROM entries WHERE id = ?", [entry_id]
        ).fetchone()
        if row is None:
            raise LookupError(f"no entry {entry_id!r}")
        return _entry(row)

    async def read_history(self, head_id: str | None, *, limit: int | None = None) -> list[ConversationEntry]:
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
        if not rows:
            raise LookupError(f"no entry {head_id!r}")
        first_parent = rows[0][1]
        if first_parent is not None and (limit is None or len(rows) < limit):
            raise LookupError(f"the history before entry {rows[0][0]!r} is missing")
        return [_entry(row) for row in rows]

    # -- the app's session metadata, always scoped to the owner ---------------------------------

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
        with self._write() as connection:
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
        with self._write() as connection:
            connection.execute(
                "UPDATE conversations SET title = CASE WHEN title IS NULL OR title = '' THEN coalesce(?, title)"
                " ELSE title END, model = coalesce(?, model), context_policy = coalesce(?, context_policy),"
                " kind = coalesce(?, kind) WHERE id = ? AND scope = ?",
                [title, model, context_policy, kind, conversation_id, scope],
            )

    def context_policy(self, conversation_id: str, scope: str) -> str | None:
        row = self.db.execute(
            "SELECT context_policy FROM conversations WHERE id = ? AND scope = ?", [conversation_id, scope]
        ).fetchone()
        return (row[0] or None) if row else None

    def set_context_policy(self, conversation_id: str, scope: str, policy: str) -> None:
        with self._write() as connection:
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
        with self._write() as connection:
            connection.execute(
                "INSERT INTO summaries (conversation_id, scope, summary, covered, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(conversation_id) DO UPDATE SET summary = excluded.summary, covered = excluded.covered,"
                " updated_at = excluded.updated_at WHERE summaries.scope = excluded.scope",
                [conversation_id, scope, summary, covered, _now()],
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

    def server_secret(self, name: str) -> bytes:
        """A random secret the server keeps in its database, made on first use: restarts keep it, and
        every process on the same database (replicas) shares it."""
        with self._write() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO server_secrets (name, value) VALUES (?, ?)", [name, secrets.token_hex(32)]
            )
            (value,) = connection.execute("SELECT value FROM server_secrets WHERE name = ?", [name]).fetchone()
        return bytes.fromhex(value)

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _entry(row: tuple) -> ConversationEntry:
    entry_id, parent_id, kind, message_json, conversation_id = row
    try:
        (message,) = ModelMessagesTypeAdapter.validate_json(message_json)
    except (pydantic.ValidationError, ValueError) as error:
        raise CorruptConversation(conversation_id, f"entry {entry_id}: {type(error).__name__}") from error
    if not isinstance(message, (ModelRequest, ModelResponse)):
        raise CorruptConversation(conversation_id, f"entry {entry_id} is not a message")
    return ConversationEntry(id=entry_id, parent_id=parent_id, message=message, kind=kind)


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
