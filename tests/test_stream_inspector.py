from __future__ import annotations

import itertools

import pytest

from chat.agents import build_chat_agent
from chat.config import Settings
from chat.demo_model import DemoPace
from chat.models import ModelResolver
from chat.wings.stream_inspector import StreamInspector

pytestmark = pytest.mark.anyio


async def events(debounce: float | None, pace: DemoPace):
    inspector = StreamInspector(build_chat_agent(), ModelResolver(Settings(), pace))
    return [event async for event in inspector.events("count to 60", "demo", debounce)]


async def test_each_delta_is_shown_beside_the_cumulative_text():
    shown = await events(None, DemoPace.instant())
    assert [e.number for e in shown] == list(range(1, len(shown) + 1))
    cumulative = ""
    for event in shown:
        cumulative += event.delta
        assert event.cumulative == cumulative and event.size == len(event.delta)
    assert shown[-1].cumulative.endswith("60.")
    assert all(a.offset_ms <= b.offset_ms for a, b in itertools.pairwise(shown))


async def test_debounce_merges_chunks_into_fewer_deltas():
    pace = DemoPace(first_token_delay=0, tokens_per_second=400)
    undebounced, debounced = await events(None, pace), await events(0.05, pace)
    assert debounced[-1].cumulative == undebounced[-1].cumulative
    assert len(debounced) < len(undebounced) / 3
