"""The Gradio UI: layout and event wiring. The only package importing gradio; handlers call `chat/`."""

from __future__ import annotations

from typing import Any

import gradio as gr

from chat.config import Settings
from chat.handoff import HandoffService
from chat.recipe_runs import RecipeService
from chat.sessions import Sessions
from chat.stream_inspector import StreamInspector
from chat.turns import ChatService
from ui.chat_tab import ChatTab, chat_pane, composer_script
from ui.handoff_handlers import HandoffHandlers
from ui.inspector_handlers import COLUMNS, InspectorHandlers
from ui.layout import CSS, PHONE_SIDEBAR, SHOW_CONVERSATION_IN_URL, SHOW_PICKED_CHAT
from ui.recipe_handlers import RecipeHandlers
from ui.session_handlers import ASK_TO_DELETE, CONFIRM_DELETE, SessionHandlers
from ui.visitors import Visitors, new_conversation_id, new_owner_token

__all__ = [
    "ChatTab",
    "SessionHandlers",
    "Visitors",
    "build_demo",
    "launch_options",
    "new_conversation_id",
    "new_owner_token",
]

OWNER_STORAGE_KEY = "pydantic-ai-chat-owner"

SHARE_OWNER_WITH_SSE_PAGE = """(owner) => {
    // The SSE API and /sse-demo identify this visitor by the same token, sent as a cookie.
    if (owner) document.cookie = "chat_owner=" + encodeURIComponent(owner) + "; path=/; SameSite=Strict";
}"""


def launch_options(settings: Settings) -> dict[str, Any]:
    """Options for `demo.launch()`. Gradio's queue runs at most `max_threads` events at once (40 by
    default), whatever the concurrency limits say, so it must exceed the streams we allow."""
    return {"max_threads": settings.max_concurrent_streams + 16, "css": CSS}


