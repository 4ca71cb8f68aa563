"""Armour, not the idea: every place the app reaches past Gradio 6.31's public API or tunes the process.

The chat is a stock `gr.ChatInterface` (ui/chat_tab.py) and the app works without anything here
(`--gradio-armour off`, `CHAT_GRADIO_ARMOUR=off`). With the armour on (the default) the page and the server
change what Gradio does by default, where a workshop room or a public Space measured or felt the
difference. Each piece says what Gradio does, what the app does instead, and why; each Gradio behaviour
it relies on has a canary test that fails with a sentence naming it (tests/test_gradio_armour.py).

- `ChatArmour` rewrites the events a `gr.ChatInterface` wired: the box stays usable while an answer
  streams, Send is one request, the Send/Stop swap costs no component build, and Stop goes through the
  app's own route (`PageOnlyText`, `STOP_BY_ROUTE`).
- `StopsBeforeJoin` keeps a Stop (Gradio's `/cancel`) sent before its job had joined the queue.
- `queue_without_dashboard` keeps Gradio's queue from summarising its events with pandas.
- `keep_connections_open` lets uvicorn keep an idle connection longer than clients do.
- `tune_for_many_streams` tunes the garbage collector, the GIL's switch interval and a failing import.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import json
import os
import sys
import time
from abc import ABCMeta
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
from gradio.component_meta import ComponentMeta
from gradio.events import Dependency

# --- The chat's Stop through the app's own route ---------------------------------------------------

FALLBACK_ID = "stop-fallback"


class _NoStubFile(ComponentMeta):
    """Gradio's `ComponentMeta` writes a `.pyi` beside the source of every component class it sees defined
    (for its own components' events); a subclass that adds no events needs none, and an app must not write
    into its own source folder. This builds the class as plain `ABCMeta` would."""

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> type:
        return ABCMeta.__new__(mcs, name, bases, attrs)


class PageOnlyText(gr.Textbox, metaclass=_NoStubFile):
    """Hidden text the page's scripts read and API clients never receive.

    Gradio sends a Textbox output to API clients too, and a `gr.State` never reaches the page; a component
    whose `skip_api` is true is left out of an endpoint's values as a State is, yet drawn in the page.
    `is_template` makes Gradio draw it as the Textbox it is."""

    is_template = True

    @property
    def skip_api(self) -> bool:
        return True


STOP_BY_ROUTE = f"""async (request) => {{
    if (request) {{
        try {{
            const response = await fetch('api/chat/stop', {{
                method: 'POST',
                headers: {{'Content-Type': 'application/json'}},
                credentials: 'same-origin',
                body: request,
            }});
            if (response.ok && (await response.json()).stopped) return;
        }} catch (error) {{
            // unreachable: Gradio's event below
        }}
    }}
    const fallback = document.getElementById('{FALLBACK_ID}');
    (fallback && fallback.tagName !== 'BUTTON' ? fallback.querySelector('button') : fallback)?.click();
}}"""
"""Stop posts the answering run's own stop request to `POST /api/chat/stop`; when that stops nothing (a
signed-in visitor, whose owner is not the cookie's; a browser without the cookie; an answer still waiting
for a slot; the route unreachable), it presses the hidden Gradio Stop event, which reads the conversation
from the page's session on the server."""

# While the box swaps Send and Stop: no API entry, not through the queue (a Stop must not wait behind the
# answers it is meant to end), no progress spinner (the swap is instant, and a spinner over the box
# flashed after every answer).
QUIET: dict[str, Any] = {"api_visibility": "undocumented", "queue": False, "show_progress": "hidden"}


