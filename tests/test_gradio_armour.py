"""The armour (ui/gradio_armour.py): canaries for each Gradio behaviour it relies on, and the app without it.

A canary fails with a sentence naming the Gradio behaviour that changed and the armour's piece that relies on
it: after a Gradio upgrade, read the sentence, then the piece's docstring, and either mend the piece or turn
the armour off (`--gradio-armour off`) until it is mended. The app itself must keep working without the
armour: the last tests build and serve it so and stop an answer through Gradio's own cancel.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import pytest

from chat.config import Settings
from chat.options import parse_settings
from chat.render import to_bubbles
from tests.apps import running_app, visitor_token
from ui import gradio_armour
from ui.gradio_armour import PageOnlyText, events_of

ROOT = Path(__file__).resolve().parent.parent
ARMOUR = "(ui/gradio_armour.py)"


def answer(message, history):
    yield message


@pytest.fixture
def built() -> tuple[gr.Blocks, gr.ChatInterface, list]:
    """A stock ChatInterface as the chat tab builds it, inside a page, and the events Gradio wired for it."""
    with gr.Blocks() as page:
        interface = gr.ChatInterface(
            answer, textbox=gr.Textbox(submit_btn=True, stop_btn=True), editable=True, examples=[["hi"]]
        )
    return page, interface, list(events_of(page, interface))


# --- Canaries: what the armour relies on in Gradio ----------------------------------------------------


def test_gradio_registers_a_chat_interfaces_events_on_the_page_it_is_built_in(built):
    _, interface, events = built
    assert events, (
        "Gradio no longer registers a ChatInterface's events in the enclosing page's `fns`: the armour finds "
        f"the events it rewrites there (ChatArmour, events_of) {ARMOUR}"
    )
    for name in ("textbox", "chatbot", "chatbot_state", "chatbot_value", "saved_input", "null_component"):
        assert isinstance(getattr(interface, name, None), gr.components.Component), (
            f"Gradio's ChatInterface no longer has the component `{name}`: the armour finds its events by it "
            f"(events_of) {ARMOUR}"
        )
    assert isinstance(getattr(interface, "fake_api_btn", None), gr.Button), (
        "Gradio's ChatInterface no longer makes its /chat endpoint on `fake_api_btn` (events_of) " + ARMOUR
    )


def test_gradio_block_functions_still_have_the_fields_the_armour_rewrites(built):
    _, _, events = built
    for field in (
        "fn",
        "name",
        "inputs",
        "outputs",
        "targets",
        "trigger_after",
        "queue",
        "show_progress",
        "show_progress_on",
        "cancels",
        "is_cancel_function",
        "_id",
    ):
        assert all(hasattr(block_fn, field) for block_fn in events), (
            f"Gradio's BlockFunction no longer has `{field}`: the armour reads or rewrites it on the "
            f"ChatInterface's events {ARMOUR}"
        )
    assert list(inspect.signature(events[0].get_config).parameters) == [], (
        "Gradio's BlockFunction.get_config() now takes arguments: the armour passes its result to `cancels=` "
        f"(ChatArmour.cancel_answers, dependency_of) {ARMOUR}"
    )
    assert list(inspect.signature(gr.events.Dependency).parameters)[:4] == ["trigger", "key_vals", "dep_index", "fn"], (
        "gradio.events.Dependency(trigger, key_vals, dep_index, fn) changed: the armour builds one for each "
        f"answer event, to chain the sidebar's refresh after it (dependency_of) {ARMOUR}"
    )


def test_gradio_sends_a_message_in_two_chained_steps(built):
    _, interface, events = built
    take = [block_fn for block_fn in events if block_fn.name == "_clear_and_save_textbox"]
    assert len(take) == 1 and take[0].inputs == [interface.textbox], (
        "Gradio's ChatInterface no longer starts a Send with `_clear_and_save_textbox(textbox)`: the armour "
        f"merges it with the next step into one request (ChatArmour._merge_take_and_show) {ARMOUR}"
    )
    shows = [
        block_fn
        for block_fn in events
        if block_fn.trigger_after == take[0]._id and block_fn.name == "_append_message_to_history"
    ]
    assert len(shows) == 1, (
        "Gradio's ChatInterface no longer chains `_append_message_to_history` after `_clear_and_save_textbox`: "
        f"the armour empties that second step (ChatArmour._merge_take_and_show) {ARMOUR}"
    )
    assert list(inspect.signature(interface._append_message_to_history).parameters)[:2] == ["message", "history"], (
        "Gradio's ChatInterface._append_message_to_history(message, history) changed: the armour's one-request "
        f"Send calls it (ChatArmour.take_message) {ARMOUR}"
    )


def test_gradio_names_every_answer_event_submit_fn(built):
    _, interface, events = built
    answers = [block_fn for block_fn in events if block_fn.name == "_submit_fn"]
    assert len(answers) >= 4, (
        "Gradio's ChatInterface no longer names its answer events (send, example, retry, edit) `_submit_fn`: "
        f"the armour cancels them on a switch of chats and chains the sidebar after them {ARMOUR}"
    )
    assert all(interface.chatbot in block_fn.outputs for block_fn in answers), (
        "Gradio's ChatInterface answer events no longer write the chatbot " + ARMOUR
    )


def test_gradio_swaps_send_and_stop_and_disables_the_box_with_lambdas_of_no_inputs(built):
    _, interface, events = built
    textbox = interface.textbox
    lambdas = [
        block_fn
        for block_fn in events
        if block_fn.outputs == [textbox] and not block_fn.inputs and block_fn.name == "<lambda>"
    ]
    swaps = [block_fn for block_fn in lambdas if inspect.iscoroutinefunction(block_fn.fn)]
    answers = {block_fn._id for block_fn in events if block_fn.name == "_submit_fn"}
    assert swaps and any(block_fn.trigger_after in answers for block_fn in swaps), (
        "Gradio's ChatInterface no longer swaps Send and Stop with `utils.async_lambda(lambda: Textbox(...))` "
        "events of no inputs chained after each answer (`_setup_stop_events`): the armour replaces them with "
        f"update dicts (ChatArmour._swap_send_and_stop) {ARMOUR}"
    )
    updates = [block_fn.fn() for block_fn in lambdas if not inspect.iscoroutinefunction(block_fn.fn)]
    assert {False, True} <= {update.get("interactive") for update in updates if isinstance(update, dict)}, (
        "Gradio's ChatInterface no longer disables and re-enables the box with `lambda: update(interactive=...)`: "
        f"the armour turns those into the Send/Stop swap so the box stays usable (ChatArmour._swap_send_and_stop) "
        f"{ARMOUR}"
    )
    assert hasattr(gr.ChatInterface, "_setup_stop_events") and hasattr(interface, "original_stop_btn"), (
        "Gradio's ChatInterface no longer has _setup_stop_events() and original_stop_btn: the armour's Send/Stop "
        f"swap stands in for what they wire (ChatArmour.show_stop) {ARMOUR}"
    )


def test_gradio_stops_an_answer_with_a_cancel_function_on_the_textboxs_stop(built):
    _, interface, events = built
    cancelling = [
        block_fn
        for block_fn in events
        if block_fn.is_cancel_function and (interface.textbox._id, "stop") in block_fn.targets
    ]
    answers = {block_fn._id for block_fn in events if block_fn.name == "_submit_fn"}
    assert len(cancelling) == 1 and cancelling[0].cancels and set(cancelling[0].cancels) <= answers, (
        "Gradio's ChatInterface Stop is no longer one cancel function on `textbox.stop` cancelling the answer "
        f"events: the armour empties its `cancels` and sends Stop by the app's route (ChatArmour._route_stop) "
        f"{ARMOUR}"
    )


def test_gradio_leaves_a_component_whose_skip_api_is_true_out_of_api_values():
    from gradio.component_meta import ComponentMeta

    assert isinstance(gr.Textbox, ComponentMeta), (
        "Gradio's components are no longer made by gradio.component_meta.ComponentMeta: the armour's "
        f"PageOnlyText replaces it to write no .pyi stub (_NoStubFile) {ARMOUR}"
    )
    assert isinstance(inspect.getattr_static(gr.components.Component, "skip_api"), property), (
        "Gradio's Component.skip_api is no longer a property: PageOnlyText overrides it to keep the stop "
        f"request out of the /chat endpoint's values {ARMOUR}"
    )
    with gr.Blocks() as page:
        hidden = PageOnlyText(visible="hidden")
        shown = gr.Textbox()
        gr.Button().click(lambda: ("a", "b"), None, [hidden, shown], api_name="both")
    api = page.get_api_info()
    returns = api["named_endpoints"]["/both"]["returns"]
    assert len(returns) == 1, (
        "Gradio now sends a component whose skip_api is true to API clients: the stop request would reach "
        f"them (PageOnlyText) {ARMOUR}"
    )


def test_gradio_reads_its_dashboard_settings_as_its_queue_is_created():
    with gr.Blocks() as page:
        gr.Textbox()
    gradio_armour.queue_without_dashboard(page, default_concurrency_limit=3)
    source = inspect.getsource(type(page._queue))
    for name in gradio_armour.QUEUE_WITHOUT_DASHBOARD:
        assert name in source, (
            f"Gradio's Queue no longer reads {name}: without it the queue keeps 10,000 event records and "
            f"summarises them with pandas after every event (queue_without_dashboard) {ARMOUR}"
        )
    assert page._queue.ANALYTICS_MAX_EVENTS == 1, (
        "Gradio's Queue no longer reads GRADIO_ANALYTICS_MAX_EVENTS as it is created (queue_without_dashboard) "
        + ARMOUR
    )
    assert not set(gradio_armour.QUEUE_WITHOUT_DASHBOARD) & set(os.environ)  # set for the queue's creation only


def test_gradio_still_lets_uvicorn_close_idle_connections_after_5_seconds_unless_told():
    from gradio.http_server import Server

    assert hasattr(Server, "__init__") and "config" in inspect.signature(Server.__init__).parameters, (
        "Gradio's http_server.Server is no longer built from a uvicorn Config: the armour raises "
        f"`demo.server.config.timeout_keep_alive` after launch (keep_connections_open) {ARMOUR}"
    )


def test_gradio_still_imports_matplotlib_around_every_update():
    from gradio.utils import MatplotlibBackendMananger

    assert "matplotlib" in inspect.getsource(MatplotlibBackendMananger), (
        "Gradio's MatplotlibBackendMananger no longer imports matplotlib around each update: the armour's "
        f"`sys.modules['matplotlib'] = None` can go (tune_for_many_streams) {ARMOUR}"
    )


# --- The setting ---------------------------------------------------------------------------------------


def test_the_armour_is_on_by_default_and_off_by_flag_or_environment():
    assert Settings().gradio_armour is True and parse_settings({}).gradio_armour is True
    assert parse_settings({"CHAT_GRADIO_ARMOUR": "off"}).gradio_armour is False
    assert parse_settings({}, ["--gradio-armour", "off"]).gradio_armour is False
    assert parse_settings({"CHAT_GRADIO_ARMOUR": "off"}, ["--gradio-armour", "on"]).gradio_armour is True


def tuned_process(armour: str) -> list[str]:
    """`server.run` in a fresh process with the server itself left out: is the process tuned afterwards?"""
    script = (
        "import gc, sys, types, server\n"
        "from chat.options import parse_settings\n"
        "before = (sys.getswitchinterval(), gc.get_freeze_count(), 'matplotlib' in sys.modules)\n"
        "server.build_app = lambda settings: (None, types.SimpleNamespace(journal=None))\n"
        "server.serve = lambda *args, **kwargs: None\n"
        "server.shut_down = lambda *args: None\n"
        "server.wait_for_stop_signal = lambda: types.SimpleNamespace(name='TEST')\n"
        f"server.run(parse_settings({{}}, ['--gradio-armour', '{armour}', '--recover-every', '0']))\n"
        "after = (sys.getswitchinterval(), gc.get_freeze_count(), 'matplotlib' in sys.modules)\n"
        "print(after[0] != before[0], after[1] != before[1], after[2] != before[2])\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    return ran.stdout.split() or [ran.stderr[-2000:]]


def test_the_process_is_tuned_only_with_the_armour_on():
    """sys.setswitchinterval, gc.freeze and the absent matplotlib are applied by `server.run` only when on."""
    on = tuned_process("on")
    assert on[:2] == ["True", "True"], on
    assert tuned_process("off") == ["False", "False", "False"]


# --- The app without the armour ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stock_app():
    settings = Settings(demo_first_token_delay=0.05, demo_tokens_per_second=80, warm_up=False, gradio_armour=False)
    with running_app(settings) as running:
        yield running


def test_without_the_armour_the_page_is_a_stock_chat_interface(stock_app):
    demo = stock_app.demo
    blocks = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert "stop-request" not in blocks and "stop-fallback" not in blocks
    textbox = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "prompt")
    answers = {fn._id for fn in demo.fns.values() if fn.name == "_submit_fn"}
    cancel = [fn for fn in demo.fns.values() if fn.is_cancel_function and (textbox._id, "stop") in fn.targets]
    assert len(cancel) == 1 and cancel[0].cancels and set(cancel[0].cancels) <= answers  # Gradio's Stop cancels
    assert any(fn.name == "_clear_and_save_textbox" for fn in demo.fns.values())  # Gradio's own Send
    assert demo.server.config.timeout_keep_alive == 5  # uvicorn's default, as Gradio starts it
    assert demo._queue.ANALYTICS_MAX_EVENTS == 10_000  # Gradio's default: the dashboard's records are kept


def test_without_the_armour_an_answer_streams_and_gradios_stop_keeps_the_partial_labelled_stopped(stock_app):
    from gradio_client import Client

    owner = visitor_token("stock")
    client = Client(stock_app.url, verbose=False)
    chat, usage, _ = client.predict("My name is Ana.", "demo", owner, api_name="/chat")
    assert "Ana" in chat and "**demo**" in usage
    job = client.submit("count to 5000", "demo", owner, api_name="/chat")
    while len(job.outputs()) < 3:
        assert not job.done(), "the stream ended before it could be stopped"
        time.sleep(0.02)
    job.cancel()  # what Gradio's own Stop does: cancel the event running the answer

    async def stored():
        (record,) = await stock_app.service.store.list_conversations(scope=owner)
        return await stock_app.service.store.load(record.conversation_id, scope=owner)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        conversation = asyncio.run(stored())
        if len(conversation.messages) == 4:
            break
        time.sleep(0.05)
    answer = conversation.messages[-1]
    assert answer.state == "interrupted"
    bubble = to_bubbles(conversation.messages)[-1]["content"]
    assert bubble.startswith("1 2 3") and "stopped" in bubble and "5000." not in bubble
