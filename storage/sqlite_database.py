"""The SQLite file under the store: its dialect, one connection per thread, write transactions.

WAL mode with `synchronous=NORMAL`: readers never wait for a writer, and a commit does not wait for the
disk (a power cut can lose the last commits, never corrupt the file).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from storage.migrations import migrations
from storage.sql_database import Dialect, SQLDatabase


def contains_any_case(text: str | None, lowered_query: str) -> bool:
    return text is not None and lowered_query in text.lower()


SQLITE = Dialect(
    insertion_order="rowid",
    json_value="?",
    record_keeping_details="json_set(?, '$.title', json_extract(record_json, '$.title'),"
    " '$.metadata', json(json_extract(record_json, '$.metadata')))",
    branch_tips="SELECT value FROM conversations, json_each(conversations.branches_json)",
    entry_columns=("id", "parent_id", "conversation_id", "kind", "message_json", "text", "created_at"),
    # SQLite's LIKE and lower() fold ASCII only; search folds any letter, as PostgreSQL's ILIKE does.
    text_contains="contains_any_case(e.text, ?)",
    search_value=str.lower,
)
"""No row locks: a write transaction holds the file's single write lock (`transaction`)."""


class SQLiteDatabase(SQLDatabase):
    """One SQLite file, migrated on open; safe to share between threads (each gets its own connection)."""

    dialect = SQLITE

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
            connection.create_function("contains_any_case", 2, contains_any_case, deterministic=True)
            db = self._local.db = Database(connection)
        return db

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        yield self.db.conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock before anything is read, so two writers cannot both pass a check
        # made on what they read (a deferred transaction would fail its upgrade instead).
        connection = self.db.conn
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
