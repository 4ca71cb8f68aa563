"""The SQLite file under the store: one connection per thread, write transactions, the server's secrets.

WAL mode with `synchronous=NORMAL`: readers never wait for a writer, and a commit does not wait for the
disk (a power cut can lose the last commits, never corrupt the file).
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from sqlite_utils import Database

from storage.migrations import migrations

P = ParamSpec("P")
T = TypeVar("T")


def now() -> str:
    return datetime.now(UTC).isoformat()


def contains_any_case(text: str | None, lowered_query: str) -> bool:
    return text is not None and lowered_query in text.lower()


def off_the_event_loop(work: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """A method as the async interface awaits it, its SQLite work done in a worker thread: a save or a
    listing never stalls every other stream on the event loop (each thread has its own connection)."""

    @functools.wraps(work)
    async def in_a_thread(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(work, *args, **kwargs)

    return in_a_thread


class SQLiteDatabase:
    """One SQLite file, migrated on open; safe to share between threads (each gets its own connection)."""

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
            # SQLite's LIKE and lower() fold ASCII only; search folds any letter, as PostgreSQL's ILIKE does.
            connection.create_function("contains_any_case", 2, contains_any_case, deterministic=True)
            db = self._local.db = Database(connection)
        return db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
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

    def server_secret(self, name: str) -> bytes:
        """A random secret the server keeps in its database, made on first use: restarts keep it, and
        every process on the same database (replicas) shares it."""
        with self.write() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO server_secrets (name, value) VALUES (?, ?)", [name, secrets.token_hex(32)]
            )
            (value,) = connection.execute("SELECT value FROM server_secrets WHERE name = ?", [name]).fetchone()
        return bytes.fromhex(value)

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
