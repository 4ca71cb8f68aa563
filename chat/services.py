"""What the chat, recipe and hand-off services share: the store, the models, a timeout and the server's runs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic_ai import CancellationToken

from chat.models import ModelResolver
from chat.runs import ActiveTurns, LiveRun
from storage.catalogue import CataloguedStore

MAX_UPDATES_PER_SECOND = 200
"""What the server sends in total to all streaming runs; see `RunService.update_interval`."""


class RunService:
    """A service whose runs stream in a task of their own (`chat.runs.stream_from_own_task`) and can be stopped."""

    kind = "run"
    """What `ActiveTurns.live` knows this service's runs by."""

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
        self.min_update_interval = 0.05

    def stop(self, owner: str, run_id: str) -> bool:
        """Stop the owner's run of this id (True when one was running); the run saves what it has."""
        return bool(owner) and self.active.stop(owner, run_id)

    async def stop_and_wait(self, owner: str, run_id: str) -> None:
        """Stop the owner's run of this id if one is running, and wait (a few seconds at most) while it saves:
        a conversation about to be deleted must not be written again by its own answer's save."""
        if owner and self.active.is_running(owner, run_id):
            self.active.stop(owner, run_id)
            await self.active.settle(owner, run_id)

    def run_options(self, token: CancellationToken) -> dict[str, Any]:
        """What every run passes to `run_stream`: Stop's token and the provider's timeout."""
        return {"cancellation_token": token, "model_settings": {"timeout": self.request_timeout}}

    def update_interval(self) -> float:
        """At least `min_update_interval` between a turn's updates, longer as more turns stream at once.

        Each update costs the server a fixed amount (Gradio post-processes and diffs the whole chat),
        so the server as a whole sends at most about `MAX_UPDATES_PER_SECOND`; with 200 turns
        streaming, each shows new text about once a second instead of the server falling behind.
        """
        streams = len(self.active)
        if streams <= 1:
            return self.min_update_interval  # alone, a turn keeps the pace it was configured for
        return max(self.min_update_interval, streams / MAX_UPDATES_PER_SECOND)

    def live_turn(self, owner: str | None, conversation_id: str) -> LiveRun[Any] | None:
        """This owner's turn in this conversation that is answering, or that ended moments ago (for a
        client that lost the end of it); None for anyone else's."""
        run = self.active.live(owner, conversation_id) if owner else None
        return run if run is not None and run.kind == self.kind else None

    def answering(self, owner: str | None) -> dict[str, str]:
        """This owner's conversations answering now (on this server), each with the prompt it answers: a chat
        whose first answer is still being written is in no store yet."""
        return self.active.running_of(owner, self.kind) if owner else {}

    def follow(self, run: LiveRun[Any]) -> AsyncIterator[Any]:
        """The run's updates from the latest on, paced like the turn's own (its final update ends them)."""
        return run.read(min_update_interval=self.update_interval, clock=self._clock)
