"""Analyst -> writer: two agents, one stored conversation, and the writer sees the analysis."""

from __future__ import annotations

import asyncio

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from chat.demo_model import DemoPace
from chat.runs import RunStatus
from chat.wings.handoff import ANALYST_INSTRUCTIONS, WRITER_INSTRUCTIONS, HandoffService, Stage
from tests.scripted import ScriptedResolver

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(any_store):
    """chat/ is written against `CataloguedStore`: every test here runs on SQLite and in memory."""
    return any_store


async def test_the_writer_continues_from_the_analysts_messages_and_both_are_stored(store):
    seen: list[tuple[str | None, list[ModelMessage]]] = []

    async def recording(messages: list[ModelMessage], info: AgentInfo):
        seen.append((info.instructions, list(messages)))
        yield "ANALYSIS: mean 146.6" if "ANALYST" in (info.instructions or "") else "ARTICLE about 146.6"

    handoff = HandoffService(store, ScriptedResolver(DemoPace.instant(), rec=FunctionModel(stream_function=recording)))
    updates = [u async for u in handoff.run("alice", "h1", "120, 135, 190", "rec")]
    assert updates[-1].status is RunStatus.COMPLETED
    (analyst_instructions, _), (writer_instructions, writer_history) = seen
    assert analyst_instructions == ANALYST_INSTRUCTIONS and writer_instructions == WRITER_INSTRUCTIONS
    analysis_seen = [m for m in writer_history if isinstance(m, ModelResponse)]
    assert analysis_seen and analysis_seen[0].parts[0].content == "ANALYSIS: mean 146.6"
    stored = (await store.load("h1", scope="alice")).messages
    assert [m.kind for m in stored] == ["request", "response", "request", "response"]
    assert stored[3].parts[0].content == "ARTICLE about 146.6"
    # Listed and searchable in the chat sidebar like any conversation, and only for its owner.
    assert (await store.list_sessions("alice"))[0].title.startswith("Analysis: 120, 135, 190")
    assert [hit.conversation_id for hit in await store.search("alice", "ARTICLE about")] == ["h1"]
    assert await store.list_sessions("bob") == [] and await store.search("bob", "ARTICLE about") == []


async def test_the_demo_personas_analyse_then_write_with_no_key(store):
    handoff = HandoffService(store, ScriptedResolver(DemoPace.instant()))
    updates = [u async for u in handoff.run("alice", "h1", "Monthly sales: 120, 135, 128, 160, 190", "demo")]
    final = updates[-1]
    assert "Mean: 146.60" in final.analysis and "rising" in final.analysis
    assert final.article.startswith("## What the numbers say") and "146.60" in final.article
    stages = [u.stage for u in updates if not u.final]
    assert stages.index(Stage.WRITER) > stages.index(Stage.ANALYST)  # the analyst streams first


async def test_stop_during_the_writer_keeps_both_partials(store):
    async def slow(messages, info: AgentInfo):
        for n in range(2_000):
            await asyncio.sleep(0.001)
            yield f"{'A' if 'ANALYST' in (info.instructions or '') else 'W'}{n} "
            if "ANALYST" in (info.instructions or "") and n == 5:
                return

    handoff = HandoffService(store, ScriptedResolver(DemoPace.instant(), slow=FunctionModel(stream_function=slow)))
    updates = []
    async for update in handoff.run("alice", "h1", "data 1 2 3", "slow"):
        updates.append(update)
        if update.stage is Stage.WRITER and update.article.count(" ") >= 3:
            handoff.stop("alice", "h1")
    final = updates[-1]
    assert final.status is RunStatus.STOPPED and final.stage is Stage.WRITER
    stored = (await store.load("h1", scope="alice")).messages
    assert stored[1].parts[0].content.startswith("A0") and stored[-1].state == "interrupted"
    assert isinstance(stored[-1].parts[0], TextPart) and stored[-1].parts[0].content.startswith("W0")


async def test_empty_data_is_refused(store):
    handoff = HandoffService(store, ScriptedResolver(DemoPace.instant()))
    updates = [u async for u in handoff.run("alice", "h1", "  ", "demo")]
    assert updates[-1].status is RunStatus.FAILED and "data" in updates[-1].error
