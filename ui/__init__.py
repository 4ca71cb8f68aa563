"""The Gradio UI: layout and event wiring. The only package importing gradio; handlers call `chat/`."""

from __future__ import annotations

from typing import Any

import gradio as gr

from chat.config import Settings
from chat.handoff import HandoffService
from chat.models import model_choices
from chat.recipe_runs import RecipeService
from chat.sessions import Sessions
from chat.stream_inspector import StreamInspector
from chat.turns import ChatService
from ui.chat_handlers import ChatHandlers, new_conversation_id, new_owner_token
from ui.handoff_handlers import HandoffHandlers
from ui.inspector_handlers import COLUMNS, InspectorHandlers
from ui.recipe_handlers import RecipeHandlers
from ui.session_handlers import SessionHandlers

__all__ = ["ChatHandlers", "SessionHandlers", "build_demo", "launch_options", "new_conversation_id", "new_owner_token"]

OWNER_STORAGE_KEY = "pydantic-ai-chat-owner"

INTRO = """# 💬 pydantic-ai chat
Streaming, multi-turn chat with [pydantic-ai](https://ai.pydantic.dev). The **demo** model runs offline
with no API key: it remembers what you tell it, streams word by word, and stops when you press **Stop**."""


SHARE_OWNER_WITH_SSE_PAGE = """(owner) => {
    // The SSE API and /sse-demo identify this visitor by the same token, sent as a cookie.
    if (owner) document.cookie = "chat_owner=" + encodeURIComponent(owner) + "; path=/; SameSite=Strict";
}"""


def launch_options(settings: Settings) -> dict[str, Any]:
    """Options for `demo.launch()`. Gradio's queue runs at most `max_threads` events at once (40 by
    default), whatever the concurrency limits say, so it must exceed the streams we allow."""
    return {"max_threads": settings.max_concurrent_streams + 16}


