"""The AG-UI route (`/api/ag-ui`) on the real server, every event checked against the `ag-ui-protocol` types;
a thread started here goes on over the Vercel AI route and is in the visitor's sidebar."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from ag_ui.core import Event, EventType
from pydantic import TypeAdapter

from tests.test_vercel_ai import (
    answer_of,
    chat_request,
    chunks_of,
    demo_app,
    new_chat_id,
    new_owner,
    read_then_leave,
    sessions_of,
    stopped_answer,
    stored,
    stored_id,
)

EVENTS = TypeAdapter(Event)


@pytest.fixture(scope="module")
def app():
    with demo_app() as served:
        yield served


def run_input(thread_id: str, *texts: str, **forwarded) -> dict:
    """AG-UI's RunAgentInput for a thread showing `texts`, alternately the user's and the assistant's."""
    roles = ["user", "assistant"]
    messages = [{"id": secrets.token_hex(6), "role": roles[i % 2], "content": text} for i, text in enumerate(texts)]
    return {
        "threadId": thread_id,
        "runId": secrets.token_hex(8),
        "messages": messages,
        "state": None,
        "tools": [],
        "context": [],
        "forwardedProps": forwarded,
    }


def run(app, owner: str, body: dict) -> httpx.Response:
    return httpx.post(f"{app.url}api/ag-ui", json=body, headers={"x-chat-owner": owner}, timeout=60)


def events_of(body: str) -> list:
    """Every event, validated as the protocol's own types say (an unknown or malformed one fails here)."""
    lines = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]
    return [EVENTS.validate_json(line) for line in lines]


def text_of(events: list) -> str:
    return "".join(event.delta for event in events if event.type == EventType.TEXT_MESSAGE_CONTENT)


