"""The UI's wiring and its thin handlers, without a browser."""

from __future__ import annotations

import asyncio
import inspect
import json
import tempfile
from datetime import UTC, datetime
from types import SimpleNamespace

import gradio as gr
import pytest

from chat.config import Settings
from chat.demo_model import DemoPace
from chat.identity import VisitorCookie
from chat.models import ModelResolver
from chat.recipe_runs import RecipeService
from chat.render import to_bubbles
from chat.sessions import Sessions, SessionSummary
from chat.wings.handoff import HandoffService
from chat.wings.mcp_servers import McpServers
from chat.wings.stream_inspector import StreamInspector
from tests.apps import visitor_token
from tests.scripted import chat_service, context_of
from ui import ChatTab, ServicesShown, SessionHandlers, Visitors, build_demo, launch_options
from ui.chat_tab import composer_script
from ui.sidebar import chat_list_html

pytestmark = pytest.mark.anyio

ALICE, BOB, MALLORY, OWNER = (visitor_token(name) for name in ("alice", "bob", "mallory", "owner"))
COOKIES = VisitorCookie(b"test-secret")


@pytest.fixture
def tab(store) -> ChatTab:
    settings = Settings(extra_models=("openai-chat:gpt-4o-mini",))
    service = chat_service(store, ModelResolver(settings, DemoPace.instant()), max_prompt_chars=50)
    return ChatTab(service, Visitors(COOKIES))


@pytest.fixture
def demo(tab) -> gr.Blocks:
    service = tab.service
    shown = ServicesShown(
        chat=service,
        sessions=Sessions(service.store),
        recipes=RecipeService(service.store, service.models),
        handoffs=HandoffService(service.store, service.models),
        inspector=StreamInspector(service.agent, service.models),
        visitor_cookie=COOKIES,
        context=context_of(service),
        mcp_servers=McpServers(),
    )
    return build_demo(shown, Settings())


def page(session: str = "page-1") -> SimpleNamespace:
    return SimpleNamespace(session_hash=session, query_params={})


async def answered(tab: ChatTab, prompt: str, owner: str, conversation_id: str, history=()) -> list[tuple]:
    return [out async for out in tab.answer(prompt, list(history), "demo", owner, conversation_id, None, page())]


def test_the_chat_is_a_chat_interface_streaming_many_visitors_at_once(demo):
    chat_events = [fn for fn in demo.fns.values() if fn.api_name == "chat"]
    assert len(chat_events) == 1
    assert chat_events[0].concurrency_limit >= 50
    assert launch_options(Settings())["max_threads"] > chat_events[0].concurrency_limit
    assert demo.api_open is False  # nothing bypasses the queue
    # The endpoint is a gr.ChatInterface's, and its fn is the chat tab's generator.
    assert chat_events[0].fn.__wrapped__.__func__ is ChatTab.answer
    owners = [cell.cell_contents for cell in chat_events[0].fn.__closure__ if hasattr(cell.cell_contents, "__self__")]
    assert any(isinstance(bound.__self__, gr.ChatInterface) for bound in owners)


def test_no_answer_disables_or_clears_the_box_and_switching_chats_stops_the_answer_first(demo):
    textbox = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "prompt")
    for fn in demo.fns.values():
        if fn.outputs == [textbox] and not fn.inputs and fn.fn is not None and not inspect.iscoroutinefunction(fn.fn):
            update = fn.fn()
            assert "value" not in (update if isinstance(update, dict) else {}), fn.name
            assert getattr(update, "interactive", None) is not False and (
                not isinstance(update, dict) or update.get("interactive") is not False
            ), fn.name
    answers = {fn._id for fn in demo.fns.values() if fn.name == "_submit_fn"}
    assert len(answers) >= 4  # send, example, retry, edit
    sidebar = {b._id for b in demo.blocks.values() if getattr(b, "elem_id", None) in ("sessions", "new-chat")}
    switching = [fn for fn in demo.fns.values() if fn.js and {t for t, _ in fn.targets} & sidebar and fn.fn]
    # New chat, a row, deleting the chat shown: each stops the answer by its Stop and waits for its last update
    # before the chat picked is shown (ui/layout.py), and a followed answer (after a reload) is cancelled.
    assert len(switching) == 3 and all("stop-button" in fn.js for fn in switching)
    cancelling = [fn for fn in demo.fns.values() if fn.is_cancel_function and {t for t, _ in fn.targets} & sidebar]
    followed = {fn._id for fn in demo.fns.values() if fn.name == "follow_answer"}
    assert cancelling and all(set(fn.cancels) == followed for fn in cancelling)