class ChatArmour:
    """What the armour changes in the events a `gr.ChatInterface` wired, applied once it is built.

    Gradio's ChatInterface, on Send, disables and clears the box, then (a second request) shows the message,
    then streams the answer; Stop cancels the answer's event; after an answer it clears the box again and
    enables it. The armour, with the reason for each:

    - The box stays usable while an answer streams: a draft typed meanwhile is kept, and Enter queues it
      (ui/chat_tab.py `composer_script`). Gradio's events that disable the box for an answer (retry, edit)
      or re-enable and clear it after one become the Send <-> Stop swap (`_swap_send_and_stop`).
    - Send clears the box and shows the message in one request instead of two chained ones: each chained
      event costs the page a request and a render; this one was about 30 ms of every Send
      (benchmarks/first_token.py, ANALYSIS.md "Time to first token") (`_merge_take_and_show`).
    - The swap is an update dict, not a component: a component built as an update costs Gradio about
      0.2 ms (it reads its constructor's signature), a dict about 1 µs, and every answer swaps twice.
    - Stop ends the run through `chat/` by the app's own `POST /api/chat/stop` instead of cancelling the
      event, so the answer ends with its "stopped" label and its usage like any other (Gradio's cancel
      freezes the bubble mid-word, the label shows only after a reload), and it costs the server 0.5 ms
      against 3 ms through Gradio's `/run/predict`: with 200 answers stopped together most of the wait
      (ANALYSIS.md "Stop under load") (`_route_stop`).
    - An answer's progress shows in the chat, not on the usage line beside it.
    - Switching chats stops the answer by this Stop and waits for its last update before the chat picked is
      shown (ui/layout.py `STOP_AND_WAIT_THEN_SHOW_PICKED_CHAT`): a cancel of the answer event reached the
      server late under load, and the updates sent meanwhile put the old chat back over the new one.
    """

    def __init__(self, interface: gr.ChatInterface, page: gr.Blocks) -> None:
        self.interface = interface
        self.page = page
        self.events = list(events_of(page, interface))
        self.answer_events = [block_fn for block_fn in self.events if block_fn.name == "_submit_fn"]
        self.send_button = interface.textbox.submit_btn
        self.stop_request: PageOnlyText | None = None
        self.fallback: gr.Button | None = None

    @classmethod
    def apply(
        cls,
        interface: gr.ChatInterface,
        *,
        page: gr.Blocks,
        stop: Callable[..., Any],
        stop_inputs: list[Any],
        stop_request: gr.State,
    ) -> ChatArmour:
        """Armour a ChatInterface just built in `page` (call it inside the page, right after the interface).

        `stop` with `stop_inputs` is Gradio's Stop event, the fallback; `stop_request` is the State the
        answer writes its stop request to, which the page gets to read instead."""
        armour = cls(interface, page)
        armour._swap_send_and_stop()
        armour._merge_take_and_show()
        armour._route_stop(stop, stop_inputs, stop_request)
        for answer in armour.answer_events:
            answer.show_progress_on = [interface.chatbot]
        return armour

    def show_stop(self) -> dict[str, Any]:
        return gr.update(submit_btn=False, stop_btn=self.interface.original_stop_btn)

    def show_send(self) -> dict[str, Any]:
        return gr.update(submit_btn=self.send_button, stop_btn=False)

    def take_message(self, message: Any, shown: list[Any]) -> tuple[Any, Any, list[Any]]:
        """Clear the box and show the message in the chat, in one request."""
        return gr.update(value=""), message, self.interface._append_message_to_history(message, shown)

    def _swap_send_and_stop(self) -> None:
        """Gradio's textbox updates around an answer become `show_stop` / `show_send`: never disabled nor
        cleared. Its own swaps (`_setup_stop_events`: `utils.async_lambda(lambda: Textbox(...))`) build a
        component each; its `lambda: update(interactive=...)` disable, enable and clear the box."""
        textbox, answers = self.interface.textbox, {block_fn._id for block_fn in self.answer_events}
        for block_fn in self.events:
            if block_fn.outputs != [textbox] or block_fn.inputs or block_fn.name != "<lambda>":
                continue
            if inspect.iscoroutinefunction(block_fn.fn):  # Gradio's swap: Send after an answer, else Stop
                block_fn.fn = self.show_send if block_fn.trigger_after in answers else self.show_stop
            else:
                update = block_fn.fn()
                if not (isinstance(update, dict) and "interactive" in update):
                    continue
                block_fn.fn = self.show_send if update["interactive"] else self.show_stop
            block_fn.show_progress = "hidden"

    def _merge_take_and_show(self) -> None:
        """Gradio's Send is `_clear_and_save_textbox` then, chained, `_append_message_to_history`: the first
        does both here, and the second stays without a backend call, so what Gradio chained after it runs."""
        take = next(block_fn for block_fn in self.events if block_fn.name == "_clear_and_save_textbox")
        show = next(
            block_fn
            for block_fn in self.events
            if block_fn.trigger_after == take._id and block_fn.name == "_append_message_to_history"
        )
        interface = self.interface
        take.fn, take.name = self.take_message, "take_message"
        take.inputs = [interface.textbox, interface.chatbot]
        take.outputs = [interface.textbox, interface.saved_input, interface.chatbot]
        take.show_progress = "hidden"  # it takes a few ms; a spinner over the box would only flash
        show.fn, show.name, show.inputs, show.outputs, show.queue = None, None, [], [], False

    def _route_stop(self, stop: Callable[..., Any], stop_inputs: list[Any], stop_request: gr.State) -> None:
        """Gradio's Stop cancels the answer events (a cancel function on `textbox.stop`): it cancels nothing
        now, and Stop posts the run's stop request (`STOP_BY_ROUTE`), with Gradio's event as the fallback."""
        textbox = self.interface.textbox
        for block_fn in self.events:
            if block_fn.is_cancel_function and (textbox._id, "stop") in block_fn.targets:
                block_fn.cancels = []
        self.stop_request = PageOnlyText(visible="hidden", elem_id="stop-request", label="stop request")
        self.fallback = gr.Button("Stop", visible="hidden", elem_id=FALLBACK_ID)
        for block_fn in self.events:  # every answer (the page's and the `/chat` API's) writes it where scripts read it
            block_fn.outputs = [self.stop_request if output is stop_request else output for output in block_fn.outputs]
        textbox.stop(None, [self.stop_request], None, js=STOP_BY_ROUTE, **QUIET)
        self.fallback.click(stop, stop_inputs, None, api_name="stop", **QUIET)

    def answers(self) -> list[Dependency]:
        """Every event that streams an answer (send, example, retry, edit), to chain more after it."""
        return [dependency_of(block_fn) for block_fn in self.answer_events]


