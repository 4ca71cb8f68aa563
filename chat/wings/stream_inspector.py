"""The stream inspector: each `stream_text(delta=True)` delta with its time offset and size, beside the
cumulative text that `delta=False` yields at the same moment, so a workshop sees what debouncing merges."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic_ai import Agent, DeferredToolRequests

from chat.models import ModelResolver
from chat.text import visible_prefix
from chat.wings.tools import ChatDeps


@dataclass(frozen=True)
class StreamEvent:
    number: int
    offset_ms: float
    delta: str
    cumulative: str

    @property
    def size(self) -> int:
        return len(self.delta)


class StreamInspector:
    def __init__(self, agent: Agent[ChatDeps, str | DeferredToolRequests], models: ModelResolver) -> None:
        self.agent = agent
        self.models = models

    async def events(self, prompt: str, model_name: str, debounce: float | None) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        cumulative = ""
        async with self.agent.run_stream(prompt, model=self.models.resolve(model_name)) as run:
            async for number, delta in _numbered(run.stream_text(delta=True, debounce_by=debounce or None)):
                cumulative += delta
                offset = (time.perf_counter() - started) * 1000
                yield StreamEvent(number, offset, visible_prefix(delta), visible_prefix(cumulative))


async def _numbered(deltas: AsyncIterator[str]) -> AsyncIterator[tuple[int, str]]:
    number = 0
    async for delta in deltas:
        number += 1
        yield number, delta
