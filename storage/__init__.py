"""Conversation storage: pydantic-ai's `ConversationStore` on SQLite (sqlite_store), the app's catalogue
beside it (catalogue: titles, listing, search, summaries), the database under both (database)."""

from __future__ import annotations

from pathlib import Path

from storage.sqlite_store import CorruptConversation, SearchHit, SessionSummary, SQLiteConversationStore

__all__ = ["CorruptConversation", "SQLiteConversationStore", "SearchHit", "SessionSummary", "open_store"]


def open_store(path: str | Path) -> SQLiteConversationStore:
    return SQLiteConversationStore(path)
