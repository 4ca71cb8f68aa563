from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from pydantic_ai import models

from tests.databases import throwaway_postgres

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

    monkeypatch.setattr("storage.sql_database.asyncio.to_thread", inline)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL of the tests' own (initdb in /tmp), for the whole run; skipped where none can run."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary,pool]')")
    from deploy.local_postgres import missing_reason

    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with throwaway_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server):
    """A new empty database on the tests' PostgreSQL."""
    return postgres_server.create_database(f"test_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def postgres_store(postgres_url):
    from storage.postgres_store import PostgresConversationStore

    store = PostgresConversationStore(postgres_url, max_connections=4)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def server_store(request, tmp_path):
    """A store a server runs on (with its journal and secrets): a SQLite file, or a PostgreSQL database."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_store")
    from storage.sqlite_store import SQLiteConversationStore

    return SQLiteConversationStore(tmp_path / "chat.db")


@pytest.fixture(params=["sqlite", "postgresql", "in-memory"])
def any_store(request, tmp_path):
    """chat/ is written against `CataloguedStore`: what it does must hold on every backend alike."""
    from storage.memory_store import MemoryConversationStore
    from storage.sqlite_store import SQLiteConversationStore

    if request.param == "in-memory":
        return MemoryConversationStore()
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_store")
    return SQLiteConversationStore(tmp_path / "chat.db")
