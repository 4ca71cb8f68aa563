"""The Gradio UI: layout and event wiring. The only package importing gradio; handlers call `chat/`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from chat.config import Settings
from chat.identity import VisitorCookie
from chat.recipe_runs import RecipeService
from chat.sessions import Sessions
from chat.turns import ChatService
from chat.wings.context_policies import ContextPolicies
from chat.wings.handoff import HandoffService
from chat.wings.mcp_servers import McpServers
from chat.wings.stream_inspector import StreamInspector
from ui.chat_tab import CHAT_KEYS, ChatTab, chat_pane, composer_script, copy_script
from ui.events import PRIVATE
from ui.gradio_armour import StopsBeforeJoin, queue_without_dashboard
from ui.handoff_tab import HandoffHandlers, handoff_tab
from ui.inspector_tab import InspectorHandlers, inspector_tab
from ui.layout import (
    CSS,
    NAME_GRADIO_CONTROLS,
    PHONE_SIDEBAR,
    SAVE_EXPORT,
    SEND_TIME_ZONE,
    SHOW_CONVERSATION_IN_URL,
    STOP_AND_WAIT_THEN_SHOW_PICKED_CHAT,
    STOP_THEN_SHOW_PICKED_CHAT,
)
from ui.recipe_tab import RecipeHandlers, recipe_tab
from ui.sidebar import SessionHandlers, sidebar
from ui.visitors import Visitors, new_conversation_id

__all__ = [
    "ChatTab",
    "ServicesShown",
    "SessionHandlers",
    "Visitors",
    "build_demo",
    "launch_options",
    "new_conversation_id",
]


def launch_options(settings: Settings) -> dict[str, Any]:
    """Options for `demo.launch()`. Gradio's queue runs at most `max_threads` events at once (40 by
    default), whatever the concurrency limits say, so it must exceed the streams we allow.
    The only upload is a conversation import, so the import limit is the upload limit."""
    return {
        "max_threads": settings.max_concurrent_streams + 16,
        "css": CSS,
        "max_file_size": settings.max_import_bytes,  # Gradio refuses a bigger upload before it reaches disk
        "enable_monitoring": False,  # Gradio's traffic dashboard: nothing a visitor of a public Space needs
    }


@dataclass(frozen=True)
class ServicesShown:
    """What the page shows, built by `server.build_app`: plain `chat/` services that know nothing of Gradio
    (`server.serve` puts every API route on these same services)."""

    chat: ChatService
    sessions: Sessions
    recipes: RecipeService
    handoffs: HandoffService
    inspector: StreamInspector
    visitor_cookie: VisitorCookie
    context: ContextPolicies
    mcp_servers: McpServers


def build_demo(
    services: ServicesShown, settings: Settings, stops_before_join: StopsBeforeJoin | None = None
) -> gr.Blocks:
    """The page. `stops_before_join`: where the server's `NoteStopsBeforeJoin` notes early Stops (the armour)."""
    service = services.chat
    visitors = Visitors(services.visitor_cookie)
    chat = ChatTab(service, visitors, settings.image_hosts, services.mcp_servers, stops_before_join)
    recipes = RecipeHandlers(services.recipes, visitors)
    stream_probe = InspectorHandlers(services.inspector)
    handoffs = HandoffHandlers(services.handoffs, visitors)
    side = SessionHandlers(services.sessions, service, visitors, services.context)
    context = services.context
    streams = settings.max_concurrent_streams
    with gr.Blocks(title="pydantic-ai chat", fill_height=True) as demo:
        # An API caller's own owner token (the page sends none: its visitor is the signed cookie).
        owner = gr.Textbox(visible=False, label="owner")
        conversation_id = gr.State(None)
        # A State never reaches the page; this copy does, so a page script can put the id in the address.
        address = gr.Textbox(visible="hidden", elem_id="conversation-address")

        bar = sidebar(settings)

        with gr.Row(equal_height=True, elem_id="header"):
            gr.Markdown("### 💬 pydantic-ai chat", elem_id="app-title")
            model = gr.Dropdown(
                choices=side.model_menu(),
                value=settings.default_model,
                label="Model",
                show_label=False,
                container=False,
                min_width=160,
                elem_id="model",
            )
        model_notice = gr.Markdown(side.model_notice(settings.default_model), elem_id="model-notice")
        refresh_sidebar = (side.refresh, [owner, conversation_id], [bar.sessions])
        with gr.Tabs(overflow_behavior="wrap"):  # a phone shows every tab's name, on two rows, not a bare "⋯"
            with gr.Tab("Chat", id="chat-tab", elem_id="chat-tab"):
                usage = gr.Markdown(elem_id="usage", label="usage", render=False)
                policy_labels = {
                    "full": "Full history",
                    "window": f"Last {context.default.window} messages",
                    "summary": f"Summary past {context.default.summary_threshold} messages",
                }
                policy = gr.Radio(
                    [(policy_labels[kind], kind) for kind in context.choices],
                    value=context.default.kind,
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
                    page=demo,
                    model=model,
                    owner=owner,
                    conversation_id=conversation_id,
                    policy=policy,
                    usage=usage,
                    inspector=inspector,
                    concurrency_limit=streams,
                    armoured=settings.gradio_armour,
                )
                gr.HTML("", elem_id="queued-note")
                gr.HTML("", elem_id="prompt-note")
                usage.render()
                with gr.Accordion("What the last answer was sent", open=False, elem_id="inspector-box"):
                    inspector.render()
                with gr.Accordion("Tools the model can call", open=False, elem_id="tools-box"):
                    tools_list = gr.Markdown(elem_id="tools-list")
                demo.load(chat.tools_shown, None, tools_list, **PRIVATE)
            with gr.Tab("Recipe", id="recipe-tab"):
                recipe_tab(recipes, page=demo, model=model, owner=owner, concurrency_limit=streams)
            with gr.Tab("Analyst → writer", id="handoff-tab"):
                handoff_tab(handoffs, model=model, owner=owner, concurrency_limit=streams, after_run=refresh_sidebar)
            with gr.Tab("Stream inspector", id="inspector-tab"):
                inspector_tab(stream_probe, model=model)
        interface, armour = pane.interface, pane.armour
        chat_shown = interface.chatbot_value  # writing it shows a conversation in the ChatInterface
        # A chat the sidebar shows is written to the chatbot and to ChatInterface's copy of it (the next Send's
        # history) directly. Through `chatbot_value` alone nothing changed when it already held the same list (an
        # answer left by New chat never wrote it: the old chat stayed), and its change event put a progress timer
        # over the chat on every switch.
        pane_shown = [interface.chatbot, interface.chatbot_state]

        def show_in_url(event: Any) -> Any:
            return event.then(copy_id, conversation_id, address, **PRIVATE).then(
                None, address, None, js=SHOW_CONVERSATION_IN_URL, **PRIVATE
            )

        switching: dict[str, Any]
        if armour is not None:
            for answer in armour.answers():
                # Not after a cancelled answer: the chat the visitor switched to refreshes the sidebar itself.
                show_in_url(answer.success(*refresh_sidebar, **PRIVATE))
            # The answer is stopped by its own Stop before the switch goes out (see the script), not cancelled.
            switching = {"cancels": [], "js": STOP_AND_WAIT_THEN_SHOW_PICKED_CHAT, **PRIVATE}
        else:
            # A stock ChatInterface keeps its answer events to itself. Only an answer writes the context panel
            # (as it starts and as it ends), so its change refreshes the sidebar; switching presses Stop first.
            show_in_url(inspector.change(*refresh_sidebar, **PRIVATE))
            switching = {"cancels": [], "js": STOP_THEN_SHOW_PICKED_CHAT, **PRIVATE}

        opened = demo.load(side.open_from_url, owner, [chat_shown, conversation_id, policy, bar.sessions], **PRIVATE)
        show_in_url(opened)
        following = opened.then(
            chat.follow_answer,
            [owner, conversation_id, chat_shown],
            [interface.chatbot, interface.chatbot_state, chat_shown, interface.textbox, usage, inspector],
            **PRIVATE,
        )
        following.then(*refresh_sidebar, **PRIVATE)  # a new chat's title, once its first answer is saved
        switching["cancels"].append(following)  # opening another chat leaves the answer running, unread
        demo.load(None, None, None, js=composer_script(service.max_prompt_chars), **PRIVATE)
        demo.load(None, None, None, js=CHAT_KEYS, **PRIVATE)
        demo.load(None, None, None, js=NAME_GRADIO_CONTROLS, **PRIVATE)
        demo.load(None, None, None, js=PHONE_SIDEBAR, **PRIVATE)
        demo.load(None, None, None, js=SEND_TIME_ZONE, **PRIVATE)
        demo.load(None, None, None, js=copy_script(), **PRIVATE)
        model.change(side.model_notice, model, model_notice, **PRIVATE)
        policy.input(side.remember_policy, [owner, conversation_id, policy], None, **PRIVATE)
        interface.chatbot.undo(chat.undo, [owner, conversation_id, interface.chatbot], None, **PRIVATE)

        fresh_chat = [*pane_shown, conversation_id, usage, bar.sessions, bar.notice]
        show_in_url(bar.new_chat.click(side.new_chat, owner, fresh_chat, **switching))
        switch_outputs = [*pane_shown, conversation_id, usage, bar.notice, policy, bar.sessions]
        show_in_url(bar.sessions.select(side.open_picked, owner, switch_outputs, **switching))
        show_in_url(bar.results.input(side.switch, [owner, bar.results], switch_outputs, **switching))
        gr.on(
            [bar.search.submit, bar.search.change],
            side.search,
            [owner, bar.search],
            bar.results,
            **PRIVATE,
            trigger_mode="always_last",
        )
        bar.sessions.submit(side.rename, [owner, conversation_id], [bar.sessions, bar.notice], **PRIVATE)
        if armour is not None:
            gr.on(  # whatever answer the page was showing is cancelled or left running unread: Send, not Stop
                [
                    bar.new_chat.click,
                    bar.sessions.select,
                    bar.sessions.clear,
                    bar.results.input,
                    bar.import_button.upload,
                ],
                armour.show_send,
                None,
                interface.textbox,
                queue=False,
                **PRIVATE,
            )
        deleted = [*pane_shown, conversation_id, usage, bar.sessions, bar.results, bar.search, bar.notice]
        # Another row's chat: the pane and its answer are left alone. The chat shown (`clear`): its answer is
        # stopped as for any switch, and the pane becomes a new chat.
        bar.sessions.delete(side.delete, [owner, conversation_id], deleted, **PRIVATE)
        show_in_url(bar.sessions.clear(side.delete, [owner, conversation_id], deleted, **switching))
        bar.sessions.download(side.export_picked, owner, [bar.export_payload, bar.notice], **PRIVATE).success(
            None, [bar.export_payload], None, js=SAVE_EXPORT, **PRIVATE
        )
        imported = bar.import_button.upload(
            side.import_file,
            [owner, bar.import_button],
            [*pane_shown, conversation_id, bar.sessions, bar.notice],
            **switching,
        )
        show_in_url(imported)  # a reload reopens the imported chat, as after any switch
    queue = {"default_concurrency_limit": settings.max_concurrent_streams, "api_open": False}
    if settings.gradio_armour:
        queue_without_dashboard(demo, **queue)
    else:
        demo.queue(**queue)
    return demo


def copy_id(conversation_id: str | None) -> str:
    return conversation_id or ""