def build_demo(
    service: ChatService,
    sessions: Sessions,
    recipe_service: RecipeService,
    handoff_service: HandoffService,
    settings: Settings,
) -> gr.Blocks:
    visitors = Visitors()
    chat = ChatTab(service, visitors)
    recipes = RecipeHandlers(recipe_service, visitors)
    stream_probe = InspectorHandlers(StreamInspector(service.agent, service.models))
    handoffs = HandoffHandlers(handoff_service, visitors)
    side = SessionHandlers(sessions, service, visitors)
    # Page-internal events: no API endpoint, and no spinner over the sidebar or the box while they run.
    private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
    with gr.Blocks(title="pydantic-ai chat", fill_height=True) as demo:
        owner = gr.BrowserState("", storage_key=OWNER_STORAGE_KEY, secret=settings.owner_secret)
        conversation_id = gr.State(None)
        # A State never reaches the page; this copy does, so a page script can put the id in the address.
        address = gr.Textbox(visible="hidden", elem_id="conversation-address")

        with gr.Sidebar(label="Conversations", width=300, elem_id="sidebar"):
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
                delete = gr.Button(ASK_TO_DELETE, variant="stop", size="sm", elem_id="delete")
                confirm_delete = gr.Button(
                    CONFIRM_DELETE, variant="stop", size="sm", visible=False, elem_id="confirm-delete"
                )
            import_button = gr.UploadButton("Import JSON", file_types=[".json"], size="sm", elem_id="import")
            sidebar_notice = gr.Markdown(elem_id="sidebar-notice")

        with gr.Row(equal_height=True, elem_id="header"):
            gr.Markdown("### 💬 pydantic-ai chat", elem_id="app-title")
            model = gr.Dropdown(
                choices=side.model_menu(),
                value=settings.default_model,
                show_label=False,
                container=False,
                min_width=160,
                elem_id="model",
            )
        model_notice = gr.Markdown(side.model_notice(settings.default_model), elem_id="model-notice")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat-tab", elem_id="chat-tab"):
                usage = gr.Markdown(elem_id="usage", label="usage", render=False)
                policy = gr.Radio(
                    [
                        ("Full history", "full"),
                        (f"Last {service.default_policy.window} messages", "window"),
                        (f"Summary past {service.default_policy.summary_threshold} messages", "summary"),
                    ],
                    value=service.default_policy.kind,
                    label="Context policy (remembered per conversation)",
                    elem_id="context-policy",
                    render=False,
                )
                inspector = gr.Markdown(
                    "*Send a message to see what the model was sent.*",
                    elem_id="inspector",
                    label="context",
                    render=False,
                )
                pane = chat_pane(
                    chat,
                    model=model,
                    owner=owner,
                    conversation_id=conversation_id,
                    policy=policy,
                    usage=usage,
                    inspector=inspector,
                    concurrency_limit=settings.max_concurrent_streams,
                )
                gr.HTML("", elem_id="queued-note")
                gr.HTML("", elem_id="prompt-note")
                usage.render()
                with gr.Accordion("What the last answer was sent", open=False, elem_id="inspector-box"):
                    inspector.render()
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
        chat_shown = pane.chatbot_value  # writing it shows a conversation in the ChatInterface
        refresh_sidebar = (side.refresh, [owner, conversation_id], [session_list, title])
        answered = [dependency_of(pane, block_fn) for block_fn in pane.answer_events]

        def show_in_url(event: Any) -> Any:
            return event.then(copy_id, conversation_id, address, **private).then(
                None, address, None, js=SHOW_CONVERSATION_IN_URL, **private
            )

        for answer in answered:
            # Not after a cancelled answer: the chat the visitor switched to refreshes the sidebar itself.
            show_in_url(answer.success(*refresh_sidebar, **private))
        switching: dict[str, Any] = {"cancels": pane.cancel_answers(), "js": SHOW_PICKED_CHAT, **private}

        opened = demo.load(visitors_token(visitors), owner, owner, **private).then(
            side.open_from_url, owner, [chat_shown, conversation_id, title, policy, session_list], **private
        )
        show_in_url(opened).then(None, owner, None, js=SHARE_OWNER_WITH_SSE_PAGE, **private)
        demo.load(None, None, None, js=composer_script(service.max_prompt_chars), **private)
        demo.load(None, None, None, js=PHONE_SIDEBAR, **private)
        model.change(side.model_notice, model, model_notice, **private)
        policy.input(side.remember_policy, [owner, conversation_id, policy], None, **private)
        pane.chatbot.undo(chat.undo, [owner, conversation_id, pane.chatbot], None, **private)

        fresh_chat = [chat_shown, conversation_id, title, usage, session_list, sidebar_notice]
        show_in_url(new_chat.click(side.new_chat, None, fresh_chat, **switching))
        # The chat's own trash button starts a new chat too; the cleared one stays in the sidebar.
        show_in_url(pane.chatbot.clear(side.new_chat, None, fresh_chat, **switching))
        switch_outputs = [chat_shown, conversation_id, title, usage, sidebar_notice, policy, session_list]
        show_in_url(session_list.input(side.switch, [owner, session_list], switch_outputs, **switching))
        show_in_url(results.input(side.switch, [owner, results], switch_outputs, **switching))
        gr.on(
            [search.submit, search.change], side.search, [owner, search], results, **private, trigger_mode="always_last"
        )
        rename.click(side.rename, [owner, conversation_id, title], [session_list, title, sidebar_notice], **private)
        title.submit(side.rename, [owner, conversation_id, title], [session_list, title, sidebar_notice], **private)
        delete.click(side.ask_to_delete, [conversation_id, delete], [delete, confirm_delete, sidebar_notice], **private)
        gr.on(
            [
                new_chat.click,
                pane.chatbot.clear,
                session_list.input,
                results.input,
                import_button.upload,
                confirm_delete.click,
            ],
            side.put_delete_away,
            None,
            [delete, confirm_delete],
            queue=False,
            **private,
        )
        confirm_delete.click(
            side.delete,
            [owner, conversation_id],
            [chat_shown, conversation_id, session_list, title, confirm_delete, results, search, sidebar_notice],
            **switching,
        )
        export_json.click(side.export_json, [owner, conversation_id], [download, sidebar_notice], **private)
        export_markdown.click(side.export_markdown, [owner, conversation_id], [download, sidebar_notice], **private)
        import_button.upload(
            side.import_file,
            [owner, import_button],
            [chat_shown, conversation_id, session_list, title, sidebar_notice],
            **switching,
        )
        gr.on([dish.submit, generate.click], recipes.prepare, dish, recipe_run, **private).success(
            recipes.generate,
            [dish, model, output_mode, debounce, owner, recipe_run],
            [card, recipe_view, counters, saved_recipes],
            api_name="recipe",
            concurrency_limit=settings.max_concurrent_streams,
        )
        stop_recipe.click(recipes.stop, [owner, recipe_run], None, **private)
        gr.on([handoff_go.click, handoff_data.submit], handoffs.prepare, handoff_data, handoff_run, **private).success(
            handoffs.run,
            [handoff_data, model, owner, handoff_run],
            [analysis, article, handoff_note],
            concurrency_limit=settings.max_concurrent_streams,
            **private,
        ).then(*refresh_sidebar, **private)  # the run is a conversation of its own in the list
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


def visitors_token(visitors: Visitors) -> Any:
    def ensure_owner(token: str | None, request: gr.Request) -> str:
        """The browser's token, minted on the first visit; a signed-in account never replaces it."""
        return visitors.browser_token(token, request)

    return ensure_owner


def dependency_of(blocks: gr.Blocks, block_fn: Any) -> Any:
    """A `Dependency` for an event Gradio wired inside a ChatInterface, so more can be chained after it."""
    from gradio.events import Dependency

    return Dependency(None, block_fn.get_config(), block_fn._id, block_fn.fn)


def copy_id(conversation_id: str | None) -> str:
    return conversation_id or ""