def test_the_model_menu_marks_models_that_cannot_run_in_one_sentence(tab, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    side = SessionHandlers(Sessions(tab.service.store), tab.service, tab.visitors, context_of(tab.service))
    menu = {value: label for label, value in side.model_menu()}
    assert menu["demo"] == "demo"
    assert (
        menu["openai-chat:gpt-4o-mini"]
        == "openai-chat:gpt-4o-mini (unavailable: its API key is not configured on this server.)"
    )
    assert side.model_notice("demo") == ""
    notice = side.model_notice("openai-chat:gpt-4o-mini")
    assert "API key" in notice and "Agent(" not in notice and "restart" not in notice


@pytest.mark.parametrize("prompt", ["", "   ", "y" * 51, "长" * 51])
async def test_a_refused_prompt_gets_the_reason_and_stores_nothing(tab, prompt):
    # The page refuses these before sending (composer_script); an API caller gets the same reason.
    bubble, *_ = (await answered(tab, prompt, OWNER, "c9"))[-1]
    assert bubble.startswith("⚠️") and "CHAT_" not in bubble  # a visitor cannot change the server's settings
    assert await tab.service.store.load("c9", scope=OWNER) is None


def test_the_page_refuses_over_the_same_limit_as_the_server(tab):
    script = composer_script(tab.service.max_prompt_chars)
    assert "const limit = 50;" in script and "MAX_PROMPT_CHARS" not in script


async def test_the_answer_streams_into_one_bubble_and_is_stored(tab):
    outputs = await answered(tab, "My name is Ann.", OWNER, "c1")
    assert len(outputs) >= 2
    bubble, usage, _context, later_id, later_stop = outputs[-1]
    assert "Ann" in bubble and "**demo**" in usage
    assert outputs[0][3] == "c1" and later_id == gr.skip()  # the chat is named once, by the first update
    first_stop = json.loads(outputs[0][4])  # and the page told how to stop this run (ui/gradio_armour.py)
    assert first_stop["conversation_id"] == "c1" and len(first_stop["run"]) >= 8
    assert later_stop == outputs[0][4]  # every update names the same run (a skip would cost Gradio a rebuild)
    assert len(await tab.service.edits.load_messages(OWNER, "c1")) == 2


async def test_a_failure_is_named_once_in_the_bubble_and_keeps_the_prompt_in_the_chat(tab):
    outputs = await answered(tab, "hi", OWNER, "c1") + [
        out async for out in tab.answer("hi", [], "openai-chat:gpt-4o-mini", OWNER, "c1", None, page())
    ]
    bubble, usage, *_ = outputs[-1]
    assert bubble.startswith("⚠️") and "cannot answer here" in bubble and "Agent(" not in bubble
    assert usage == ""


async def test_editing_an_earlier_message_answers_it_again_and_keeps_the_rest_as_a_branch(tab):
    history = []
    for prompt in ("Je m'appelle Zoé.", "count to 4", "How old am I?"):
        *_, (bubble, *_) = await answered(tab, prompt, OWNER, "c1", history)
        history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": bubble}]
    # The page cut the chat at the second prompt and sends the edited text with what stays above it.
    *_, (bubble, *_) = await answered(tab, "count to 2", OWNER, "c1", history[:2])
    assert bubble == "1 2."
    stored = [b["content"] for b in to_bubbles(await tab.service.edits.load_messages(OWNER, "c1"))]
    assert stored == [history[0]["content"], history[1]["content"], "count to 2", "1 2."]


async def test_undo_takes_the_last_exchange_out_of_the_store(tab):
    history = []
    for prompt in ("first ✓", "second ✓"):
        *_, (bubble, *_) = await answered(tab, prompt, OWNER, "c1", history)
        history += [
            {"role": "user", "content": [{"type": "text", "text": prompt}]},
            {"role": "assistant", "content": bubble},
        ]
    await tab.undo(OWNER, "c1", history, page())
    assert [b["content"] for b in to_bubbles(await tab.service.edits.load_messages(OWNER, "c1"))][0::2] == ["first ✓"]
    await tab.undo(MALLORY, "c1", history[:2], page())  # someone else's: nothing happens
    assert len(await tab.service.edits.load_messages(OWNER, "c1")) == 2


async def test_a_chat_whose_first_answer_was_stopped_is_titled_after_its_prompt(tab):
    updates = tab.answer("count to 5000 please", [], "demo", OWNER, "c9", None, page())
    await updates.__anext__()
    await tab.stop(OWNER, "c9", page())
    *_, (bubble, usage, *_) = [out async for out in updates]
    assert "stopped" in bubble and "stopped" in usage
    assert (await tab.service.store.session("c9", OWNER)).title == "count to 5000 please"


@pytest.fixture
def slow_tab(store) -> ChatTab:
    service = chat_service(store, ModelResolver(Settings(), DemoPace(first_token_delay=0, tokens_per_second=200)))
    return ChatTab(service, Visitors(COOKIES))


async def gradio_streaming(updates, cancelled: asyncio.Event) -> None:
    """What Gradio's queue does with the ChatInterface's generator: take an update, send it (this is where a
    cancel that misses the generator lands), and close the generator when the event ends, however it ends."""
    try:
        await anext(updates)
        cancelled.set()
        await asyncio.sleep(60)  # sending the update to the page
    finally:
        await updates.aclose()


async def test_gradios_stop_stops_the_answer_even_when_it_lands_between_two_updates(slow_tab):
    updates = slow_tab.answer("count to 4000 in words", [], "demo", OWNER, "c7", None, page())
    sent = asyncio.Event()
    event = asyncio.create_task(gradio_streaming(updates, sent))
    await sent.wait()
    event.cancel()  # Gradio's /cancel: it cancels the event's task, which then closes the generator
    await asyncio.gather(event, return_exceptions=True)
    await slow_tab.service.active.settle(OWNER, "c7")
    stored = to_bubbles(await slow_tab.service.edits.load_messages(OWNER, "c7"))
    assert "stopped" in stored[-1]["content"] and "4000" not in stored[-1]["content"]


async def test_a_page_that_leaves_without_a_cancel_lets_the_answer_run_on_to_its_end(slow_tab):
    updates = slow_tab.answer("count to 60", [], "demo", OWNER, "c8", None, page())
    await anext(updates)
    await updates.aclose()  # the page reloaded: Gradio drops the event and closes the generator, no cancel
    run = slow_tab.service.live_turn(OWNER, "c8")
    assert run is not None
    await run.ended.wait()
    stored = to_bubbles(await slow_tab.service.edits.load_messages(OWNER, "c8"))
    assert "60" in stored[-1]["content"] and "stopped" not in stored[-1]["content"]


async def test_the_address_reopens_only_the_owners_chat(tab):
    side = SessionHandlers(Sessions(tab.service.store), tab.service, tab.visitors, context_of(tab.service))
    await answered(tab, "Ein Geheimnis", ALICE, "c1")
    shown, conversation_id, _policy, listed = await side.open_from_url(
        ALICE, SimpleNamespace(session_hash="s", query_params={"c": "c1"})
    )
    assert conversation_id == "c1" and shown[0]["content"] == "Ein Geheimnis" and 'aria-current="page"' in listed
    for token, wanted in ((MALLORY, "c1"), (ALICE, "no-such-chat"), (ALICE, None)):
        query = {"c": wanted} if wanted else {}
        shown, conversation_id, _policy, listed = await side.open_from_url(
            token, SimpleNamespace(session_hash="s", query_params=query)
        )
        assert shown == [] and conversation_id not in ("c1", None)
        assert ("Ein Geheimnis" in listed) is (token == ALICE) and "aria-current" not in listed.split("</template>")[1]


@pytest.fixture
def side(tab):
    return SessionHandlers(Sessions(tab.service.store), tab.service, tab.visitors, context_of(tab.service))


async def test_switching_to_someone_elses_conversation_shows_nothing(tab, side):
    await answered(tab, "secret", ALICE, "c1")
    chat, _state, conversation_id, _usage, notice, _policy, listed = await side.switch(MALLORY, "c1", page())
    assert chat == [] and conversation_id != "c1" and "does not exist" in notice and "secret" not in listed
    chat, state, conversation_id, *_, listed = await side.switch(ALICE, "c1", page())
    assert conversation_id == "c1" and chat[0]["content"] == "secret" and chat == state
    assert "secret" in listed


async def test_an_export_goes_to_the_browser_and_its_import_reads_back(tab, side, tmp_path):
    await answered(tab, "Remember 42", ALICE, "c1")
    payload, notice = await side.export_json(ALICE, "c1", page())
    assert payload["filename"] == "Remember-42.json" and payload["type"] == "application/json"
    assert notice == "Downloading Remember-42.json"
    saved = tmp_path / payload["filename"]
    saved.write_text(payload["text"], encoding="utf-8")
    chat, _state, new_id, _listed, notice = await side.import_file(BOB, str(saved), page())
    assert new_id != "c1" and chat[0]["content"] == "Remember 42" and "Imported 2 messages" in notice
    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": "nope"}')
    *_, notice = await side.import_file(BOB, str(bad), page())
    assert notice.startswith("⚠️") and "Nothing was imported" in notice
    assert len(await side.sessions.list(BOB)) == 1


async def test_a_damaged_chat_is_deleted_from_the_sidebar_which_says_so_and_keeps_the_others(tab, side, store):
    await answered(tab, "Tagebuch", ALICE, "harmed")
    await answered(tab, "Einkaufsliste", ALICE, "kept")
    store.db.execute("UPDATE conversations SET record_json = 'not json' WHERE id = 'harmed'")
    chat, _state, _id, _usage, notice, *_ = await side.switch(ALICE, "harmed", page())
    assert "could not be read" in notice and "you can delete this one" in notice
    chat, _state, shown, _usage, listed, _results, _search, notice = await side.delete(
        ALICE, "harmed", picked({"id": "harmed"}), page()
    )
    assert notice == "Deleted." and chat == [] and shown not in (None, "harmed")  # it was shown: a new chat
    assert 'data-id="kept"' in listed and 'data-id="harmed"' not in listed
    assert (await side.sessions.open(ALICE, "kept")).bubbles[0]["content"] == "Einkaufsliste"


async def test_an_import_says_in_the_notice_what_it_left_out(side, tmp_path):
    call = {
        "part_kind": "tool-call",
        "tool_name": "delete_my_conversation",
        "args": {"title": "x"},
        "tool_call_id": "d",
    }
    messages = [
        {"kind": "request", "parts": [{"part_kind": "user-prompt", "content": "Hi"}]},
        {
            "kind": "response",
            "parts": [{"part_kind": "text", "content": "Approve?"}, call],
            "metadata": {"awaiting_approval": ["d"]},
        },
    ]
    crafted = tmp_path / "crafted.json"
    crafted.write_text(json.dumps(messages), encoding="utf-8")
    chat, *_, notice = await side.import_file(BOB, str(crafted), page())
    assert notice == (
        "Imported 2 messages. Not imported, since nothing from a file runs here: the file's action waiting for your"
        " approval (`delete_my_conversation`)."
    )
    assert [bubble["content"] for bubble in chat] == ["Hi", "Approve?"]  # no question, no step


async def test_an_export_writes_nothing_on_the_server_and_gives_another_visitor_nothing(
    tab, side, tmp_path, monkeypatch
):
    await answered(tab, "Passwort für das WLAN: Zugspitze-2962", ALICE, "c1")
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    payload, _ = await side.export_markdown(ALICE, "c1", page())
    assert "Zugspitze-2962" in payload["text"]
    assert list(temporary.iterdir()) == []
    payload, notice = await side.export_markdown(MALLORY, "c1", page())
    assert payload == gr.skip() and "does not exist" in notice


async def test_an_import_bigger_than_the_limit_is_refused_before_it_is_read(tab, side, tmp_path):
    await answered(tab, "Ahoj, jak se máš?", ALICE, "c1")
    payload, _ = await side.export_json(ALICE, "c1", page())
    padded = tmp_path / "padded.json"
    padded.write_text(payload["text"] + " " * side.sessions.max_import_bytes, encoding="utf-8")
    *_, notice = await side.import_file(BOB, str(padded), page())
    assert notice.startswith("⚠️") and "at most" in notice and "Nothing was imported" in notice
    assert await side.sessions.list(BOB) == []


async def test_a_rename_that_had_to_be_shortened_or_cleaned_says_so(tab, side):
    await answered(tab, "Reiseplan", ALICE, "c1")

    async def rename(title: str) -> tuple[str, str]:
        _, notice = await side.rename(ALICE, "c2", picked({"id": "c1", "title": title}), page())
        return (await side.sessions.summary(ALICE, "c1")).title, notice

    assert await rename("  Reise   nach Köln  ") == ("Reise nach Köln", "Renamed.")
    long_title = "Ein sehr langer Titel über die Reise nach Köln, Bonn und Düsseldorf im Frühling mit Freunden"
    kept, notice = await rename(long_title)
    assert len(kept) == 80 and kept.endswith("…") and "at most 80" in notice
    kept, notice = await rename("Budget\u202e2027")
    assert kept == "Budget2027" and "shortened to fit" in notice
    assert [session.title for session in await side.sessions.list(ALICE)] == ["Budget2027"]


async def test_an_image_from_elsewhere_shows_as_a_link_while_streaming_and_when_reopened(tab, side):
    prompt = "![Karte](https://maps.example.de/k.png?q=1)"
    outputs = await answered(tab, prompt, ALICE, "c1")
    assert "[🖼 Karte](https://maps.example.de/k.png?q=1)" in outputs[-1][0] and "![Karte]" not in outputs[-1][0]
    chat, *_ = await side.switch(ALICE, "c1", page())
    assert [bubble["content"].startswith("[🖼 Karte]") for bubble in chat] == [True, False]
    assert "![Karte]" not in chat[1]["content"] and "[🖼 Karte]" in chat[1]["content"]
    payload, _ = await side.export_markdown(ALICE, "c1", page())
    assert "![Karte](https://maps.example.de/k.png?q=1)" in payload["text"]


async def test_markdown_export_is_named_after_the_title(tab, side):
    await answered(tab, "Plan a picnic", ALICE, "c1")
    payload, _ = await side.export_markdown(ALICE, "c1", page())
    assert payload["filename"] == "Plan-a-picnic.md" and payload["type"] == "text/markdown"
    assert payload["text"].startswith("# Plan a picnic")


def test_the_database_lives_in_data_or_in_a_spaces_persistent_storage(tmp_path):
    from chat.options import EPHEMERAL_SPACE_NOTICE, default_db_path, parse_settings

    assert default_db_path({}) == ("data/chat.db", None)
    persistent = tmp_path / "data"
    persistent.mkdir()
    assert default_db_path({"SPACE_ID": "me/chat"}, persistent) == (str(persistent / "chat.db"), None)
    assert default_db_path({"SPACE_ID": "me/chat"}, tmp_path / "missing") == ("data/chat.db", EPHEMERAL_SPACE_NOTICE)
    assert parse_settings({"CHAT_DB": "/tmp/x.db"}).db_path == "/tmp/x.db"
    assert parse_settings({}, ["--db", "elsewhere.db"]).db_path == "elsewhere.db"


def test_the_visitor_is_the_signed_cookie_an_api_token_or_one_per_session_without_either():
    visitors = Visitors(COOKIES)
    issued, cookie = COOKIES.issue()
    with_cookie = SimpleNamespace(session_hash="s-1", cookies={"chat_visitor": cookie}, query_params={})
    assert visitors.owner("", with_cookie, None) == issued
    forged = SimpleNamespace(session_hash="s-1", cookies={"chat_visitor": issued + ".bm90LXNpZ25lZA"})
    assert visitors.owner("", forged, None) != issued  # a cookie this server did not sign names no one
    assert visitors.owner(ALICE, with_cookie, None) == ALICE  # an API caller's own token wins
    assert visitors.owner("", with_cookie, SimpleNamespace(username="zoe")) == "hf:zoe"
    # Cookies refused (an embedding iframe): one visitor per page session, never shared between sessions.
    first = visitors.owner("", page("session-1"), None)
    assert visitors.owner(None, page("session-1"), None) == first and len(first) >= 22
    assert visitors.owner("", page("session-2"), None) != first


@pytest.mark.parametrize("token", ["hf:alice", "short", "has spaces in it and is long", "x" * 129, "ünïcödé-" * 4])
def test_a_malformed_owner_token_is_refused_with_what_to_send_instead(token):
    with pytest.raises(gr.Error, match="POST /api/session"):
        Visitors(COOKIES).owner(token, page(), None)


async def test_a_picked_context_policy_is_remembered_for_that_conversation_only(tab, side):
    await answered(tab, "hello", ALICE, "c1")
    await side.remember_policy(ALICE, "c1", "summary", page())
    await side.remember_policy(MALLORY, "c1", "full", page())  # someone else's conversation: ignored
    *_, policy, _ = await side.switch(ALICE, "c1", page())
    assert policy == "summary"


async def test_a_refresh_after_a_turn_names_a_new_chat_and_marks_the_chat_shown(tab, side):
    await answered(tab, "Koch mir was", ALICE, "c1")
    listed = await side.refresh(ALICE, "c1", page())
    assert "Koch mir was" in listed and 'data-id="c1" aria-current="page"' in listed
    listed = await side.refresh(ALICE, "c2", page())  # landed after a switch to another chat
    assert "Koch mir was" in listed and "aria-current" not in listed.split("</template>")[1]


def test_the_chat_list_is_text_under_date_headings_never_markup():
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    sneaky = SessionSummary('c"1', "<img src=x onerror=alert(1)> & co", now, now, None)
    listed = chat_list_html([("Today", [sneaky])], 'c"1')
    assert "<img" not in listed and "&lt;img src=x onerror=alert(1)&gt; &amp; co" in listed
    assert 'data-id="c&quot;1" aria-current="page"' in listed and '<h3 class="chat-group">Today</h3>' in listed


def picked(data: dict) -> gr.EventData:
    """What the chat list's page script sends with an event."""
    return gr.EventData(None, data)
