"""pydantic-ai's `ConversationStore` and the app's catalogue on PostgreSQL, for replicas: the store written
once for SQL (storage/sql_store.py) over the PostgreSQL database (storage/postgres_database.py), and how
its journal tells that a server is gone.

Each server holds a session lock named after its id, on a connection of its own, for as long as it lives;
PostgreSQL releases it when that connection ends (exit, kill -9, a lost host), so a turn whose server's
lock can be taken was left by a server that is gone, on whichever host it ran.

A restart of PostgreSQL drops every lock at once, of the living servers too: each server's keeper
(`_keep_alive`) finds its connection lost and takes the lock again as soon as PostgreSQL is back, and
writes down on which start of PostgreSQL it did (`live_servers.since`). A free lock means gone only for a
server that took it since PostgreSQL last started, or once every living server has had `RETAKE_SECONDS`
to take it again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref

import psycopg

from storage.catalogue import StoreUnavailable
from storage.postgres_database import POOL_WAIT_SECONDS, PostgresDatabase
from storage.sql_database import SQLDatabase, Statements
from storage.sql_journal import SQLTurnJournal, end_turn_in
from storage.sql_store import SQLConversationStore

log = logging.getLogger(__name__)

LOOK_EVERY = 0.5
"""Seconds between a keeper's looks at its connection (and between its tries while PostgreSQL is away)."""
RETAKE_SECONDS = 10.0
"""After PostgreSQL starts, how long a server that held its lock before has to take it again before a free
lock says it is gone: many times `LOOK_EVERY`, for a replica that is busy."""


class PostgresTurnJournal(SQLTurnJournal):
    database: PostgresDatabase

    def __init__(self, database: SQLDatabase, server_id: str | None = None) -> None:
        super().__init__(database, server_id)
        self._liveness = _Liveness(self.database, self.server_id, self.ends_owed)
        # A journal dropped without `close` (a test's) lets its lock go, as its connection's end did.
        weakref.finalize(self, self._liveness.close)

    def mark_alive(self) -> None:
        """Wait until this server's lock is held (its keeper started on the first call)."""
        self._liveness.held()

    def judges_others(self, statements: Statements) -> bool:
        (taken_since_start,) = statements.execute(
            "SELECT EXISTS (SELECT 1 FROM live_servers WHERE server_id = ? AND since = pg_postmaster_start_time())",
            [self.server_id],
        ).fetchone()
        return bool(taken_since_start)

    def server_gone(self, statements: Statements, server_id: str) -> bool:
        key = _lock_key(server_id)
        (taken,) = statements.execute("SELECT pg_try_advisory_lock(?)", [key]).fetchone()
        if not taken:
            return False  # it holds its lock: it runs
        statements.execute("SELECT pg_advisory_unlock(?)", [key])
        (gone,) = statements.execute(
            "SELECT EXISTS (SELECT 1 FROM live_servers WHERE server_id = ? AND since = pg_postmaster_start_time())"
            " OR now() - pg_postmaster_start_time() > make_interval(secs => ?)",
            [server_id, RETAKE_SECONDS],
        ).fetchone()
        return bool(gone)

    def forget_server(self, statements: Statements, server_id: str) -> None:
        statements.execute("DELETE FROM live_servers WHERE server_id = ?", [server_id])

    def close(self) -> None:
        self._liveness.close()


class _Liveness:
    """One server's lock, held by a keeper thread on a connection of its own and taken again on a new one
    whenever that connection is lost (PostgreSQL restarted); then the turns that ended meanwhile are ended."""

    def __init__(self, database: PostgresDatabase, server_id: str, ends_owed: set[str]) -> None:
        self.database = database
        self.server_id = server_id
        self.ends_owed = ends_owed
        self._starting = threading.Lock()
        self._keeper: threading.Thread | None = None
        self._held = threading.Event()
        """Set while the keeper holds the lock, as far as it has seen (a lost connection shows at its next look)."""
        self._closing = threading.Event()

    def held(self) -> None:
        with self._starting:
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep, name="liveness", daemon=True)
                self._keeper.start()
        if not self._held.wait(POOL_WAIT_SECONDS):
            raise StoreUnavailable("PostgreSQL is not reachable (this server's liveness lock is not held)")

    def _keep(self) -> None:
        key = _lock_key(self.server_id)
        while not self._closing.is_set():
            try:
                with self.database.own_connection() as connection:
                    connection.execute("SELECT pg_advisory_lock(%s)", [key])
                    connection.execute(
                        "INSERT INTO live_servers (server_id, since) VALUES (%s, pg_postmaster_start_time())"
                        " ON CONFLICT (server_id) DO UPDATE SET since = excluded.since",
                        [self.server_id],
                    )
                    self._held.set()
                    self._end_owed()
                    while not self._closing.wait(LOOK_EVERY):
                        connection.execute("SELECT 1")  # a connection PostgreSQL closed fails here
            except psycopg.Error as lost:
                if self._held.is_set():
                    log.warning("lost this server's liveness lock (%s); taking it again", type(lost).__name__)
            finally:
                self._held.clear()
            self._closing.wait(LOOK_EVERY)

    def _end_owed(self) -> None:
        """End the entries of this server's turns that ended while the database was away, as soon as it is back:
        their visitors were told they were not saved (chat/wings/journal.py)."""
        for turn_id in list(self.ends_owed):
            try:
                with self.database.transaction() as statements:
                    end_turn_in(statements, turn_id)
            except StoreUnavailable:
                return  # the periodic look (chat/wings/journal.py) tries again
            self.ends_owed.discard(turn_id)

    def close(self) -> None:
        """This server is going: let go of its lock (its connection ends)."""
        self._closing.set()
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join(timeout=POOL_WAIT_SECONDS + 1)


class PostgresConversationStore(PostgresDatabase, SQLConversationStore):
    reaches_other_servers = True
    journal_type = PostgresTurnJournal


def _lock_key(server_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(server_id.encode(), digest_size=8).digest(), "big", signed=True)
