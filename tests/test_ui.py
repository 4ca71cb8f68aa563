"""The UI's wiring and its thin handlers, without a browser."""

from __future__ import annotations

import gradio as gr
import pytest

from chat.agents import build_chat_agent
from chat.config import Settings
from chat.demo_model import DemoPace
from chat.models import ModelResolver
from chat.turns import ChatService
from chat.sessions import Sessions
from ui import ChatHandlers, build_demo, launch_options

pytestmark = pytest.mark.anyio


@pytest.fixture
def handlers(store) -> ChatHandlers:
    settings = Settings()
    service = ChatService(
        build_chat_agent(), store, ModelResolver(settings, DemoPace.instant()), max_prompt_chars=50
    )
    return ChatHandlers(service, settings)


def test_the_chat_event_streams_many_visitors_at_once_and_is_the_only_public_endpoint(handlers):
    demo = build_demo(handlers.service, Sessions(handlers.service.store), handlers.settings)
    chat_events = [fn for fn in demo.fns.values() if fn.api_name == "chat"]
    assert len(chat_events) == 1
    assert chat_events[0].concurrency_limit >= 50
    assert launch_options(handlers.settings)["max_threads"] > chat_events[0].concurrency_limit
    assert demo.api_open is False  # nothing bypasses the queue


def test_model_notice_names_the_fix(handlers, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert handlers.check_model("demo") == ""
    assert "OPENAI_API_KEY" in handlers.check_model("openai-chat:gpt-4o-mini")


@pytest.mark.parametrize("prompt", ["", "   ", "y" * 51])
def test_a_rejected_prompt_raises_a_visible_error_and_sends_nothing(handlers, prompt):
    with pytest.raises(gr.Error):
        handlers.accept_prompt(prompt, [], "owner", None)


def test_an_accepted_prompt_is_echoed_at_once_and_cleared_from_the_box(handlers):
    box, chat, conversation_id, pending = handlers.accept_prompt("hello", [], "owner", None)
    assert box == "" and pending == "hello" and conversation_id
    assert chat == [{"role": "user", "content": "hello"}]


async def test_a_second_prompt_while_streaming_is_refused(handlers):
    updates = handlers.service.run_turn("owner", "c1", "count to 3000", "demo")
    await updates.__anext__()
    with pytest.raises(gr.Error):
        handlers.accept_prompt("another", [], "owner", "c1")
    await updates.aclose()


async def test_stream_reply_shows_history_from_the_store_and_restores_the_prompt_on_failure(handlers):
    outputs = [out async for out in handlers.stream_reply("My name is Ann.", "demo", "owner", "c1")]
    chat, usage, box, owner, conversation_id = outputs[-1]
    assert [b["role"] for b in chat] == ["user", "assistant"] and "Ann" in chat[-1]["content"]
    assert "**demo**" in usage
    failed = [out async for out in handlers.stream_reply("hi", "nonsense-model", "owner", "c1")]
    chat, usage, box, *_ = failed[-1]
    assert box == "hi"
    assert [b["role"] for b in chat] == ["user", "assistant", "user", "assistant"]
    assert chat[-1]["content"].startswith("⚠️ Unknown model")
