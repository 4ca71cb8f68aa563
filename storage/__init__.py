"""Conversation storage: pydantic-ai's `ConversationStore` with the app's catalogue beside it (catalogue:
titles, listing, search, summaries, the interface chat/ is written against, and the rules every backend
keeps); the turn journal (turn_journal).

On SQL, written once (sql_store, sql_catalogue, sql_journal) against a database's dialect and connections
(sql_database): SQLite (sqlite_store over database and migrations) or PostgreSQL (postgres_store over
postgres_database). In memory: memory_store, for tests. A new SQL backend is one `SQLDatabase` (its
`Dialect`, `connection()`, `transaction()`) and a store class naming its journal, as sqlite_store does."""

from __future__ import annotations

from pathlib import Path

from storage.catalogue import CorruptConversation, SearchHit, ServerStore, SessionSummary
from storage.sqlite_store import SQLiteConversationStore

__all__ = ["CorruptConversation", "SQLiteConversationStore", "SearchHit", "SessionSummary", "open_store"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(place: str | Path) -> bool:
    return str(place).startswith(POSTGRES_SCHEMES)


def open_store(place: str | Path, *, max_connections: int = 10) -> ServerStore:
    """A `postgresql://` URL opens PostgreSQL (replicas share it); anything else is a SQLite file's path."""
    if is_postgres_url(place):
        from storage.postgres_store import PostgresConversationStore  # psycopg only where it is used

        return PostgresConversationStore(str(place), max_connections=max_connections)
    return SQLiteConversationStore(place)