def events_of(page: gr.Blocks, interface: gr.ChatInterface) -> Iterator[Any]:
    """The `BlockFunction`s a ChatInterface wired in `page` (inside a page, Gradio registers them on the
    page's `fns`, not on the interface): those that read, write or are triggered by its own components."""
    own = {
        block._id
        for block in (
            interface.textbox,
            interface.chatbot,
            interface.chatbot_state,
            interface.chatbot_value,
            interface.saved_input,
            interface.null_component,
            interface.fake_api_btn,
        )
    }
    for block_fn in page.fns.values():
        touched = {block._id for block in (*block_fn.inputs, *block_fn.outputs)} | {t for t, _ in block_fn.targets}
        if touched & own:
            yield block_fn


def dependency_of(block_fn: Any) -> Dependency:
    """A `Dependency` (what `.click()` returns) for an event Gradio wired itself, so more can be chained."""
    return Dependency(None, block_fn.get_config(), block_fn._id, block_fn.fn)


# --- A Stop sent before its job joined the queue -----------------------------------------------------


class StopsBeforeJoin:
    """Gradio's `POST /gradio_api/cancel` that names no event: `gradio_client`'s `job.cancel()` right after
    `submit()`, before the queue has given the job its id. Gradio cancels nothing then, the job joins the
    queue after it and the answer runs to its end: the Stop is lost. Noted here (by `NoteStopsBeforeJoin`,
    for the chat's answer events only), it stops the page session's next answer as that answer starts,
    which is saved with its prompt, labelled stopped."""

    WINDOW_SECONDS = 10.0
    """A job joins the queue within moments of its cancel; an older note is no Stop of the next answer."""
    _REMEMBERED = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.answer_fns: set[int] = set()
        self._pressed: dict[str, float] = {}
        self._clock = clock

    def watch(self, armour: ChatArmour) -> None:
        """Note cancels of these answer events (the page's Send, examples, retry, edit and the `/chat` API)."""
        api = (armour.interface.fake_api_btn._id, "click")  # `/chat` runs the fn itself, under its own name
        self.answer_fns.update(
            block_fn._id for block_fn in armour.events if block_fn in armour.answer_events or api in block_fn.targets
        )

    def note(self, body: bytes) -> None:
        try:
            cancel = json.loads(body)
        except ValueError:
            return  # Gradio answers it; there is nothing to note
        if not isinstance(cancel, dict) or cancel.get("event_id") or cancel.get("fn_index") not in self.answer_fns:
            return
        session = cancel.get("session_hash")
        if isinstance(session, str) and session:
            self._pressed.pop(session, None)
            self._pressed[session] = self._clock()
            while len(self._pressed) > self._REMEMBERED:
                del self._pressed[next(iter(self._pressed))]

    def take(self, session_hash: str | None) -> bool:
        """Whether a Stop came for this session's answer before it joined (and forget it: it stops one)."""
        pressed = self._pressed.pop(session_hash, None) if session_hash else None
        return pressed is not None and self._clock() - pressed <= self.WINDOW_SECONDS