def build_demo(
    service: ChatService, sessions: Sessions, recipe_service: RecipeService, settings: Settings
) -> gr.Blocks:
    chat = ChatHandlers(service, settings)
    recipes = RecipeHandlers(recipe_service, chat)
    stream_probe = InspectorHandlers(StreamInspector(service.agent, service.models))
    handoffs = HandoffHandlers(
        HandoffService(service.store, service.models, request_timeout=service.request_timeout), chat
    )
    side = SessionHandlers(sessions, service)
    private: dict[str, Any] = {"api_visibility": "private"}
    with gr.Blocks(title="pydantic-ai chat") as demo:
        owner = gr.BrowserState("", storage_key=OWNER_STORAGE_KEY, secret=settings.owner_secret)
        conversation_id = gr.State(None)

        with gr.Sidebar(label="Conversations", width=340):
            if settings.storage_notice:
                gr.Markdown(f"⚠️ {settings.storage_notice}", elem_id="storage-notice")
            if settings.hf_login:
                gr.LoginButton(size="sm")
            new_chat = gr.Button("＋ New chat", variant="primary", elem_id="new-chat")
            search = gr.Textbox(placeholder="Search your conversations", show_label=False, elem_id="search")
            results = gr.Radio([], label="Found", visible=False, elem_id="search-results")
            session_list = gr.Radio([], label="Your conversations", elem_id="sessions")
            with gr.Accordion("This conversation", open=False, elem_id="conversation-tools"):
                title = gr.Textbox(label="Title", max_lines=1, elem_id="title")
                rename = gr.Button("Rename", size="sm", elem_id="rename")
                with gr.Row():
                    export_json = gr.Button("Export JSON", size="sm", elem_id="export-json")
                    export_markdown = gr.Button("Export Markdown", size="sm", elem_id="export-md")
                download = gr.File(label="Download", visible=False, interactive=False, elem_id="download")
                delete = gr.Button("Delete…", variant="stop", size="sm", elem_id="delete")
                confirm_delete = gr.Button(
                    "Confirm delete", variant="stop", size="sm", visible=False, elem_id="confirm-delete"
                )
            import_button = gr.UploadButton("Import JSON", file_types=[".json"], size="sm", elem_id="import")
            sidebar_notice = gr.Markdown(elem_id="sidebar-notice")

        gr.Markdown(INTRO)
        model = gr.Dropdown(
            choices=model_choices(settings),
            value=settings.default_model,
            allow_custom_value=True,
            label="Model",
            info="demo, or any pydantic-ai model string (openai-chat:gpt-4o-mini, anthropic:…, ollama:…)",
        )
        model_notice = gr.Markdown(chat.check_model(settings.default_model), elem_id="model-notice")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat-tab"):
                chatbot = gr.Chatbot(
                    label="Chat", height=480, buttons=["copy", "copy_all"], editable="user", elem_id="chat"
                )
                with gr.Row(equal_height=True):
                    prompt = gr.Textbox(
                        placeholder="Message the model (Enter to send, Shift+Enter for a new line)",
                        label="message",  # names the parameter of the `chat` API endpoint
                        show_label=False,
                        lines=1,
                        max_lines=8,
                        scale=8,
                        elem_id="prompt",
                    )
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                    stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
                usage = gr.Markdown(elem_id="usage")
                with gr.Accordion("Context: what the model is sent", open=False, elem_id="context"):
                    policy = gr.Radio(
                        [
                            ("Full history", "full"),
                            (f"Last {service.default_policy.window} messages", "window"),
                            (f"Summary past {service.default_policy.summary_threshold} messages", "summary"),
                        ],
                        value=service.default_policy.kind,
                        label="Context policy (remembered per conversation)",
                        elem_id="context-policy",
                    )
                    inspector = gr.Markdown("*Send a message to see what the model was sent.*", elem_id="inspector")
            with gr.Tab("Recipe", id="recipe-tab"):
                gr.Markdown(
                    "Ask for a dish and watch a typed `Recipe` fill in: pydantic-ai validates each partial "
                    "object as it streams (name first, then ingredients one by one, then steps)."
                )
                with gr.Row(equal_height=True):
                    dish = gr.Textbox(
                        placeholder="A dish, e.g. 麻婆豆腐 or pancakes", show_label=False, scale=6, elem_id="dish"
                    )
                    generate = gr.Button("Generate", variant="primary", scale=1, elem_id="generate")
                    stop_recipe = gr.Button("Stop", variant="stop", scale=1, elem_id="stop-recipe")
                with gr.Row():
                    output_mode = gr.Radio(
                        ["tool", "native", "prompted"],
                        value="tool",
                        label="Output mode",
                        info="tool calls (default); native JSON schema or a prompted JSON for models without tools",
                    )
                    debounce = gr.Slider(
                        0, 0.5, value=0.05, step=0.01, label="Debounce (s)", info="how long pydantic-ai merges chunks"
                    )
                counters = gr.Markdown(elem_id="recipe-counters")
                with gr.Row():
                    card = gr.Markdown("*Your recipe appears here as it streams.*", elem_id="recipe-card")
                    recipe_view = gr.Code("{}", language="json", label="Live JSON", elem_id="recipe-json")
                saved_recipes = gr.Dropdown([], label="Your recipes", elem_id="saved-recipes")
                recipe_run = gr.State(None)
            with gr.Tab("Analyst → writer", id="handoff-tab"):
                gr.Markdown(
                    "Two agents, one conversation: the **analyst** (its own instructions) streams an analysis of "
                    "your data; the **writer** (other instructions) continues from the analyst's `new_messages()` "
                    "and streams a short article."
                )
                with gr.Row(equal_height=True):
                    handoff_data = gr.Textbox(
                        placeholder="Data or a question, e.g. Monthly sales: 120, 135, 128, 160, 190",
                        show_label=False,
                        lines=2,
                        scale=6,
                        elem_id="handoff-data",
                    )
                    handoff_go = gr.Button("Analyse and write", variant="primary", scale=1, elem_id="handoff-go")
                    handoff_stop = gr.Button("Stop", variant="stop", scale=1, elem_id="handoff-stop")
                handoff_note = gr.Markdown(elem_id="handoff-note")
                with gr.Row():
                    analysis = gr.Markdown("*The analysis appears here.*", elem_id="analysis", label="Analyst")
                    article = gr.Markdown("*The article appears here.*", elem_id="article", label="Writer")
                handoff_run = gr.State(None)
            with gr.Tab("Stream inspector", id="inspector-tab"):
                gr.Markdown(
                    "Each `stream_text(delta=True)` delta as it arrives, with its time offset and size, beside the "
                    "cumulative text `delta=False` yields at that moment. Raise the debounce to see chunks merge."
                )
                with gr.Row(equal_height=True):
                    probe = gr.Textbox(
                        value="count to 40", show_label=False, scale=5, elem_id="probe", placeholder="A prompt"
                    )
                    probe_debounce = gr.Slider(0, 0.5, value=0, step=0.01, label="debounce_by (s)", scale=3)
                    probe_go = gr.Button("Stream", variant="primary", scale=1, elem_id="probe-go")
                probe_note = gr.Markdown(elem_id="probe-note")
                probe_table = gr.Dataframe(
                    headers=COLUMNS, interactive=False, wrap=True, elem_id="probe-table", max_height=480
                )
        # Regenerate and edit hand their prompt to the stream through this hidden box.
        pending = gr.Textbox(visible=False, label="message")
        # A prompt that was refused or failed, on its way back to the box. A State, not the box itself:
        # a streamed update must not touch the box the visitor may be typing in, and `gr.skip()` on a
        # component costs Gradio a component rebuild per update (benchmarks/ANALYSIS.md).
        returned_prompt = gr.State(None)
        stream_outputs = [chatbot, usage, returned_prompt, owner, conversation_id, inspector]
        refresh_sidebar = (side.refresh, [owner, conversation_id], [session_list, title])
        restore_prompt = (chat.restore_prompt, [returned_prompt, prompt], [prompt, returned_prompt])

        demo.load(chat.ensure_owner, owner, owner, **private).then(*refresh_sidebar, **private).then(
            None, owner, None, js=SHARE_OWNER_WITH_SSE_PAGE, **private
        )
        model.change(chat.check_model, model, model_notice, **private)
        policy.input(side.remember_policy, [owner, conversation_id, policy], None, **private)
        gr.on(
            [prompt.submit, send.click],
            chat.send,
            [prompt, model, owner, conversation_id, policy],
            stream_outputs,
            api_name="chat",
            concurrency_limit=settings.max_concurrent_streams,
        ).then(*restore_prompt, **private).then(*refresh_sidebar, **private)
        # Empties the box in the page itself, with no round trip; registered after `chat.send`, which
        # has read the prompt by then.
        gr.on([prompt.submit, send.click], None, None, prompt, js="() => ''", **private)
        for retry_event, handler, inputs, api_name in (
            (chatbot.retry, chat.regenerate, [owner, conversation_id], "chat_regenerated"),
            (chatbot.edit, chat.edit_last, [owner, conversation_id, chatbot], "chat_edited"),
        ):
            retry_event(handler, inputs, [chatbot, pending], **private).success(
                chat.stream_reply,
                [pending, model, owner, conversation_id, policy],
                stream_outputs,
                api_name=api_name,
                api_visibility="private",
                concurrency_limit=settings.max_concurrent_streams,
            ).then(*restore_prompt, **private).then(*refresh_sidebar, **private)
        stop.click(chat.stop_reply, [owner, conversation_id], None, **private)

        # The chat's own trash button starts a new chat; the cleared one stays in the sidebar.
        chatbot.clear(
            side.new_chat, None, [chatbot, conversation_id, title, usage, session_list, sidebar_notice], **private
        )
        new_chat.click(
            side.new_chat, None, [chatbot, conversation_id, title, usage, session_list, sidebar_notice], **private
        )
        switch_outputs = [chatbot, conversation_id, title, usage, sidebar_notice, policy]
        session_list.input(side.switch, [owner, session_list], switch_outputs, **private)
        results.input(side.switch, [owner, results], switch_outputs, **private)
        gr.on(
            [search.submit, search.change], side.search, [owner, search], results, **private, trigger_mode="always_last"
        )
        rename.click(side.rename, [owner, conversation_id, title], [session_list, title, sidebar_notice], **private)
        title.submit(side.rename, [owner, conversation_id, title], [session_list, title, sidebar_notice], **private)
        delete.click(side.ask_to_delete, conversation_id, [confirm_delete, sidebar_notice], **private)
        confirm_delete.click(
            side.delete,
            [owner, conversation_id],
            [chatbot, conversation_id, session_list, title, confirm_delete, results, search, sidebar_notice],
            **private,
        )
        export_json.click(side.export_json, [owner, conversation_id], [download, sidebar_notice], **private)
        export_markdown.click(side.export_markdown, [owner, conversation_id], [download, sidebar_notice], **private)
        import_button.upload(
            side.import_file,
            [owner, import_button],
            [chatbot, conversation_id, session_list, title, sidebar_notice],
            **private,
        )
        generated = gr.on([dish.submit, generate.click], recipes.prepare, dish, recipe_run, **private).success(
            recipes.generate,
            [dish, model, output_mode, debounce, owner, recipe_run],
            [card, recipe_view, counters, saved_recipes],
            api_name="recipe",
            concurrency_limit=settings.max_concurrent_streams,
        )
        del generated
        stop_recipe.click(recipes.stop, [owner, recipe_run], None, **private)
        gr.on([handoff_go.click, handoff_data.submit], handoffs.prepare, handoff_data, handoff_run, **private).success(
            handoffs.run,
            [handoff_data, model, owner, handoff_run],
            [analysis, article, handoff_note],
            concurrency_limit=settings.max_concurrent_streams,
            **private,
        )
        handoff_stop.click(handoffs.stop, [owner, handoff_run], None, **private)
        gr.on(
            [probe_go.click, probe.submit],
            stream_probe.inspect,
            [probe, model, probe_debounce],
            [probe_table, probe_note],
            **private,
        )
        saved_recipes.input(recipes.reopen, [owner, saved_recipes], [card, recipe_view, counters], **private)
        demo.load(recipes.refresh, owner, saved_recipes, **private)
    demo.queue(default_concurrency_limit=settings.max_concurrent_streams, api_open=False)
    return demo
