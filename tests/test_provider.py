"""Real HTTP streaming through the real `openai` client against a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from pydantic_ai import models

from chat.config import Settings
from chat.endings import END_KEY
from chat.models import ModelResolver
from chat.runs import RunStatus
from chat.turns import ChatService
from tests.fake_openai import FakeOpenAIServer
from tests.scripted import chat_service

pytestmark = pytest.mark.anyio


MODEL = "compatible:fake-model"
# Long enough for a loopback connect on a busy CI machine (0.5 s once timed out there), far below fault:slow's 30 s.
REQUEST_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
async def service(server, store, monkeypatch):
    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)  # only this loopback server is ever reached
    settings = Settings(
        model="fake-model", base_url=server.base_url, provider_retries=0, request_timeout=REQUEST_TIMEOUT
    )
    resolver = ModelResolver(settings)
    yield chat_service(store, resolver, request_timeout=REQUEST_TIMEOUT, min_update_interval=0)
    # Close the HTTP client on the test's own event loop, which ends with the test.
    await resolver.resolve(MODEL).client.close()


async def turn(service: ChatService, prompt: str, conversation: str = "c1"):
    return [update async for update in service.run_turn("alice", conversation, prompt, MODEL)]


async def test_deltas_arrive_in_order_and_the_provider_usage_is_reported(service, server):
    updates = await turn(service, "hello")
    final = updates[-1]
    assert final.status is RunStatus.COMPLETED
    assert final.text == "".join(f"word{i} " for i in range(10))
    streamed = [u.text for u in updates[:-1]]
    assert len(streamed) >= 3 and all(b.startswith(a) for a, b in itertools.pairwise(streamed))
    assert (final.stats.input_tokens, final.stats.output_tokens, final.stats.estimated) == (21, 10, False)
    sent = server.log.requests[-1]
    assert sent["stream"] is True and sent["messages"][-1] == {"role": "user", "content": "hello"}


async def test_history_goes_back_to_the_server_as_messages(service, server):
    first = await turn(service, "first question", conversation="history")
    assert first[-1].status is RunStatus.COMPLETED, first[-1].error
    await turn(service, "second question", conversation="history")
    roles = [(m["role"], m.get("content")) for m in server.log.requests[-1]["messages"]]
    assert ("user", "first question") in roles
    assert ("assistant", "".join(f"word{i} " for i in range(10))) in roles
    assert roles[-1] == ("user", "second question")


async def test_stop_closes_the_http_stream_and_keeps_the_partial(service, server):
    server.log.disconnected.clear()
    updates = service.run_turn("alice", "stop", "slow", MODEL)
    seen = []
    async for update in updates:
        seen.append(update)
        if len(seen) == 3:
            assert service.stop("alice", "stop")
    final = seen[-1]
    assert final.status is RunStatus.STOPPED
    assert final.text.startswith("word0 word1")
    # The server never sent usage, so the tokens shown are an estimate, and say so.
    assert final.stats.estimated and final.stats.output_tokens >= 2
    assert await asyncio.to_thread(server.log.disconnected.wait, 5)
    stored = await service.edits.load_messages("alice", "stop")
    assert stored[-1].state == "interrupted" and stored[-1].metadata[END_KEY] == "stopped"


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("fault:400", "refused the request (HTTP 400)"),
        ("fault:401", "rejected the API key"),
        ("fault:429", "wait 7 s"),
        ("fault:500", "HTTP 500"),
        ("fault:slow", "did not answer in time"),
        ("fault:drop", "broke in the middle of the answer"),
    ],
)
async def test_faults_give_their_documented_message_and_save_nothing(service, prompt, expected):
    final = (await turn(service, prompt, conversation=prompt))[-1]
    assert final.status is RunStatus.FAILED
    assert expected in final.error and "org-Zq81x" not in final.error  # the provider's own text stays in the log
    assert await service.edits.load_messages("alice", prompt) == []
    assert (await turn(service, "hello", conversation=prompt))[-1].status is RunStatus.COMPLETED


async def test_a_stream_cut_without_finish_reason_is_labelled_connection_lost(service):
    final = (await turn(service, "fault:cut", conversation="cut"))[-1]
    assert final.status is RunStatus.CONNECTION_LOST
    assert final.text == "word0 word1 word2 "
    stored = await service.edits.load_messages("alice", "cut")
    assert stored[-1].metadata[END_KEY] == "connection_lost"


async def test_an_emoji_split_across_chunks_is_stored_whole(service):
    final = (await turn(service, "fault:emoji", conversation="emoji"))[-1]
    assert final.text == "Smile \U0001f600 done"
    stored = await service.edits.load_messages("alice", "emoji")
    assert stored[-1].parts[0].content == "Smile \U0001f600 done"


async def test_recipe_tool_call_deltas_stream_through_the_real_client(server, store, monkeypatch):
    from chat.recipe_runs import RecipeService

    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)
    resolver = ModelResolver(Settings(model="fake-model", base_url=server.base_url, provider_retries=0))
    recipes = RecipeService(store, resolver)
    try:
        updates = [u async for u in recipes.run("alice", "r1", "leek soup", MODEL, debounce=None)]
        assert server.log.requests[-1]["tools"][0]["function"]["name"] == "final_result"
        partials = [u.recipe for u in updates if u.recipe is not None]
        assert updates[-1].status is RunStatus.COMPLETED
        assert partials[-1].name == "Leek soup" and partials[-1].steps == ["Slice.", "Simmer.", "Blend."]
        assert len({(r.name, len(r.ingredients), len(r.steps)) for r in partials}) >= 4

        broken = [u async for u in recipes.run("alice", "r2", "fault:badjson", MODEL, debounce=None)]
        assert broken[-1].status is RunStatus.FAILED and "did not validate" in broken[-1].error
        assert broken[-1].recipe is not None and broken[-1].recipe.name == "Leek soup"
    finally:
        await resolver.resolve(MODEL).client.close()


async def test_a_provider_error_text_reaches_the_server_log_not_the_visitor(service, caplog):
    with caplog.at_level("ERROR"):
        final = (await turn(service, "fault:400 por favor", conversation="refused"))[-1]
    assert "org-Zq81x" not in final.error and "server log" in final.error
    assert "org-Zq81x" in caplog.text


async def test_a_streamed_tool_call_runs_the_tool_and_the_answer_uses_its_result(service, server):
    final = (await turn(service, "tool:calculate please", conversation="tools"))[-1]
    assert final.status is RunStatus.COMPLETED, final.error
    (step,) = final.steps
    assert (step.tool, step.result) == ("calculate", "42") and "42" in final.text
    assert final.stats.requests == 2
    answered = server.log.requests[-1]["messages"]
    assert answered[-1]["role"] == "tool" and answered[-1]["content"] == "42"
    assert any(call["function"]["name"] == "calculate" for call in answered[-2].get("tool_calls", []))
