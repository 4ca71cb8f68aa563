"""The chat tab: a `gr.ChatInterface` whose fn streams one pydantic-ai turn into the answer bubble.

The turn itself (load the conversation, `agent.run_stream(...)`, accumulate `stream_text(delta=True)`
deltas, stop, save) lives in `chat/turns.py`; this module only shows it. The ChatInterface is a stock one;
what the app changes in Gradio's own wiring of it is armour, applied in one line (ui/gradio_armour.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from chat.identity import TIME_ZONE_COOKIE, client_address
from chat.render import (
    ENDED_LABELS,
    answer_messages,
    format_context,
    format_stats,
    format_tools,
    prompts_in,
    settle_shown,
)
from chat.runs import RunStatus
from chat.turns import ChatService, TurnUpdate
from chat.wings.mcp_servers import McpServers
from ui.gradio_armour import ChatArmour, StopsBeforeJoin
from ui.visitors import RunHandlers, Visitors, new_conversation_id

# While an answer streams the usage line and the context panel show these rather than `gr.skip()`:
# Gradio 6.31 rebuilds a component for each skipped output on every update (benchmarks/ANALYSIS.md).
ANSWERING = "*Answering…*"
CONTEXT_AFTER_TURN = "*Shown when this answer ends.*"

EXAMPLES = [
    ["My name is Sam and I am 41."],
    ["我叫小王，今年28岁。"],
    ["count to 200"],
    ["What can you do offline?"],
]


def composer_script(max_prompt_chars: int) -> str:
    """The page script of the message box: it refuses what cannot be sent and queues follow-ups.

    - A message over the limit stays in the box with the reason above it (the server refuses it too, for
      API callers); an empty one is not sent. Checked here rather than by a Gradio `validator=`, which
      would put every Send through the queue once more (45 ms in benchmarks/first_token.py).
    - Enter while an answer streams queues the message; it is sent as soon as the answer ends.
    """
    return COMPOSER.replace("MAX_PROMPT_CHARS", str(int(max_prompt_chars)))


COMPOSER = """() => {
    if (window.__chatQueue) return;
    const queued = window.__chatQueue = [];
    const limit = MAX_PROMPT_CHARS;
    let draft = null;
    const box = () => document.querySelector('#prompt textarea');
    const answering = () => document.querySelector('#prompt .stop-button') !== null;
    const setBox = (text) => {
        const el = box();
        Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set.call(el, text);
        el.dispatchEvent(new Event('input', {bubbles: true}));
    };
    const noteText = (selector, text) => {
        const n = document.querySelector(selector);
        if (!n) return;
        n.textContent = text;
        n.classList.toggle('visible', text !== '');
    };
    const refusal = (text) => {
        if (!text.trim()) return '';
        if (text.length <= limit) return null;
        const n = (x) => x.toLocaleString('en-US');
        return `Your message is ${n(text.length)} characters; the limit here is ${n(limit)}. ` +
            'Shorten it: it is still in the box.';
    };
    const showQueue = () => noteText('#queued-note', queued.length ?
        `Queued: “${queued[0].slice(0, 60)}”` + (queued.length > 1 ? ` and ${queued.length - 1} more` : '') +
        ' (sent when this answer ends)' : '');
    const onEnter = (event) => {
        if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.target !== box()) return;
        const refused = refusal(box().value);
        if (refused === null && !answering()) return;  // Gradio sends it
        event.preventDefault();
        event.stopImmediatePropagation();
        if (event.type !== 'keydown') return;
        if (refused !== null) {
            noteText('#prompt-note', refused);
        } else {
            queued.push(box().value);
            setBox('');
            showQueue();
        }
    };
    const onSendClick = (event) => {
        if (!event.target.closest || !event.target.closest('#prompt .submit-button')) return;
        const refused = refusal(box().value);
        if (refused === null) return;
        event.preventDefault();
        event.stopImmediatePropagation();
        noteText('#prompt-note', refused);
    };
    for (const type of ['keydown', 'keypress']) document.addEventListener(type, onEnter, true);
    document.addEventListener('click', onSendClick, true);
    document.addEventListener('input', (event) => {
        if (event.target === box() && refusal(box().value) === null) noteText('#prompt-note', '');
    }, true);
    setInterval(() => {
        if (draft !== null && answering()) {  // the queued message is on its way: give the draft back
            if (!box().value) setBox(draft);
            draft = null;
        }
        const send = document.querySelector('#prompt .submit-button');
        if (!queued.length || answering() || !send || send.disabled) return;
        draft = box().value || null;
        setBox(queued.shift());
        showQueue();
        setTimeout(() => send.click(), 30);
    }, 150);
}"""


# The chat's keys, with the armour on and off (they press Gradio's own buttons, so each does what its button does):
# - the box has the focus again after each answer (Send, the last control pressed, is gone by then), unless
#   the visitor has moved to another field meanwhile (the search, a title); on load Gradio's `autofocus` puts it there;
# - Escape stops the answer, wherever the focus is, except in an open menu (whose Escape closes it) or an edit;
# - in a message being edited, Enter saves it (as the ✓ button does), Shift+Enter makes a new line, Escape cancels.
CHAT_KEYS = """() => {
    if (window.__chatKeys) return;
    window.__chatKeys = true;
    const box = () => document.querySelector('#prompt textarea');
    const answering = () => document.querySelector('#prompt .stop-button') !== null;
    const press = (selector) => document.querySelector(selector)?.click();
    const elsewhere = () => {
        const active = document.activeElement;
        return active && active !== document.body && !active.closest('#prompt, #chat');
    };
    let answered = false;
    setInterval(() => {
        if (answering()) { answered = true; return; }
        const el = box();
        if (!answered || !el || el.disabled) return;  // a stock ChatInterface enables the box a moment later
        answered = false;
        if (!elsewhere()) el.focus({preventScroll: true});
    }, 150);
    document.addEventListener('keydown', (event) => {
        if (event.isComposing || event.defaultPrevented) return;
        const editing = event.target.closest && event.target.closest('#chat textarea.edit-textarea');
        if (editing && event.key === 'Enter' && !event.shiftKey) {
            event.preventDefault();
            press("#chat button[aria-label='Submit']");
        } else if (editing && event.key === 'Escape') {
            event.preventDefault();
            press("#chat button[aria-label='Cancel']");
        } else if (event.key === 'Escape' && answering() && event.target.getAttribute?.('aria-expanded') !== 'true') {
            event.preventDefault();
            press('#prompt .stop-button');
        }
    }, true);
}"""


def stop_request(conversation_id: str, run_tag: str) -> str:
    """The body of `POST /api/chat/stop` that stops this run and no other (the armour's Stop sends it)."""
    return json.dumps({"conversation_id": conversation_id, "run": run_tag})


def copy_script() -> str:
    """The page script that keeps an early end's label ("⏹ stopped") out of what the copy buttons copy.

    Gradio's copy buttons copy a message's Markdown source, and the label is part of it (it is shown and
    stored with the answer); the clipboard gets the answer as written.
    """
    return COPY_WITHOUT_LABELS.replace("LABELS", json.dumps(ENDED_LABELS))


COPY_WITHOUT_LABELS = """() => {
    const clipboard = navigator.clipboard;
    if (!clipboard || clipboard.__withoutLabels) return;
    clipboard.__withoutLabels = true;
    const write = clipboard.writeText.bind(clipboard);
    clipboard.writeText = (text) => {
        if (typeof text === 'string') for (const label of LABELS) text = text.split(label).join('');
        return write(text);
    };
}"""


class ChatTab(RunHandlers):
    """The chat tab's handlers; each resolves its visitor itself, since every event is also an API call."""

    def __init__(
        self,
        service: ChatService,
        visitors: Visitors,
        image_hosts: tuple[str, ...] = (),
        mcp_servers: McpServers | None = None,
        stops_before_join: StopsBeforeJoin | None = None,
    ) -> None:
        super().__init__(service, visitors)
        self.service = service
        self.image_hosts = image_hosts
        self.mcp_servers = mcp_servers or McpServers()
        self.stops_before_join = stops_before_join or StopsBeforeJoin()

    async def answer(
        self,
        message: str,
        history: list[dict[str, Any]],
        model: str,
        owner: str | None,
        conversation_id: str | None,
        policy: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """ChatInterface's fn: it has shown `message` already; each yield replaces what follows it: the
        answer, after the agent's steps (tool calls, thinking) as collapsible messages when it took any.

        `owner` is the browser's token (the API caller's own id); the signed-in account wins over it.
        """
        scope = self.visitors.owner(owner, request, profile)
        conversation_id = conversation_id or new_conversation_id()
        shown = prompts_in(history)  # fewer than stored after an edit, a retry or an undo
        settle_shown(history, message)  # a question this message answers stops saying "waiting for you"
        chat_of_this_answer: Any = conversation_id
        run_tag = secrets.token_hex(8)
        how_to_stop: Any = stop_request(conversation_id, run_tag)
        if scope and self.stops_before_join.take(getattr(request, "session_hash", None)):
            self.service.stop(scope, conversation_id)  # the run ends as it starts, its prompt saved
        try:
            async for update in self.service.run_turn(
                scope,
                conversation_id,
                message,
                model,
                policy,
                shown_prompts=shown,
                address=client_address(request),
                tag=run_tag,
                time_zone=(getattr(request, "cookies", None) or {}).get(TIME_ZONE_COOKIE),
            ):
                # Every page output gets its value again on each update: Gradio would build a component anew
                # for each one given `gr.skip()` (about 1.5 ms each, on every update of every stream), while
                # a value costs only its postprocess, and nothing on the wire when it has not changed. A State's skip is free.
                yield (
                    answer_messages(update, self.image_hosts),
                    usage_line(update),
                    context_panel(update),
                    chat_of_this_answer,
                    how_to_stop,
                )
                # Once only: a late update of an answer cancelled by a switch must not take the page back.
                # (Its stop request may come again: it names this run only, and stops no other.)
                chat_of_this_answer = gr.skip()
        except (asyncio.CancelledError, GeneratorExit) as ended:
            # Gradio cancels the event when the visitor presses Stop, switches chats or an API client cancels
            # its job: that is a Stop. A reloaded or closed page only stops reading (Gradio closes this
            # generator without a cancel), and the answer goes on, for the page to pick up again (`follow_answer`).
            if scope and (isinstance(ended, asyncio.CancelledError) or gradio_is_cancelling_this_event()):
                self.service.stop(scope, conversation_id)
            raise

    async def tools_shown(self) -> str:
        """The tools the model can call here (MCP servers start now if none has yet)."""
        tools = await self.mcp_servers.available_tools()
        return format_tools(tools, self.mcp_servers.notices)

    async def follow_answer(
        self,
        token: str | None,
        conversation_id: str | None,
        shown: list[dict[str, Any]],
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """After a reload (or in a second tab): an answer still being written in the chat the page opened
        streams in below what is stored, with Stop, as if this page had sent it."""
        owner = self.visitors.owner(token, request, profile)
        run = self.service.live_turn(owner, conversation_id) if owner and conversation_id else None
        if run is None or run.ended.is_set():  # nothing running: what the page shows is what is stored
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        asked = {"role": "user", "content": run.subject}
        send_or_stop: Any = gr.Textbox(submit_btn=False, stop_btn=True)
        async for update in self.service.follow(run):
            answer = answer_messages(update, self.image_hosts)
            chat = [
                *shown,
                asked,
                *(answer if isinstance(answer, list) else [{"role": "assistant", "content": answer}]),
            ]
            if update.final:
                send_or_stop = gr.Textbox(submit_btn=True, stop_btn=False)
            # The chat and ChatInterface's own copy of it (the next Send's history) each update; the value
            # that shows a chat only at the end: its change event drops updates that come while it runs.
            shows = chat if update.final else gr.skip()
            yield chat, chat, shows, send_or_stop, usage_line(update), context_panel(update)
            send_or_stop = gr.skip()

    async def undo(
        self,
        token: str | None,
        conversation_id: str | None,
        chat: list[dict[str, Any]],
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> None:
        """Undo takes the last exchange off the page (and the prompt back to the box): the store follows."""
        owner = self.visitors.owner(token, request, profile)
        if owner and conversation_id:
            await self.service.edits.keep_shown(owner, conversation_id, prompts_in(chat)[:-1])


def gradio_is_cancelling_this_event() -> bool:
    """Whether this generator is being closed because Gradio cancelled its event (Stop), not because its page left.

    A cancel that comes while the generator waits for its next update raises CancelledError in it; one that
    comes while Gradio is sending an update lands in Gradio's own code, which then closes the generator with
    GeneratorExit, exactly as it does when the page has gone. Only the task tells them apart: Gradio closes the
    generator from the event's task, and a cancelled task is still cancelling while it cleans up.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def usage_line(update: TurnUpdate) -> str:
    if update.stats:
        return format_stats(update.stats, update.status)
    return "" if update.status is RunStatus.FAILED else ANSWERING


def context_panel(update: TurnUpdate) -> str:
    return format_context(update.context, update.stats) if update.context else CONTEXT_AFTER_TURN


@dataclass
class ChatPane:
    """The chat tab's `gr.ChatInterface`, and the armour applied to it (None when it is off)."""

    interface: gr.ChatInterface
    armour: ChatArmour | None


def chat_pane(
    tab: ChatTab,
    *,
    page: gr.Blocks,
    model: gr.Component,
    owner: gr.Component,
    conversation_id: gr.State,
    policy: gr.Component,
    usage: gr.Component,
    inspector: gr.Component,
    concurrency_limit: int,
    armoured: bool = True,
    examples: Sequence[list[str]] = EXAMPLES,
) -> ChatPane:
    """A stock ChatInterface: `tab.answer` streams into it, with the model, the owner, the conversation and the
    context policy as extra inputs, and the usage line, the context panel, the conversation id and the run's
    stop request as extra outputs. The SQLite sidebar replaces its browser history (`save_history=False`)."""
    run_stop = gr.State()  # the answering run's stop request: the armour's Stop sends it to the app's route
    interface = gr.ChatInterface(
        tab.answer,
        chatbot=gr.Chatbot(
            elem_id="chat",
            buttons=["copy", "copy_all"],
            show_label=False,
            placeholder="**pydantic-ai chat**: streaming, multi-turn, offline on the demo model. Try an example:",
        ),
        textbox=gr.Textbox(
            placeholder="Message the model (Enter to send, Shift+Enter for a new line)",
            label="Message",  # what a screen reader announces; the placeholder says it on screen
            show_label=False,
            autofocus=True,  # the first Tab on a new page would otherwise be the 15th
            elem_id="prompt",
            lines=1,
            max_lines=8,
            submit_btn=True,
            stop_btn=True,
        ),
        additional_inputs=[model, owner, conversation_id, policy],
        additional_inputs_accordion=gr.Accordion(
            "Context: what the model is sent", open=False, elem_id="context", render=False
        ),
        additional_outputs=[usage, inspector, conversation_id, run_stop],
        editable=True,
        examples=list(examples),
        save_history=False,
        fill_height=True,
        api_name="chat",
        concurrency_limit=concurrency_limit,
    )
    armour = (
        ChatArmour.apply(
            interface, page=page, stop=tab.stop, stop_inputs=[owner, conversation_id], stop_request=run_stop
        )
        if armoured
        else None
    )
    if armour is not None:
        tab.stops_before_join.watch(armour)
    return ChatPane(interface, armour)
