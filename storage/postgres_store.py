"""pydantic-ai's `ConversationStore` and the app's catalogue on PostgreSQL, for replicas: the store written
once for SQL (storage/sql_store.py) over the PostgreSQL database (storage/postgres_database.py), and how
its journal tells that a server is gone.

Each server holds a session lock named after its id, on a connection of its own, for as long as it lives;
PostgreSQL releases it when that connection ends (exit, kill -9, a lost host), so a turn whose server's
lock can be taken was left by a server that is gone, on whichever host it ran.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING

from storage.postgres_database import PostgresDatabase
from storage.sql_database import SQLDatabase, Statements
from storage.sql_journal import SQLTurnJournal
from storage.sql_store import SQLConversationStore

if TYPE_CHECKING:
    import psycopg


class PostgresTurnJournal(SQLTurnJournal):
    database: PostgresDatabase

    def __init__(self, database: SQLDatabase, server_id: str | None = None) -> None:
        super().__init__(database, server_id)
        self._alive: psycopg.Connection | None = None
        self._taking = threading.Lock()

    def mark_alive(self) -> None:
        with self._taking:  # one connection takes it: a second one asking for the same lock would wait forever
            if self._alive is None:
                self._alive = self.database.own_connection()
                self._alive.execute("SELECT pg_advisory_lock(%s)", [_lock_key(self.server_id)])

    def server_gone(self, statements: Statements, server_id: str) -> bool:
        key = _lock_key(server_id)
        (taken,) = statements.execute("SELECT pg_try_advisory_lock(?)", [key]).fetchone()
        if taken:
            statements.execute("SELECT pg_advisory_unlock(?)", [key])
        return bool(taken)

    def close(self) -> None:
        if self._alive is not None:
            self._alive.close()
            self._alive = None


class PostgresConversationStore(PostgresDatabase, SQLConversationStore):
    reaches_other_servers = True
    journal_type = PostgresTurnJournal


def _lock_key(server_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(server_id.encode(), digest_size=8).digest(), "big", signed=True)
