"""Conversation storage: pydantic-ai's `ConversationStore` with the app's catalogue beside it (catalogue:
titles, listing, search, summaries, the interface chat/ is written against); on SQLite (sqlite_store,
sqlite_catalogue, database under both) or in memory (memory_store, for tests)."""

from __future__ import annotations

from pathlib import Path

from storage.sqlite_store import CorruptConversation, SearchHit, SessionSummary, SQLiteConversationStore

__all__ = ["CorruptConversation", "SQLiteConversationStore", "SearchHit", "SessionSummary", "open_store"]


def open_store(path: str | Path) -> SQLiteConversationStore:
    return SQLiteConversationStore(path)
