"""The turn runner on the demo model and scripted FunctionModels, over a real SQLite file (the `store` fixture)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel

from chat.agents import build_chat_agent
from chat.config import Settings
from chat.endings import END_KEY
from chat.models import ModelResolver
from chat.render import to_bubbles
from chat.runs import RunStatus
from chat.turns import ChatService, TurnUpdate
from tests.scripted import ScriptedResolver, chat_service, context_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(any_store):
    """chat/ is written against `CataloguedStore`: every test here runs on SQLite and in memory."""
    return any_store


def make_service(store, journal=None, **models: FunctionModel) -> ChatService:
    return chat_service(
        store,
        ScriptedResolver(**models),
        journal=journal,
        max_prompt_chars=100,
        min_update_interval=0,
    )


async def collect(service: ChatService, prompt: str, *, owner="alice", conversation="c1", model="demo"):
    return [update async for update in service.run_turn(owner, conversation, prompt, model)]


def endless_model(
    sent: list[list[ModelMessage]] | None = None, started: asyncio.Event | None = None, words: int = 10_000
) -> FunctionModel:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        if sent is not None:
            sent.append(list(messages))
        for index in range(words):
            if index == 3 and started is not None:
                started.set()
            await asyncio.sleep(0.001)
            yield f"w{index} "

    return FunctionModel(stream_function=stream, model_name="endless")


async def test_a_turn_streams_many_updates_then_completes_and_is_saved(store):
    service = make_service(store)
    updates = await collect(service, "Tell me something")
    assert len(updates) > 3
    texts = [update.text for update in updates]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
    final = updates[-1]
    assert final.status is RunStatus.COMPLETED and final.stats is not None
    assert final.stats.output_tokens > 0 and final.stats.requests == 1
    stored = await service.edits.load_messages("alice", "c1")
    assert [bubble["role"] for bubble in to_bubbles(stored)] == ["user", "assistant"]
    assert to_bubbles(stored)[1]["content"] == final.text


async def test_three_streamed_turns_save_without_revision_conflict(store):
    service = make_service(store)
    for prompt in ["我叫小王,今年 28。", "hello", "我多大了?"]:
        final = (await collect(service, prompt))[-1]
        assert final.status is RunStatus.COMPLETED, final.error
    assert "28" in final.text
    assert len(await service.edits.load_messages("alice", "c1")) == 6


async def test_stop_keeps_the_partial_answer_as_interrupted_and_the_next_turn_sees_it(store):
    sent: list[list[ModelMessage]] = []
    started = asyncio.Event()
    service = make_service(store, endless=endless_model(sent, started), short=endless_model(sent, words=3))

    async def press_stop():
        await started.wait()
        assert service.stop("alice", "c1")

    stopper = asyncio.create_task(press_stop())
    updates = await collect(service, "go on forever", model="endless")
    await stopper
    final = updates[-1]
    assert final.status is RunStatus.STOPPED
    assert final.text.startswith("w0 w1 w2")
    assert final.stats is not None and final.stats.output_tokens > 0
    stored = await service.edits.load_messages("alice", "c1")
    answer = stored[-1]
    assert isinstance(answer, ModelResponse) and answer.state == "interrupted"
    assert answer.metadata[END_KEY] == "stopped"
    assert "stopped" in to_bubbles(stored)[-1]["content"]

    assert (await collect(service, "and now?", model="short"))[-1].status is RunStatus.COMPLETED
    assert any(isinstance(m, ModelResponse) and m.parts and m.parts[0].content.startswith("w0 w1 w2") for m in sent[1])


async def test_a_reader_that_leaves_does_not_stop_the_answer_and_a_new_reader_takes_it_up(store):
    """A reloaded page or a reconnecting SSE client reads on; only Stop stops (the partial is saved)."""
    service = make_service(store, endless=endless_model())
    updates = service.run_turn("alice", "c1", "stream, bitte", "endless")
    seen = ""
    async for update in updates:
        seen = update.text
        if seen.count(" ") >= 5:
            break
    await updates.aclose()
    assert service.active.is_running("alice", "c1")
    assert service.live_turn("bob", "c1") is None  # nobody else finds it
    run = service.live_turn("alice", "c1")
    assert run is not None and run.subject == "stream, bitte"
    followed: list[TurnUpdate] = []
    async for update in service.follow(run):
        followed.append(update)
        if len(followed) == 3:
            assert service.stop("alice", "c1")
    assert followed[0].text.startswith(seen) and len(followed[1].text) > len(seen)
    assert followed[-1].status is RunStatus.STOPPED and followed[-1].text.startswith(followed[1].text)
    stored = await service.edits.load_messages("alice", "c1")
    assert stored[-1].state == "interrupted" and stored[-1].parts[0].content.startswith(seen)
    assert not service.active._tokens


async def test_an_answer_whose_reader_was_cancelled_ends_and_is_saved_whole(store):
    service = make_service(store, short=endless_model(words=400))
    seen: list[TurnUpdate] = []

    async def consume():
        async for update in service.run_turn("alice", "c7", "a few hundred words", "short"):
            seen.append(update)

    task = asyncio.create_task(consume())
    while len(seen) < 3:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    run = service.live_turn("alice", "c7")
    assert run is not None
    final = [update async for update in service.follow(run)][-1]
    assert final.status is RunStatus.COMPLETED and final.text.endswith("w399 ")
    stored = await service.edits.load_messages("alice", "c7")
    assert stored[-1].state == "complete" and stored[-1].parts[0].content == final.text
    assert service.live_turn("alice", "c7") is run  # just ended: still readable for a client that lost the end


@pytest.mark.parametrize("any_store", ["sqlite"], indirect=True)  # counts the SQL statements of a turn
async def test_a_turn_reads_the_apps_metadata_once_and_writes_it_once(store, sqlite_on_this_thread):
    service = make_service(store)
    assert (await collect(service, "Hallo, ich heiße Jonas.", conversation="meta"))[-1].status is RunStatus.COMPLETED
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        assert (await collect(service, "Wie heiße ich?", conversation="meta"))[-1].status is RunStatus.COMPLETED
    finally:
        store.db.conn.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "context_policy" in s]
    reads += [s for s in statements if "FROM summaries" in s]
    writes = [s for s in statements if s.lstrip().upper().startswith("UPDATE CONVERSATIONS")]
    assert len(reads) == 1 and len(writes) == 1, (reads, writes)
    assert (await store.turn_settings("meta", "alice")).context_policy == context_of(service).default.kind
    assert (await store.turn_settings("meta", "mallory")).context_policy is None  # another owner reads nothing


async def test_a_provider_error_fails_clearly_and_saves_nothing(store):
    async def failing(messages, info):
        raise ModelHTTPError(status_code=503, model_name="flaky", body={"error": "overloaded"})
        yield ""  # pragma: no cover

    service = make_service(store, flaky=FunctionModel(stream_function=failing, model_name="flaky"))
    updates = await collect(service, "hello", model="flaky")
    assert [update.status for update in updates] == [RunStatus.FAILED]
    assert "503" in updates[0].error
    assert await service.edits.load_messages("alice", "c1") == []
    assert (await collect(service, "hello again"))[-1].status is RunStatus.COMPLETED


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("", "Type a message first"), ("   \n ", "Type a message first"), ("x" * 101, "limit here is 100")],
)
async def test_empty_or_oversized_prompts_are_not_sent(store, prompt, message):
    service = make_service(store)
    updates = await collect(service, prompt)
    assert updates[-1].status is RunStatus.FAILED and message in updates[-1].error
    assert await service.edits.load_messages("alice", "c1") == []


async def test_a_model_not_offered_is_refused_without_storing_or_echoing_its_name(store):
    service = make_service(store, scripted=endless_model())
    updates = await collect(service, "bonjour", model="<b>mistral:large</b>")
    assert updates[-1].status is RunStatus.FAILED
    assert updates[-1].error == "This server does not offer that model. Pick one of: demo, scripted."
    assert await service.edits.load_messages("alice", "c1") == []
    assert await service.store.list_sessions("alice") == []


async def test_an_offered_model_that_cannot_run_is_reported_in_the_turn(store):
    service = chat_service(store, ModelResolver(Settings(extra_models=("gpt-4o",))))
    updates = await collect(service, "hi", model="gpt-4o")
    assert updates[-1].status is RunStatus.FAILED
    assert "'gpt-4o' cannot answer here: this app does not know that model name." in updates[-1].error


@pytest.mark.parametrize("asked", ["full", "everything", "FULL"])
async def test_a_context_policy_the_server_does_not_offer_is_refused(store, asked):
    service = chat_service(
        store,
        ScriptedResolver(),
        settings=Settings(context_choices=("window", "summary")),
        min_update_interval=0,
    )
    updates = [update async for update in service.run_turn("alice", "c2", "salut", "demo", asked)]
    assert updates[-1].error == "This server does not offer that context policy. Pick one of: window, summary."
    assert await service.edits.load_messages("alice", "c2") == []
    answered = [update async for update in service.run_turn("alice", "c2", "salut", "demo", "summary")]
    assert answered[-1].status is RunStatus.COMPLETED
    assert (await context_of(service).policy_for("alice", "c2")).kind == "summary"
    await store.set_context_policy("c2", "alice", "full")  # stored before the operator capped it
    assert (await context_of(service).policy_for("alice", "c2")).kind == "window"


async def test_another_visitor_cannot_read_or_continue_a_conversation(store):
    service = make_service(store)
    await collect(service, "my secret is 42")
    assert await service.edits.load_messages("mallory", "c1") == []
    updates = await collect(service, "what is the secret?", owner="mallory")
    assert updates[-1].status is RunStatus.FAILED and "does not exist" in updates[-1].error
    assert len(await service.edits.load_messages("alice", "c1")) == 2
    assert not service.stop("mallory", "c1")


async def test_an_emoji_split_into_surrogates_is_joined_before_saving(store):
    async def split_emoji(messages, info):
        for piece in ["Smile ", "\ud83d", "\ude00", " done"]:
            yield piece

    service = make_service(store, emoji=FunctionModel(stream_function=split_emoji, model_name="emoji"))
    updates = await collect(service, "smile", model="emoji")
    assert all("\ud83d" not in update.text for update in updates)
    assert updates[-1].text == "Smile \U0001f600 done"
    stored = await service.edits.load_messages("alice", "c1")
    assert stored[-1].parts[0].content == "Smile \U0001f600 done"


async def test_updates_are_coalesced_by_time(store):
    service = chat_service(store, ScriptedResolver(), min_update_interval=0.5)
    updates = await collect(service, "count to 400")
    assert updates[-1].status is RunStatus.COMPLETED
    assert updates[-1].text.endswith("400.")
    assert len(updates) < 400 / 4  # the 400 chunks reached the consumer merged into a few updates


async def test_a_failure_while_saving_a_stopped_answer_still_ends_the_turn(store, monkeypatch, caplog):
    started = asyncio.Event()
    service = make_service(store, endless=endless_model(started=started))

    async def disk_full(*args, **kwargs):
        raise OSError("disk full")

    async def press_stop():
        await started.wait()
        monkeypatch.setattr(store, "save", disk_full)
        service.stop("alice", "c1")

    stopper = asyncio.create_task(press_stop())
    updates = await asyncio.wait_for(collect(service, "go", model="endless"), timeout=30)
    await stopper
    assert updates[-1].status is RunStatus.FAILED and "send it again" in updates[-1].error
    assert "disk full" not in updates[-1].error and "OSError" not in updates[-1].error  # internals stay inside
    assert "disk full" in caplog.text  # ...in the server's log


def test_visible_text_joins_an_emoji_split_across_deltas_and_hides_a_lone_half():
    from chat.text import VisibleText

    streamed = VisibleText()
    streamed.append("Tofu ")
    assert streamed.text == "Tofu "
    streamed.append("\ud83c")  # the first half of 🍲 (U+1F372) as a provider split it
    assert streamed.text == "Tofu "  # a lone high surrogate waits for its pair
    streamed.append("\udf72 is ready")
    assert streamed.text == "Tofu 🍲 is ready"
    assert streamed.text.encode("utf-8")  # always encodable: the page and the store can take it
    assert streamed.raw == "Tofu \ud83c\udf72 is ready"


def test_updates_slow_down_as_more_turns_stream_at_once(store):
    from chat.services import MAX_UPDATES_PER_SECOND

    service = make_service(store)
    assert service.update_interval() == service.min_update_interval
    alone = service.active.start("visitor-alone", "c1")
    assert service.update_interval() == service.min_update_interval
    service.active.finish("visitor-alone", "c1", alone)
    tokens = [service.active.start(f"visitor-{n}", "c1") for n in range(MAX_UPDATES_PER_SECOND)]
    assert service.update_interval() == 1.0  # each of 200 streams: one update a second
    for n, token in enumerate(tokens):
        service.active.finish(f"visitor-{n}", "c1", token)
    assert service.update_interval() == service.min_update_interval


async def test_a_prompt_with_half_an_emoji_is_answered_and_stored_repaired(store):
    service = make_service(store)
    first = await collect(service, "Hallo \ud83d Welt", owner="kim", conversation="c-s")
    again = await collect(service, "noch einmal \udc00", owner="kim", conversation="c-s")
    assert first[-1].status is RunStatus.COMPLETED and again[-1].status is RunStatus.COMPLETED
    prompts = [m.parts[0].content for m in await service.edits.load_messages("kim", "c-s") if m.kind == "request"]
    assert prompts == ["Hallo \ufffd Welt", "noch einmal \ufffd"]


async def test_stop_pressed_while_the_turn_waits_to_start_stops_it_and_keeps_the_prompt(store):
    service = make_service(store, endless=endless_model())
    assert service.stop("alice", "c1") is False  # the page's Stop, before the queued turn began
    final = (await collect(service, "écris sans fin, s'il te plaît", model="endless"))[-1]
    assert final.status is RunStatus.STOPPED
    assert len(final.text) < 40  # ended as it began, not after 10,000 words
    stored = to_bubbles(await service.edits.load_messages("alice", "c1"))
    assert stored[0] == {"role": "user", "content": "écris sans fin, s'il te plaît"}
    assert "stopped" in stored[-1]["content"]


async def test_a_second_turn_on_a_chat_that_is_answering_is_refused_and_the_first_goes_on(store):
    started = asyncio.Event()
    service = make_service(store, endless=endless_model(started=started, words=200))
    first = asyncio.create_task(collect(service, "first, long", model="endless"))
    await started.wait()
    second = await collect(service, "second, from another tab", model="endless")
    assert [update.status for update in second] == [RunStatus.FAILED]
    assert "still answering" in second[0].error
    assert (await first)[-1].status is RunStatus.COMPLETED
    assert (
        next(bubble["content"] for bubble in to_bubbles(await service.edits.load_messages("alice", "c1")))
        == "first, long"
    )
    assert (
        len(await service.edits.load_messages("alice", "c1")) == 2
    )  # the refused prompt cut nothing and added nothing


async def test_an_answer_is_cut_at_the_longest_the_server_writes_and_kept_labelled(store):
    service = make_service(store, endless=endless_model(words=100_000))
    service.max_answer_chars = 700
    final = (await collect(service, "écris pour toujours", model="endless"))[-1]
    assert final.status is RunStatus.CUT
    assert 700 <= len(final.text) < 760  # stopped there, not 100,000 words later
    stored = await service.edits.load_messages("alice", "c1")
    assert stored[-1].metadata[END_KEY] == "length_limit"
    assert to_bubbles(stored)[-1]["content"].startswith(final.text[:600]) and "cut" in to_bubbles(stored)[-1]["content"]
    assert (await collect(service, "and now, briefly?"))[-1].status is RunStatus.COMPLETED  # the chat goes on


async def test_the_core_alone_streams_stops_and_saves_with_no_wing(store):
    """A ChatService with no wings is the minimal chat's idea: it answers from the stored history, and a
    Stop keeps the partial answer, labelled, for the next turn."""
    started = asyncio.Event()
    service = ChatService(
        build_chat_agent(), store, ScriptedResolver(endless=endless_model(started=started)), min_update_interval=0
    )
    told = (await collect(service, "I'm Ingrid and I am 63.", conversation="solo"))[-1]
    asked = (await collect(service, "How old am I?", conversation="solo"))[-1]
    assert told.status is RunStatus.COMPLETED and "63" in asked.text
    stopping = asyncio.create_task(collect(service, "encore", conversation="solo", model="endless"))
    await started.wait()
    assert service.stop("alice", "solo")
    stopped = (await stopping)[-1]
    assert stopped.status is RunStatus.STOPPED and stopped.text.startswith("w0 w1")
    stored = await service.edits.load_messages("alice", "solo")
    assert len(stored) == 6 and stored[-1].state == "interrupted" and stored[-1].metadata[END_KEY] == "stopped"
