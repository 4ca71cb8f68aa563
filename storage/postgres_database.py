"""The PostgreSQL database under the store: its dialect, a connection pool, the schema, messages between servers.

Chosen by a `postgresql://` URL in `CHAT_DB` / `--db` (storage/__init__.py). Every replica of the app
opens the same database; the first to start creates the schema (the others wait on a lock).

The pool is psycopg's thread-safe `ConnectionPool`, and each query runs in a worker thread
(`off_the_event_loop`), as SQLite's do: the store is used from more than one event loop (start-up
recovery runs before the server's loop exists, tests drive it from their own), and an async pool is
bound to the loop that opened it.

The store's SQL is written with SQLite's `?` marks (storage/sql_database.py); `connection()` and
`transaction()` hand out connections that take it (`_Marked`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from storage.catalogue import StoreUnavailable
from storage.sql_database import Dialect, SQLDatabase

try:
    import psycopg
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as missing:  # the app runs on SQLite without them
    raise ImportError(
        "CHAT_DB is a PostgreSQL URL, but psycopg is not installed: pip install 'psycopg[binary,pool]'"
    ) from missing

log = logging.getLogger(__name__)

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001 conversations, entries, summaries, secrets",
        """
        CREATE TABLE conversations (
            id text PRIMARY KEY,
            scope text NOT NULL,
            head_id text,
            revision text NOT NULL,
            branches_json jsonb NOT NULL DEFAULT '[]',
            record_json text NOT NULL,
            title text NOT NULL DEFAULT '',
            model text,
            kind text NOT NULL DEFAULT 'chat',
            context_policy text NOT NULL DEFAULT '',
            stored_bytes bigint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL,
            seq bigserial
        );
        CREATE INDEX conversations_by_owner ON conversations (scope, kind, updated_at DESC, seq DESC);
        -- An entry is written once and never changed; its owner is copied in so that a search reads only
        -- the visitor's own rows, whatever the rest of the database holds.
        CREATE TABLE entries (
            id text PRIMARY KEY,
            parent_id text REFERENCES entries (id),
            conversation_id text NOT NULL,
            scope text NOT NULL,
            kind text NOT NULL,
            message_json text NOT NULL,
            text text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            seq bigserial
        );
        CREATE INDEX entries_by_conversation ON entries (conversation_id, seq);
        CREATE INDEX entries_by_parent ON entries (parent_id);
        CREATE INDEX entries_by_owner ON entries (scope);
        CREATE TABLE summaries (
            conversation_id text PRIMARY KEY,
            scope text NOT NULL,
            summary text NOT NULL,
            covered integer NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE server_secrets (name text PRIMARY KEY, value text NOT NULL);
        """,
    ),
    (
        "002 running turns",
        """
        CREATE TABLE running_turns (
            turn_id text PRIMARY KEY,
            scope text NOT NULL,
            conversation_id text NOT NULL,
            prompt text NOT NULL,
            model text NOT NULL,
            server_id text NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE running_turn_text (
            id bigserial PRIMARY KEY,
            turn_id text NOT NULL,
            text text NOT NULL
        );
        CREATE INDEX running_turn_text_by_turn ON running_turn_text (turn_id, id);
        """,
    ),
    (
        "003 live servers",
        """
        -- When each server last took its liveness lock, as the start time of the PostgreSQL server it took it
        -- on: a restart drops every lock, and a server that has not taken its lock since is not yet known gone.
        CREATE TABLE live_servers (server_id text PRIMARY KEY, since timestamptz NOT NULL);
        """,
    ),
]
"""Append-only: never edit one that has shipped, add the next."""


def _like_pattern(query: str) -> str:
    """`query` anywhere in the text, its `%`, `_` and `\\` meaning themselves."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


POSTGRES = Dialect(
    insertion_order="seq",
    json_value="CAST(? AS jsonb)",
    record_keeping_details="(CAST(? AS jsonb) || jsonb_build_object('title', record_json::jsonb -> 'title',"
    " 'metadata', record_json::jsonb -> 'metadata'))::text",
    branch_tips="SELECT jsonb_array_elements_text(branches_json) FROM conversations",
    # Each entry carries its owner too (001 made the column; nothing reads it now, the search starts from
    # the owner's conversations).
    entry_columns=("id", "parent_id", "conversation_id", "scope", "kind", "message_json", "text", "created_at"),
    # Replicas write at once, each in its own transaction: the rows a transaction checks are locked.
    lock_to_update=" FOR UPDATE",
    lock_to_share=" FOR SHARE",
    text_contains="e.text ILIKE ?",
    search_value=_like_pattern,
)

POOL_WAIT_SECONDS = 5.0
_MIGRATION_LOCK = 0x63686174  # any constant shared by every replica: 'chat'


class PostgresDatabase(SQLDatabase):
    """One PostgreSQL database, migrated on open, reached through a pool of `max_connections`."""

    dialect = POSTGRES

    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        self.url = url
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(max_connections, 2),
            kwargs={"autocommit": True},
            # A connection the server closed (PostgreSQL restarted) is found and replaced before use.
            check=ConnectionPool.check_connection,
            # A query waits this long for a connection (PostgreSQL away): then the visitor is told, not left waiting.
            timeout=POOL_WAIT_SECONDS,
            # The pool's reconnection waits twice as long after each failure (1, 2, 4 ... s, for up to 5 minutes):
            # after an outage of half a minute it would not look again for half a minute more. It gives up sooner
            # here, and the next visitor's query starts a new attempt at once.
            reconnect_timeout=POOL_WAIT_SECONDS,
            open=True,
            name="chat-store",
        )
        self._migrate()

    def close(self) -> None:
        self.pool.close()

    def broadcast(self, channel: str, message: str) -> None:
        """PostgreSQL's NOTIFY: every server LISTENing on `channel` gets `message`, whichever host it is on."""
        with self.connection() as statements:
            statements.execute("SELECT pg_notify(?, ?)", [channel, message])

    def subscribe(self, channel: str, receive: Callable[[str], None]) -> None:
        """LISTEN on a connection of its own, on a thread of its own; a lost connection is opened again."""

        def listen() -> None:
            while True:
                try:
                    with self.own_connection() as connection:
                        connection.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
                        for notice in connection.notifies():
                            try:
                                receive(notice.payload)
                            except Exception:  # one bad message must not end the listening
                                log.exception("message on %s not handled", channel)
                except psycopg.OperationalError:
                    log.warning("lost the connection listening on %s; listening again in 1 s", channel)
                    time.sleep(1.0)

        threading.Thread(target=listen, name=f"listen-{channel}", daemon=True).start()

    def own_connection(self) -> psycopg.Connection:
        """A connection outside the pool, for what lasts as long as the server: a LISTEN, a session lock."""
        return psycopg.connect(self.url, autocommit=True)

    @contextmanager
    def connection(self) -> Iterator[_Marked]:
        with _reachable(), self.pool.connection() as connection:
            yield _Marked(connection)

    @contextmanager
    def transaction(self) -> Iterator[_Marked]:
        with _reachable(), self.pool.connection() as connection, connection.transaction():
            yield _Marked(connection)

    def _migrate(self) -> None:
        with _reachable(), self.pool.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
            connection.execute("CREATE TABLE IF NOT EXISTS migrations (name text PRIMARY KEY, applied_at timestamptz)")
            applied = {name for (name,) in connection.execute("SELECT name FROM migrations")}
            for name, schema in MIGRATIONS:
                if name not in applied:
                    connection.execute(schema)
                    connection.execute("INSERT INTO migrations (name, applied_at) VALUES (%s, now())", [name])


@contextmanager
def _reachable() -> Iterator[None]:
    """psycopg's connection failures as the store's own `StoreUnavailable`, which chat/ knows how to say."""
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as lost:
        raise StoreUnavailable(f"PostgreSQL is not reachable ({type(lost).__name__})") from lost


class _Marked:
    """A psycopg connection that takes the store's SQL: `?` marks, and `%` meaning itself."""

    def __init__(self, connection: psycopg.Connection) -> None:
        self.raw = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.raw.execute(_with_percent_marks(sql), params) if params else self.raw.execute(sql)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(_with_percent_marks(sql), rows)


@functools.lru_cache(maxsize=256)
def _with_percent_marks(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")
