"""What the chat, recipe and hand-off services share: the store, the models, a timeout and the server's runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic_ai import CancellationToken

from chat.models import ModelResolver
from chat.runs import ActiveTurns
from storage.catalogue import CataloguedStore


class RunService:
    """A service whose runs stream in a task of their own (`chat.runs.stream_from_own_task`) and can be stopped."""

    def __init__(
        self,
        store: CataloguedStore,
        models: ModelResolver,
        *,
        request_timeout: float = 60.0,
        active: ActiveTurns | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.store = store
        self.models = models
        self.request_timeout = request_timeout
        self.active = active if active is not None else ActiveTurns()  # an idle one is empty, so falsy
        """Shared with the chat service in the app: Stop finds every run, one shutdown drains them all."""
        self._clock = clock

    def stop(self, owner: str, run_id: str) -> bool:
        """Stop the owner's run of this id (True when one was running); the run saves what it has."""
        return bool(owner) and self.active.stop(owner, run_id)

    def run_options(self, token: CancellationToken) -> dict[str, Any]:
        """What every run passes to `run_stream`: Stop's token and the provider's timeout."""
        return {"cancellation_token": token, "model_settings": {"timeout": self.request_timeout}}
