from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from pydantic_ai import models

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# `app.demo` (built on first use, from the environment) must keep its database out of the working tree.
os.environ["CHAT_DB"] = str(Path(tempfile.mkdtemp(prefix="chat-tests-")) / "import-time.db")

# Unit tests never reach a provider; provider tests re-enable requests for their local server only.
models.ALLOW_MODEL_REQUESTS = False


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sqlite_store(tmp_path):
    """A real SQLite file in this test's own folder."""
    from storage.sqlite_store import SQLiteConversationStore

    return SQLiteConversationStore(tmp_path / "chat.db")


@pytest.fixture
def store(sqlite_store):
    """The store a test runs on: SQLite, unless its module runs it on every backend (`any_store`)."""
    return sqlite_store


@pytest.fixture
def sqlite_on_this_thread(monkeypatch):
    """The store's SQL on the test's own thread and connection instead of worker threads, to trace it."""

    async def inline(work, *args, **kwargs):
        return work(*args, **kwargs)

    monkeypatch.setattr("storage.database.asyncio.to_thread", inline)


@pytest.fixture(params=["sqlite", "in-memory"])
def any_store(request, tmp_path):
    """chat/ is written against `CataloguedStore`: what it does must hold on SQLite and in memory alike."""
    from storage.memory_store import MemoryConversationStore
    from storage.sqlite_store import SQLiteConversationStore

    if request.param == "in-memory":
        return MemoryConversationStore()
    return SQLiteConversationStore(tmp_path / "chat.db")
