"""Conversation storage behind pydantic-ai's `ConversationStore` interface.

Until the SQLite backend lands, conversations live in pydantic-ai's `InMemoryConversationStore`
(scoped per owner, lost on restart).
"""

from __future__ import annotations

from pydantic_ai.conversation_store import ConversationStore, InMemoryConversationStore


def open_store() -> ConversationStore:
    return InMemoryConversationStore()
