"""The UI's wiring and its thin handlers, without a browser."""

from __future__ import annotations

import gradio as gr
import pytest

from chat.agents import build_chat_agent
from chat.config import Settings
from chat.demo_model import DemoPace
from chat.models import ModelResolver
from chat.recipe_runs import RecipeService
from chat.sessions import Sessions
from chat.turns import ChatService
from ui import ChatHandlers, build_demo, launch_options

pytestmark = pytest.mark.anyio


@pytest.fixture
def handlers(store) -> ChatHandlers:
    settings = Settings()
    service = ChatService(build_chat_agent(), store, ModelResolver(settings, DemoPace.instant()), max_prompt_chars=50)
    return ChatHandlers(service, settings)


def test_the_chat_event_streams_many_visitors_at_once_and_is_the_only_public_endpoint(handlers):
    demo = build_demo(
        handlers.service,
        Sessions(handlers.service.store),
        RecipeService(handlers.service.store, handlers.service.models),
        handlers.settings,
    )
    chat_events = [fn for fn in demo.fns.values() if fn.api_name == "chat"]
    assert len(chat_events) == 1
    assert chat_events[0].concurrency_limit >= 50
    assert launch_options(handlers.settings)["max_threads"] > chat_events[0].concurrency_limit
    assert demo.api_open is False  # nothing bypasses the queue