def test_a_run_streams_protocol_events_and_lands_in_the_sidebar(app):
    owner, thread = new_owner(), new_chat_id()
    body = run_input(thread, "My name is Kwame, I am 29")
    response = run(app, owner, body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = events_of(response.text)
    kinds = [event.type for event in events]
    assert kinds[:2] == [EventType.RUN_STARTED, EventType.TEXT_MESSAGE_START]
    assert kinds[-2:] == [EventType.TEXT_MESSAGE_END, EventType.RUN_FINISHED]
    assert events[0].thread_id == events[-1].thread_id == thread and events[-1].run_id == body["runId"]
    assert events[-1].result["status"] == "completed" and events[-1].outcome.type == "success"
    assert "Kwame" in text_of(events)
    assert {event.message_id for event in events if hasattr(event, "delta")} == {events[1].message_id}
    assert [(s.conversation_id, s.title) for s in sessions_of(app, owner)] == [
        (stored_id(app, owner, thread), "My name is Kwame, I am 29")
    ]


def test_a_tool_call_arrives_as_tool_call_events_before_the_answer(app):
    events = events_of(run(app, new_owner(), run_input(new_chat_id(), "Quanto fa 37 * 6?")).text)
    kinds = [event.type for event in events]
    start = kinds.index(EventType.TOOL_CALL_START)
    assert kinds[start : start + 4] == [
        EventType.TOOL_CALL_START,
        EventType.TOOL_CALL_ARGS,
        EventType.TOOL_CALL_END,
        EventType.TOOL_CALL_RESULT,
    ]
    call, arguments, _, result = events[start : start + 4]
    assert call.tool_call_name == "calculate" and json.loads(arguments.delta) == {"expression": "37 * 6"}
    assert result.tool_call_id == call.tool_call_id and result.content == "222"
    assert kinds.index(EventType.TOOL_CALL_RESULT) < kinds.index(EventType.TEXT_MESSAGE_START)
    assert "222" in text_of(events)
    # The call is a message of its own, before the answer's: an in-order client shows call, result, answer.
    answer = next(event for event in events if event.type == EventType.TEXT_MESSAGE_START)
    assert call.parent_message_id and call.parent_message_id != answer.message_id


def test_a_thread_goes_on_over_the_vercel_ai_route(app):
    owner, thread = new_owner(), new_chat_id()
    first = text_of(events_of(run(app, owner, run_input(thread, "我叫周敏，今年56岁。")).text))
    over_vercel = ask_vercel(app, owner, chat_request(thread, "我叫周敏，今年56岁。", first, "我今年几岁？"))
    assert "56" in answer_of(chunks_of(over_vercel.text))
    again = events_of(
        run(app, owner, run_input(thread, "我叫周敏，今年56岁。", first, "我今年几岁？", "…", "我叫什么？")).text
    )
    assert "周敏" in text_of(again)
    assert len(stored(app, owner, thread)) == 6


def ask_vercel(app, owner: str, body: dict) -> httpx.Response:
    return httpx.post(f"{app.url}api/vercel-ai", json=body, headers={"x-chat-owner": owner}, timeout=60)


def test_refusals_are_statuses_with_a_sentence_and_nobody_reaches_another_thread(app):
    owner, thread = new_owner(), new_chat_id()
    run(app, owner, run_input(thread, "My name is Siobhán"))
    stranger = run(app, new_owner(), run_input(thread, "what is my name?"))  # the same threadId is theirs alone
    assert stranger.status_code == 200 and "Siobhán" not in stranger.text
    cases = {
        "no owner": (httpx.post(f"{app.url}api/ag-ui", json=run_input(new_chat_id(), "hi")), 401),
        "not AG-UI": (run(app, owner, {"messages": "hi"}), 400),
        "assistant last": (run(app, owner, run_input(new_chat_id(), "hi", "hello!")), 400),
        "unknown model": (run(app, owner, run_input(new_chat_id(), "hi", model="o9-max")), 400),
        "too long": (run(app, owner, run_input(new_chat_id(), "ж" * 50_000)), 413),
    }
    for case, (response, status) in cases.items():
        assert response.status_code == status, case
        assert response.json()["error"] and "Traceback" not in response.text, case
    assert len(stored(app, owner, thread)) == 2


def test_an_aborted_run_stops_the_answer_and_keeps_its_part(app):
    owner, thread = new_owner(), new_chat_id()
    seen = read_then_leave(app, "api/ag-ui", owner, run_input(thread, "count to 6000"), "TEXT_MESSAGE_CONTENT", 40)
    assert stopped_answer(app, owner, thread).parts[0].content.startswith(seen)


def test_a_recipe_is_agent_state_a_snapshot_then_json_patch_deltas(app):
    import jsonpatch

    from tests.test_vercel_ai import stored_recipe

    owner = new_owner()
    body = run_input(new_chat_id(), "Käsespätzle")
    response = httpx.post(f"{app.url}api/ag-ui/recipe", json=body, headers={"x-chat-owner": owner}, timeout=60)
    events = events_of(response.text)
    kinds = [event.type for event in events]
    assert kinds[:2] == [EventType.RUN_STARTED, EventType.STATE_SNAPSHOT] and kinds[-1] == EventType.RUN_FINISHED
    assert kinds.count(EventType.STATE_DELTA) > 2 and set(kinds[2:-1]) == {EventType.STATE_DELTA}
    state = events[1].snapshot  # what an AG-UI client holds: the snapshot, each delta applied in turn
    for event in events[2:-1]:
        state = jsonpatch.apply_patch(state, event.model_dump(mode="json", by_alias=True)["delta"])
    assert state["status"] == "completed" and state["recipeId"] == events[-1].result["recipeId"]
    assert state["recipe"] == stored_recipe(app, owner, state["recipeId"]).recipe.model_dump(mode="json")
    assert state["recipe"]["steps"] and state["recipe"]["ingredients"]


def test_two_visitors_who_give_a_chat_the_same_name_each_get_their_own_on_every_route(app):
    """Names a client chooses (AG-UI's threadId, the AI SDK's id, /v1's X-Conversation-Id) are the owner's
    alone: nobody can take one before another, nor learn whether someone uses it."""
    amaru, bettina = new_owner(), new_owner()

    def on_v1(owner: str, name: str, *shown: str) -> str:  # the stored conversation is the history
        headers = {"Authorization": f"Bearer sk-{secrets.token_urlsafe(12)}", "x-chat-owner": owner}
        headers["X-Conversation-Id"] = name
        body = {"model": "demo", "messages": [{"role": "user", "content": shown[-1]}]}
        answered = httpx.post(f"{app.url}v1/chat/completions", json=body, headers=headers, timeout=60)
        assert answered.status_code == 200, answered.text
        return answered.json()["choices"][0]["message"]["content"]

    def on_ag_ui(owner: str, name: str, *shown: str) -> str:  # the client sends the whole thread
        answered = run(app, owner, run_input(name, *shown))
        assert answered.status_code == 200, answered.text
        return "".join(getattr(e, "delta", "") for e in events_of(answered.text) if e.type == "TEXT_MESSAGE_CONTENT")

    def on_vercel(owner: str, name: str, *shown: str) -> str:
        answered = ask_vercel(app, owner, chat_request(name, *shown))
        assert answered.status_code == 200, answered.text
        return answer_of(chunks_of(answered.text))

    for route, name in [(on_v1, "mi-primer-chat"), (on_ag_ui, "thread.1"), (on_vercel, "Chat_de")]:
        for owner, told in [(amaru, "My name is Amaru"), (bettina, "I am Bettina")]:
            first = route(owner, name, told)
            assert told.split()[-1] in route(owner, name, told, first, "what is my name?")
            assert len(stored(app, owner, name)) == 4
        assert stored_id(app, amaru, name) != stored_id(app, bettina, name)
    # A name someone uses reads exactly like one nobody uses.
    used = httpx.get(f"{app.url}api/vercel-ai/Chat_de", headers={"x-chat-owner": new_owner()})
    unused = httpx.get(f"{app.url}api/vercel-ai/never-used-7", headers={"x-chat-owner": new_owner()})
    assert used.status_code == unused.status_code == 404 and used.text == unused.text
