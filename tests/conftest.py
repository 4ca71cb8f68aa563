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
def store(tmp_path):
    """A real SQLite file in this test's own folder."""
    from storage.sqlite_store import SQLiteConversationStore

    return SQLiteConversationStore(tmp_path / "chat.db")
