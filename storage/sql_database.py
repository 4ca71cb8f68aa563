"""What a SQL backend provides to the store written once over it (storage/sql_store.py, sql_catalogue.py,
sql_journal.py): a `Dialect` (the few statements SQLite and PostgreSQL write differently) and two ways to run
statements, `connection()` and `transaction()`.

The shared SQL is written with `?` marks; a backend whose driver wants another style translates it in its
`connection()` and `transaction()` (PostgreSQL's `%s`: storage/postgres_database.py). Both backends run their
statements in a worker thread (`off_the_event_loop`), the SQLite file and the PostgreSQL pool alike.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def now() -> str:
    """A timestamp as every table stores it: ISO 8601 in UTC (PostgreSQL reads it into `timestamptz`)."""
    return datetime.now(UTC).isoformat()


def as_datetime(value: str | datetime) -> datetime:
    """A timestamp read back: SQLite returns the text written, PostgreSQL a `datetime`."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def off_the_event_loop(work: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """A method as the async interface awaits it, its database work done in a worker thread: a save or a
    listing never stalls every other stream on the event loop (each thread has its own connection)."""

    @functools.wraps(work)
    async def in_a_thread(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(work, *args, **kwargs)

    return in_a_thread


class Rows(Protocol):
    """What a statement returns, as sqlite3 and psycopg cursors both give it."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Statements(Protocol):
    """A connection as the shared SQL uses it: `?` marks, positional parameters."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Rows: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class Dialect:
    """Where the shared SQL differs between databases: these fragments, and nothing else."""

    insertion_order: str
    """The column that orders rows as they were inserted (SQLite's `rowid`, a PostgreSQL `bigserial`)."""
    json_value: str
    """How a `?` holding JSON text is written into a JSON column."""
    record_keeping_details: str
    """The new `record_json` (a `?`) with the stored record's `title` and `metadata` put back into it."""
    branch_tips: str
    """A query of every entry id held in a `branches_json` of `conversations`."""
    entry_columns: tuple[str, ...]
    """The columns a new entry is written with, among those `sql_store.entry_row` gives."""
    lock_to_update: str = ""
    """What keeps a row read in a transaction from changing until it ends, where the transaction alone does not."""
    lock_to_share: str = ""
    """What keeps a row read from being deleted until the statement ends, where a single writer does not."""
    text_contains: str
    """A condition that `e.text` contains the search (a `?`, written by `search_value`), in any case."""
    search_value: Callable[[str], str]
    """The search text as `text_contains` takes it."""


class SQLDatabase(ABC):
    """A database a SQL store runs on. A backend gives its `dialect` and implements `connection` and
    `transaction`; the store, catalogue and journal over it are written once against these."""

    dialect: Dialect

    @abstractmethod
    def connection(self) -> AbstractContextManager[Statements]:
        """A connection on which each statement is its own transaction: for reads, and single-statement writes."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Statements]:
        """One transaction, committed when the block ends and rolled back if it raises. Two transactions that
        read and then write the same row must not both pass a check made on what they read: SQLite takes its
        single write lock first, PostgreSQL locks the rows (`dialect.lock_to_update`) or checks in the write."""

    def server_secret(self, name: str) -> bytes:
        """A random secret the server keeps in its database, made on first use: restarts keep it, and
        every process on the same database (replicas) shares it."""
        with self.transaction() as statements:
            statements.execute(
                "INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                [name, secrets.token_hex(32)],
            )
            (value,) = statements.execute("SELECT value FROM server_secrets WHERE name = ?", [name]).fetchone()
        return bytes.fromhex(value)
