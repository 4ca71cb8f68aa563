"""The Gradio UI: layout and thin, named handlers that call `chat/`. The only module importing gradio."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from chat.config import Settings
from chat.errors import PromptRejected
from chat.models import model_choices
from chat.render import FAILED_PREFIX, Bubble, format_stats, status_label, to_bubbles
from chat.turns import ChatService, TurnStatus

OWNER_STORAGE_KEY = "pydantic-ai-chat-owner"

INTRO = """# 💬 pydantic-ai chat
Streaming, multi-turn chat with [pydantic-ai](https://ai.pydantic.dev). The **demo** model runs offline
with no API key: it remembers what you tell it, streams word by word, and stops when you press **Stop**."""


def new_owner_token() -> str:
    """An opaque visitor id: 128 random bits, kept in the visitor's browser."""
    return secrets.token_urlsafe(16)


def new_conversation_id() -> str:
    return str(uuid.uuid4())


class ChatHandlers:
    """Event handlers; each one checks the visitor itself, since every event is also reachable as an API call."""

    def __init__(self, service: ChatService, settings: Settings) -> None:
        self.service = service
        self.settings = settings

    def ensure_owner(self, owner: str | None) -> str:
        return owner or new_owner_token()

    def check_model(self, model_name: str) -> str:
        problem = self.service.models.check(model_name)
        return f"⚠️ {problem}" if problem else ""

    def accept_prompt(
        self, prompt: str, chatbot: list[Bubble], owner: str | None, conversation_id: str | None
    ) -> tuple[str, list[Bubble], str, str]:
        """Show the prompt at once and hand it to `stream_reply`; a rejected prompt stays in the box."""
        try:
            self.service.check_idle(owner, conversation_id)
            prompt = self.service.check_prompt(prompt)
        except PromptRejected as rejected:
            raise gr.Error(str(rejected), title="Not sent") from rejected
        chatbot = [*(chatbot or []), {"role": "user", "content": prompt}]
        return "", chatbot, conversation_id or new_conversation_id(), prompt

    async def stream_reply(
        self, message: str, model_name: str, owner: str | None, conversation_id: str | None
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Stream the answer into the last bubble; the chat above it is re-read from the store."""
        owner = owner or new_owner_token()
        conversation_id = conversation_id or new_conversation_id()
        earlier = to_bubbles(await self.service.load_messages(owner, conversation_id))
        asked: list[Bubble] = [{"role": "user", "content": message}] if (message or "").strip() else []
        identity: tuple[Any, Any] = (owner, conversation_id)
        async for update in self.service.run_turn(owner, conversation_id, message, model_name):
            if update.status is TurnStatus.FAILED:
                answer = [{"role": "assistant", "content": f"{FAILED_PREFIX}{update.error}"}]
                yield [*earlier, *asked, *answer], f"⚠️ {update.error}", message, *identity
                return
            label = status_label(update.status)
            answer = [{"role": "assistant", "content": update.text + label}] if update.text or label else []
            summary = format_stats(update.stats, update.status) if update.stats else gr.skip()
            yield [*earlier, *asked, *answer], summary, gr.skip(), *identity
            identity = (gr.skip(), gr.skip())

    def stop_reply(self, owner: str | None, conversation_id: str | None) -> None:
        if owner and conversation_id:
            self.service.stop(owner, conversation_id)

    def new_chat(self) -> tuple[list[Bubble], None, str]:
        return [], None, ""


def launch_options(settings: Settings) -> dict[str, Any]:
    """Options for `demo.launch()`. Gradio's queue runs at most `max_threads` events at once (40 by
    default), whatever the concurrency limits say, so it must exceed the streams we allow."""
    return {"max_threads": settings.max_concurrent_streams + 16}


def build_demo(service: ChatService, settings: Settings) -> gr.Blocks:
    handlers = ChatHandlers(service, settings)
    with gr.Blocks(title="pydantic-ai chat") as demo:
        owner = gr.BrowserState("", storage_key=OWNER_STORAGE_KEY, secret=settings.owner_secret)
        conversation_id = gr.State(None)
        gr.Markdown(INTRO)
        with gr.Row():
            model = gr.Dropdown(
                choices=model_choices(settings),
                value=settings.default_model,
                allow_custom_value=True,
                label="Model",
                info="demo, or any pydantic-ai model string (openai-chat:gpt-4o-mini, anthropic:…, ollama:…)",
                scale=4,
            )
            new_chat = gr.Button("New chat", size="sm", scale=1, min_width=120, elem_id="new-chat")
        model_notice = gr.Markdown(handlers.check_model(settings.default_model), elem_id="model-notice")
        chatbot = gr.Chatbot(label="Chat", height=480, buttons=["copy", "copy_all"], elem_id="chat")
        with gr.Row(equal_height=True):
            prompt = gr.Textbox(
                placeholder="Message the model (Enter to send, Shift+Enter for a new line)",
                show_label=False,
                lines=1,
                max_lines=8,
                scale=8,
                elem_id="prompt",
            )
            send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
        usage = gr.Markdown(elem_id="usage")
        # The prompt waiting to be answered: a hidden textbox rather than gr.State, so it is the
        # `message` parameter of the `chat` API endpoint.
        pending = gr.Textbox(visible=False, label="message")

        demo.load(handlers.ensure_owner, owner, owner, api_visibility="private")
        model.change(handlers.check_model, model, model_notice, api_visibility="private")
        gr.on(
            [prompt.submit, send.click],
            handlers.accept_prompt,
            [prompt, chatbot, owner, conversation_id],
            [prompt, chatbot, conversation_id, pending],
            api_visibility="private",
        ).success(
            handlers.stream_reply,
            [pending, model, owner, conversation_id],
            [chatbot, usage, prompt, owner, conversation_id],
            api_name="chat",
            concurrency_limit=settings.max_concurrent_streams,
        )
        stop.click(handlers.stop_reply, [owner, conversation_id], None, api_visibility="private")
        new_chat.click(handlers.new_chat, None, [chatbot, conversation_id, usage], api_visibility="private")
    demo.queue(default_concurrency_limit=settings.max_concurrent_streams, api_open=False)
    return demo
