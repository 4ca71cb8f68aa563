from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic_ai import models

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Unit tests never reach a provider; provider tests re-enable requests for their local server only.
models.ALLOW_MODEL_REQUESTS = False


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