def test_model_notice_names_the_fix(handlers, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert handlers.check_model("demo") == ""
    assert "OPENAI_API_KEY" in handlers.check_model("openai-chat:gpt-4o-mini")


def sent(handlers, prompt, owner="owner", conversation_id=None, request=None):
    return handlers.send(prompt, "demo", owner, conversation_id, None, request)


@pytest.mark.parametrize("prompt", ["", "   ", "y" * 51])
async def test_a_rejected_prompt_is_explained_returned_for_the_box_and_sends_nothing(handlers, prompt):
    outputs = [out async for out in sent(handlers, prompt)]
    assert len(outputs) == 1
    chat, usage, returned, *_ = outputs[0]
    assert usage.startswith("⚠️ Not sent") and returned == prompt
    assert handlers.service.store.list_sessions("owner") == []


def test_a_returned_prompt_goes_back_to_an_empty_box_but_never_over_new_typing(handlers):
    assert handlers.restore_prompt("my long question", "") == ("my long question", None)
    assert handlers.restore_prompt("my long question", "my long question") == ("my long question", None)
    box, returned = handlers.restore_prompt("my long question", "a new question")
    assert box == gr.skip() and returned is None
    assert handlers.restore_prompt(None, "")[0] == gr.skip()


async def test_a_sent_prompt_is_echoed_before_the_model_answers_and_cleared_from_the_box(handlers):
    updates = sent(handlers, "hello")
    chat, usage, returned, owner, conversation_id, context = await updates.__anext__()
    assert returned == gr.skip() and owner == "owner" and conversation_id
    assert chat == [{"role": "user", "content": "hello"}]
    assert not handlers.service.active.is_running("owner", conversation_id)  # the echo precedes the run
    *_, (chat, usage, *_) = [out async for out in updates]
    assert [b["role"] for b in chat] == ["user", "assistant"] and "**demo**" in usage
    assert len(await handlers.service.load_messages("owner", conversation_id)) == 2


async def test_a_second_prompt_while_streaming_is_refused(handlers):
    updates = handlers.service.run_turn("owner", "c1", "count to 3000", "demo")
    await updates.__anext__()
    chat, usage, returned, *_ = await sent(handlers, "another", conversation_id="c1").__anext__()
    assert "Still answering" in usage and returned == "another"
    await updates.aclose()


async def test_stream_reply_shows_history_from_the_store_and_restores_the_prompt_on_failure(handlers):
    outputs = [out async for out in handlers.stream_reply("My name is Ann.", "demo", "owner", "c1", None, None)]
    chat, usage, box, owner, conversation_id, context = outputs[-1]
    assert [b["role"] for b in chat] == ["user", "assistant"] and "Ann" in chat[-1]["content"]
    assert "**demo**" in usage
    failed = [out async for out in handlers.stream_reply("hi", "nonsense-model", "owner", "c1", None, None)]
    chat, usage, box, *_ = failed[-1]
    assert box == "hi"
    assert [b["role"] for b in chat] == ["user", "assistant", "user", "assistant"]
    assert chat[-1]["content"].startswith("⚠️ Unknown model")


@pytest.fixture
def side(handlers):
    from ui import SessionHandlers

    return SessionHandlers(Sessions(handlers.service.store), handlers.service)


async def test_switching_to_someone_elses_conversation_shows_nothing(handlers, side):
    [_ async for _ in handlers.stream_reply("secret", "demo", "alice", "c1", None, None)]
    chat, conversation_id, title, usage, notice, policy = await side.switch("mallory", "c1")
    assert chat == [] and conversation_id is None and "does not exist" in notice
    chat, conversation_id, title, *_ = await side.switch("alice", "c1")
    assert conversation_id == "c1" and title == "secret" and chat[0]["content"] == "secret"


async def test_export_writes_a_download_and_import_reads_it_back(handlers, side, tmp_path):
    [_ async for _ in handlers.stream_reply("Remember 42", "demo", "alice", "c1", None, None)]
    download, notice = await side.export_json("alice", "c1")
    exported = download["value"]
    assert exported.endswith("Remember-42.json")
    chat, new_id, choices, title, notice = await side.import_file("bob", exported)
    assert new_id != "c1" and chat[0]["content"] == "Remember 42" and "Imported 2 messages" in notice
    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": "nope"}')
    *_, notice = await side.import_file("bob", str(bad))
    assert notice.startswith("⚠️") and "Nothing was imported" in notice
    assert len(side.sessions.list("bob")) == 1


async def test_markdown_export_is_named_after_the_title(handlers, side):
    [_ async for _ in handlers.stream_reply("Plan a picnic", "demo", "alice", "c1", None, None)]
    download, _ = await side.export_markdown("alice", "c1")
    assert download["value"].endswith("Plan-a-picnic.md")
    assert open(download["value"], encoding="utf-8").read().startswith("# Plan a picnic")


def test_the_database_lives_in_data_or_in_a_spaces_persistent_storage(tmp_path):
    from app import EPHEMERAL_SPACE_NOTICE, default_db_path, parse_settings

    assert default_db_path({}) == ("data/chat.db", None)
    persistent = tmp_path / "data"
    persistent.mkdir()
    assert default_db_path({"SPACE_ID": "me/chat"}, persistent) == (str(persistent / "chat.db"), None)
    assert default_db_path({"SPACE_ID": "me/chat"}, tmp_path / "missing") == ("data/chat.db", EPHEMERAL_SPACE_NOTICE)
    assert parse_settings({"CHAT_DB": "/tmp/x.db"}).db_path == "/tmp/x.db"
    assert parse_settings({}, ["--db", "elsewhere.db"]).db_path == "elsewhere.db"


async def test_page_load_and_a_quick_first_send_agree_on_the_new_visitors_token(handlers):
    from types import SimpleNamespace

    page = SimpleNamespace(session_hash="session-1")
    loaded = handlers.ensure_owner("", page)
    chat, usage, box, sent_with, conversation_id, context = await sent(handlers, "hi", "", request=page).__anext__()
    assert loaded == sent_with and len(loaded) >= 22  # 128 random bits, url-safe
    assert handlers.ensure_owner("", SimpleNamespace(session_hash="session-2")) != loaded
    assert handlers.ensure_owner("hf:alice", page) == loaded  # a token cannot claim an account


async def test_a_picked_context_policy_is_remembered_for_that_conversation_only(handlers, side):
    [_ async for _ in handlers.stream_reply("hello", "demo", "alice", "c1", None, None)]
    side.remember_policy("alice", "c1", "summary")
    side.remember_policy("mallory", "c1", "full")  # someone else's conversation: ignored
    *_, policy = await side.switch("alice", "c1")
    assert policy == "summary"