class NoteStopsBeforeJoin:
    """ASGI middleware: shows `StopsBeforeJoin` each cancel's body on its way to Gradio, unchanged."""

    CANCEL_PATH = "/gradio_api/cancel"
    MAX_NOTED_BYTES = 4096

    def __init__(self, app: Any, stops: StopsBeforeJoin) -> None:
        self.app = app
        self.stops = stops

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(self.CANCEL_PATH):
            await self.app(scope, receive, send)
            return
        received, body = [], b""
        while len(body) <= self.MAX_NOTED_BYTES:
            message = await receive()
            received.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                self.stops.note(body)
                break

        async def replay() -> Any:
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)


# --- Gradio's queue without its monitoring records ---------------------------------------------------

QUEUE_WITHOUT_DASHBOARD = {"GRADIO_ANALYTICS_MAX_EVENTS": "1", "GRADIO_ANALYTICS_CACHE_FREQUENCY": str(2**62)}


def queue_without_dashboard(demo: gr.Blocks, **queue: Any) -> None:
    """`demo.queue(**queue)`, with Gradio's queue keeping one event record and never summarising them.

    Gradio's queue keeps its last 10,000 events for the monitoring dashboard and, after every event,
    summarises them all with pandas in a thread that holds the GIL: 3-8 ms of CPU per event, 200 of them in
    a row when 200 answers end (or are stopped) together (benchmarks/ANALYSIS.md). Gradio reads these
    variables as its queue is created; they are set for that moment only."""
    before = {name: os.environ.get(name) for name in QUEUE_WITHOUT_DASHBOARD}
    os.environ.update(QUEUE_WITHOUT_DASHBOARD)
    try:
        demo.queue(**queue)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- The server and the process ----------------------------------------------------------------------

KEEP_ALIVE_SECONDS = 75
"""Longer than the idle time of browsers' and HTTP clients' pools and of proxies (nginx, load balancers: 60 s)."""


def keep_connections_open(demo: gr.Blocks) -> None:
    """Uvicorn, as Gradio starts it, closes an idle connection after 5 s, and Gradio has no setting for it;
    a busy client reusing one it believes open sends its request into a closing socket (about 1 in 100
    failed at 200 chats). Each new connection reads this, so from here on the server outlasts any client's
    idle time. Call it right after `demo.launch(prevent_thread_lock=True)`."""
    demo.server.config.timeout_keep_alive = KEEP_ALIVE_SECONDS


GIL_SWITCH_SECONDS = 0.0005
YOUNG_OBJECTS_PER_COLLECTION = 10_000


def tune_for_many_streams() -> None:
    """Keep the event loop's pauses short while hundreds of answers stream (benchmarks/ANALYSIS.md,
    "Stop under load"). Python's defaults are a 5 ms GIL switch interval and a collection every 700 young
    objects; the process is left so when the armour is off.

    - The objects of start-up (Gradio, pydantic, the agents: most of the heap) are frozen out of the
      garbage collector, and it runs less often: with 200 answers streaming, a full collection walked
      them all every few seconds and held the loop for 200-680 ms, every stream and Stop waiting.
    - Threads take the GIL in turns of 0.5 ms instead of 5: a save in a worker thread re-takes the GIL
      at each SQLite call, and behind a busy event loop it waited up to 5 ms each time, so one Stop's
      save took up to a second (p95 510-965 ms; about 50 ms after).
    - Without matplotlib installed, Gradio tries to import it twice around every update of every stream
      (`gradio.utils.MatplotlibBackendMananger`, to switch its plotting backend), each failing import
      searching the whole path again: about 5% of the loop's time with 200 answers streaming. Marked as
      absent, each attempt fails at once.
    """
    if importlib.util.find_spec("matplotlib") is None:
        sys.modules.setdefault("matplotlib", None)  # type: ignore[arg-type]
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS_PER_COLLECTION, 50, 100)
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
