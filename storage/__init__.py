"""Conversation storage: pydantic-ai's `ConversationStore` with the app's catalogue beside it (catalogue:
titles, listing, search, summaries, the interface chat/ is written against); on SQLite (sqlite_store,
sqlite_catalogue, database under both), on PostgreSQL (postgres_store, postgres_catalogue,
postgres_database) or in memory (memory_store, for tests)."""

from __future__ import annotations

from pathlib import Path

from storage.catalogue import ServerStore
from storage.sqlite_store import CorruptConversation, SearchHit, SessionSummary, SQLiteConversationStore

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
