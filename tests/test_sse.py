"""The SSE chat API: framing, errors, ownership, Stop, and a client that drops mid-answer and resumes."""

from __future__ import annotations

import contextlib
import json
import re
import time

import httpx
import pytest
from fastapi import FastAPI
from pydantic_ai.exceptions import ModelServerError
from pydantic_ai.models.function import FunctionModel

from chat.config import Settings
from chat.demo_model import DemoPace
from chat.identity import VisitorCookie
from chat.models import ModelResolver
from server import run_to_completion
from tests.apps import running_app, visitor_token
from tests.scripted import ScriptedResolver, chat_service, context_of
from web.sse import ChatStreamAPI, sse_event

pytestmark = pytest.mark.anyio

# One visitor per test, so no test sees another's conversations or limits.
ALICE, BOB, INES, ANYONE, LEAVER, QUARTET, SOMEONE_ELSE, TWO_CLIENTS, GREEDY, SCRIPTED, ANOTHER = map(
    visitor_token,
    ["alice", "bob", "ines", "a", "leaver", "quartet", "someone", "two", "greedy", "scripted", "another"],
)


def parse(body: str) -> list[tuple[str, str]]:
    """SSE events as (event, data) pairs, as the WHATWG spec's parser (and so EventSource) reads them."""
    return [(name, data) for name, data, _, _ in parse_fields(body)]


def parse_fields(body: str) -> list[tuple[str, str, str | None, int | None]]:
    """(event, data, id, retry) per dispatched event. Lines end at CRLF, CR or LF alike, as the spec says."""
    events: list[tuple[str, str, str | None, int | None]] = []
    name, data, last_id, retry = "", [], None, None
    for line in re.split(r"\r\n|\r|\n", body):
        if line == "":
            if data:
                events.append((name or "message", "\n".join(data), last_id, retry))
            name, data, retry = "", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            last_id = value
        elif field == "retry" and value.isdigit():
            retry = int(value)
    return events


@pytest.fixture
def client(store):
    async def poem(messages, info):
        for piece in ["line one\nline two\n", "第三行 ", "\ud83d", "\ude00", "\n\nend"]:
            yield piece

    async def overloaded(messages, info):
        yield "Let me th"
        raise ModelServerError("overloaded-model", "overloaded", body={"error": "internal detail 7f3a"})

    resolver = ScriptedResolver(
        poem=FunctionModel(stream_function=poem), overloaded=FunctionModel(stream_function=overloaded)
    )
    service = chat_service(store, resolver, min_update_interval=0)
    app = FastAPI()
    app.include_router(ChatStreamAPI(service, VisitorCookie(b"test-secret"), default_model="demo").router())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"), service


def test_each_line_of_data_gets_its_own_field():
    assert sse_event("delta", "a\nb") == "event: delta\ndata: a\ndata: b\n\n"


async def test_multiline_cjk_and_emoji_deltas_survive_the_framing(client):
    http, service = client
    response = await http.get(
        "/api/chat/stream", params={"message": "a poem", "model": "poem"}, headers={"x-chat-owner": ALICE}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = parse(response.text)
    assert events[0][0] == "start" and events[-1][0] == "done"
    text = "".join(data for name, data in events if name == "delta")
    assert text == "line one\nline two\n第三行 \U0001f600\n\nend"
    done = json.loads(events[-1][1])
    assert done["status"] == "completed" and done["usage"]["output_tokens"] > 0
    assert [s.conversation_id for s in await service.store.list_sessions(ALICE)] == [done["conversation_id"]]


async def test_carriage_returns_in_an_answer_cannot_cut_it_and_every_event_has_an_id(store):
    pieces = ["uno\rdos tres\r\n", "cuatro\r", "\ncinco ", "сеть\r\rend"]

    async def carriage(messages, info):
        for piece in pieces:
            yield piece

    service = chat_service(store, ScriptedResolver(cr=FunctionModel(stream_function=carriage)), min_update_interval=0)
    app = FastAPI()
    app.include_router(ChatStreamAPI(service, VisitorCookie(b"test-secret"), default_model="demo").router())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        response = await http.post("/api/chat", json={"message": "cr", "model": "cr"}, headers={"x-chat-owner": INES})
    events = parse_fields(response.text)
    text = "".join(data for name, data, _, _ in events if name == "delta")
    assert text == re.sub(r"\r\n|\r", "\n", "".join(pieces))  # every word arrives; line ends as LF
    ids = [event_id for _, _, event_id, _ in events]
    assert None not in ids and len(set(ids)) == len(ids)  # an id on every event, never repeated
    assert events[0][3] and events[0][3] > 0  # a retry: for EventSource
    (summary,) = await service.store.list_sessions(INES)
    stored = (await service.store.load(summary.conversation_id, scope=INES)).messages[-1].parts[0].content
    assert stored == "".join(pieces)  # the store keeps the text exactly


async def test_post_continues_a_conversation_with_its_history(client):
    http, _ = client
    first = parse(
        (
            await http.post(
                "/api/chat", json={"message": "My name is Sam and I am 41."}, headers={"x-chat-owner": ALICE}
            )
        ).text
    )
    conversation_id = json.loads(first[0][1])["conversation_id"]
    second = await http.post(
        "/api/chat",
        json={"message": "How old am I?", "conversation_id": conversation_id},
        headers={"x-chat-owner": ALICE},
    )
    assert "41" in "".join(data for name, data in parse(second.text) if name == "delta")


async def test_bad_requests_get_a_json_error(client):
    http, _ = client
    owner = {"x-chat-owner": ALICE}
    assert (await http.get("/api/chat/stream", headers=owner)).status_code == 400
    assert (await http.get("/api/chat/stream", params={"message": "  "}, headers=owner)).json()["error"]
    too_long = await http.get("/api/chat/stream", params={"message": "x" * 20_001}, headers=owner)
    assert too_long.status_code == 413 and "limit" in too_long.json()["error"]
    assert (await http.post("/api/chat", content=b"not json", headers=owner)).status_code == 400
    assert (await http.get("/api/chat/stream", params={"message": "hi"})).status_code == 401


async def test_another_owners_conversation_is_not_found(client):
    http, _ = client
    first = parse(
        (await http.get("/api/chat/stream", params={"message": "secret"}, headers={"x-chat-owner": ALICE})).text
    )
    conversation_id = json.loads(first[0][1])["conversation_id"]
    stolen = await http.get(
        "/api/chat/stream",
        params={"message": "tell me", "conversation_id": conversation_id},
        headers={"x-chat-owner": BOB},
    )
    unknown = await http.get(
        "/api/chat/stream",
        params={"message": "tell me", "conversation_id": "no-such-id"},
        headers={"x-chat-owner": BOB},
    )
    assert stolen.status_code == unknown.status_code == 404 and stolen.json() == unknown.json()
    claimed = await http.get("/api/chat/stream", params={"message": "x"}, headers={"x-chat-owner": "hf:alice"})
    assert claimed.status_code == 400 and "POST /api/session" in claimed.json()["error"]
    assert (await http.get("/api/chat/stream", params={"message": "x"})).status_code == 401  # nobody at all


@pytest.mark.parametrize("owner", ["test", "my-visitor", "a b c d e f g h i j k l m n", "é" * 30])
async def test_a_malformed_or_guessable_owner_gets_a_400_with_what_to_send(client, owner):
    http, service = client
    response = await http.post("/api/chat", json={"message": "hi"}, headers=[(b"x-chat-owner", owner.encode())])
    assert response.status_code == 400 and "secrets.token_urlsafe" in response.json()["error"]
    assert service.active.running_for(owner) == 0 and not await service.store.list_sessions(owner)


async def test_api_session_hands_out_a_fresh_owner_token_that_works(client):
    http, _ = client
    first, second = [(await http.post("/api/session")).json()["owner"] for _ in range(2)]
    assert first != second and len(first) >= 22
    answered = await http.post("/api/chat", json={"message": "hola"}, headers={"x-chat-owner": first})
    assert answered.status_code == 200 and "event: done" in answered.text


async def test_a_model_error_is_an_error_event(client):
    http, _ = client
    response = await http.get(
        "/api/chat/stream", params={"message": "hi", "model": "overloaded"}, headers={"x-chat-owner": ANYONE}
    )
    events = parse(response.text)
    assert events[-1][0] == "error"
    assert "The provider of 'overloaded' failed" in json.loads(events[-1][1])["error"]
    assert "7f3a" not in response.text


@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({"model": "openai:o1-pro"}, "does not offer that model. Pick one of: demo, poem, overloaded."),
        ({"model": "<img src=//evil.test/x>"}, "does not offer that model."),
        ({"context": "full"}, "does not offer that context policy. Pick one of: window, summary."),
    ],
)
async def test_a_model_or_policy_the_server_does_not_offer_gets_a_400_before_anything_runs(client, fields, refusal):
    http, service = client
    context_of(service).choices = ("window", "summary")  # as `python app.py` starts by default
    response = await http.post("/api/chat", json={"message": "ciao", **fields}, headers={"x-chat-owner": ANYONE})
    assert response.status_code == 400 and refusal in response.json()["error"]
    assert "evil.test" not in response.text and not await service.store.list_sessions(ANYONE)


def test_a_client_that_drops_resumes_with_last_event_id_and_reads_every_character_once():
    """As `EventSource` does: the same request again, with the id of the last event it read."""
    settings = Settings(demo_first_token_delay=0.05, demo_tokens_per_second=150, warm_up=False)
    with running_app(settings) as app, httpx.Client(base_url=app.url, timeout=30) as http:
        request = {"params": {"message": "count to 700"}, "headers": {"x-chat-owner": LEAVER}}
        with http.stream("GET", "api/chat/stream", **request) as response:
            received, body = 0, ""
            for line in response.iter_lines():
                body += line + "\n"
                received += line == "event: delta"
                if received == 4 and line == "":
                    break  # the connection drops mid-answer
        before = parse_fields(body)
        last_id = before[-1][2]
        chat = json.loads(before[0][1])["conversation_id"]
        assert app.service.active.is_running(LEAVER, chat)  # the answer goes on without its reader
        stranger = http.get(
            "api/chat/stream",
            params={"message": "count to 700"},
            headers={"x-chat-owner": SOMEONE_ELSE, "last-event-id": last_id},
        )
        assert stranger.status_code == 404 and "not yours" in stranger.json()["error"] and "1 2" not in stranger.text
        resumed = http.get(
            "api/chat/stream", **{**request, "headers": {**request["headers"], "last-event-id": last_id}}
        )
        after = parse_fields(resumed.text)
        assert [name for name, *_ in after][-1] == "done" and "start" not in [name for name, *_ in after]
        text = "".join(data for name, data, *_ in before + after if name == "delta")
        assert json.loads(after[-1][1])["status"] == "completed"
        (summary,) = run_to_completion(
            app.service.store.list_sessions(LEAVER)
        )  # resuming sent nothing new to the model
        messages = app.service.store.db.execute(
            "SELECT message_json FROM entries WHERE conversation_id = ? ORDER BY rowid", [summary.conversation_id]
        ).fetchall()
        assert len(messages) == 2
        assert text == json.loads(messages[1][0])[0]["parts"][0]["content"]  # every character, none twice
        assert text.rstrip(".").endswith("699 700")
        ended = http.get(
            "api/chat/stream", **{**request, "headers": {**request["headers"], "last-event-id": after[-1][2]}}
        )
        assert ended.status_code == 204  # it read the end: EventSource stops reconnecting


async def test_a_just_finished_answer_resumes_from_any_event_and_foreign_or_made_up_ids_resume_nothing(client):
    http, service = client
    owner = {"x-chat-owner": ALICE}
    events = parse_fields(
        (await http.post("/api/chat", json={"message": "a poem", "model": "poem"}, headers=owner)).text
    )
    deltas = [(data, event_id) for name, data, event_id, _ in events if name == "delta"]
    whole = "".join(data for data, _ in deltas)
    for cut in range(len(deltas)):  # the reader lost everything after delta `cut`
        rest = await http.get("/api/chat/stream", headers={**owner, "last-event-id": deltas[cut][1]})
        read = "".join(data for data, _ in deltas[: cut + 1])
        resumed = parse_fields(rest.text)
        assert read + "".join(data for name, data, *_ in resumed if name == "delta") == whole
        assert resumed[-1][0] == "done"
    for made_up in [
        "3",
        "anything",
        "a:b:c",
        f"{events[0][2]}x",
        f"{json.loads(events[0][1])['conversation_id']}:0000:5",
    ]:
        refused = await http.get("/api/chat/stream", headers={**owner, "last-event-id": made_up})
        assert refused.status_code == 404 and refused.json()["error"].startswith("That answer cannot be resumed")
    assert (await http.post("/api/chat/stop", json={"conversation_id": "x"})).status_code == 401
    assert len(await service.store.list_sessions(ALICE)) == 1


async def test_a_slow_first_token_gets_keep_alive_comments(store, monkeypatch):
    monkeypatch.setattr("web.sse.KEEP_ALIVE_SECONDS", 0.05)
    service = chat_service(store, ModelResolver(Settings(), DemoPace(first_token_delay=0.3, tokens_per_second=0)))
    app = FastAPI()
    app.include_router(ChatStreamAPI(service, VisitorCookie(b"test-secret"), default_model="demo").router())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        body = (await http.get("/api/chat/stream", params={"message": "hi"}, headers={"x-chat-owner": ANYONE})).text
    first_delta = body.index("event: delta")
    assert ": keep-alive" in body[:first_delta]
    assert parse(body)[-1][0] == "done"


def test_a_visitor_gets_three_answers_at_once_and_one_per_chat_with_statuses_to_act_on():
    settings = Settings(demo_first_token_delay=0.05, demo_tokens_per_second=60, warm_up=False)
    with running_app(settings) as app, httpx.Client(base_url=app.url, timeout=30) as http:
        owner = {"x-chat-owner": QUARTET}
        with contextlib.ExitStack() as streams:
            started, readers = [], []  # a dropped reader closes its stream (the answer goes on)
            for n in range(3):
                response = streams.enter_context(
                    http.stream("POST", "api/chat", json={"message": f"count to {900 + n}"}, headers=owner)
                )
                lines = response.iter_lines()
                readers.append(lines)
                assert next(lines) == "event: start"
                started.append(json.loads(next(line for line in lines if line.startswith("data:"))[5:]))
                assert next(line for line in lines if line == "event: delta")  # running, so counted
            fourth = http.post("api/chat", json={"message": "one more"}, headers=owner)
            assert fourth.status_code == 429 and int(fourth.headers["retry-after"]) > 0
            assert "3 answers" in fourth.json()["error"]
            same_chat = {"message": "again, here", "conversation_id": started[0]["conversation_id"]}
            assert http.post("api/chat", json=same_chat, headers=owner).status_code in (409, 429)
            other = http.post("api/chat", json={"message": "count to 3"}, headers={"x-chat-owner": SOMEONE_ELSE})
            assert other.status_code == 200 and "event: done" in other.text  # others keep their own allowance
        assert app.service.active.running_for(QUARTET) == 3  # closing a stream stops nothing: Stop does
        first = {"conversation_id": started[0]["conversation_id"]}
        assert http.post("api/chat/stop", json=first, headers={"x-chat-owner": SOMEONE_ELSE}).json() == {
            "stopped": False
        }
        for chat in started:
            stopped = http.post("api/chat/stop", json={"conversation_id": chat["conversation_id"]}, headers=owner)
            assert stopped.json() == {"stopped": True}
        deadline = time.monotonic() + 15
        while app.service.active.running_for(QUARTET):
            assert time.monotonic() < deadline, "closed streams still hold their slots"
            time.sleep(0.05)
        again = http.post("api/chat", json={"message": "count to 2"}, headers=owner)
        assert again.status_code == 200 and "event: done" in again.text


def test_one_address_minting_a_visitor_id_per_request_gets_its_share_on_both_apis():
    from gradio_client import Client

    settings = Settings(
        demo_first_token_delay=0.05, demo_tokens_per_second=60, warm_up=False, max_running_per_address=2
    )
    with running_app(settings) as app, httpx.Client(base_url=app.url, timeout=30) as http:
        with contextlib.ExitStack() as streams:
            readers, running = [], []
            for n in range(2):
                fresh = http.post("api/session").json()["owner"]  # a new visitor id for every request
                response = streams.enter_context(
                    http.stream(
                        "POST", "api/chat", json={"message": f"count to {700 + n}"}, headers={"x-chat-owner": fresh}
                    )
                )
                readers.append(response.iter_lines())
                started = json.loads(next(line for line in readers[-1] if line.startswith("data:"))[5:])
                running.append(({"x-chat-owner": fresh}, {"conversation_id": started["conversation_id"]}))
                assert next(line for line in readers[-1] if line == "event: delta")  # running, so counted
            another = http.post("api/session").json()["owner"]
            refused = http.post("api/chat", json={"message": "Merhaba"}, headers={"x-chat-owner": another})
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
            assert "network address" in refused.json()["error"]
            answer, _, _ = Client(app.url, verbose=False).predict("Merhaba", "demo", another, api_name="/chat")
            assert answer.startswith("⚠️") and "network address" in answer
            assert run_to_completion(app.service.store.list_sessions(another)) == []
        for owner, chat in running:
            assert http.post("api/chat/stop", json=chat, headers=owner).json() == {"stopped": True}
        deadline = time.monotonic() + 15
        while len(app.service.active):
            assert time.monotonic() < deadline, "closed streams still hold their slots"
            time.sleep(0.05)
        again = http.post("api/chat", json={"message": "Merhaba"}, headers={"x-chat-owner": another})
        assert again.status_code == 200 and "event: done" in again.text


def test_a_chat_answering_in_one_client_refuses_a_second_turn_from_another():
    settings = Settings(demo_first_token_delay=0.05, demo_tokens_per_second=60, warm_up=False)
    with running_app(settings) as app, httpx.Client(base_url=app.url, timeout=30) as http:
        owner = {"x-chat-owner": TWO_CLIENTS}
        with http.stream("POST", "api/chat", json={"message": "count to 4000"}, headers=owner) as first:
            lines = first.iter_lines()
            next(lines)
            chat = json.loads(next(line for line in lines if line.startswith("data:"))[5:])["conversation_id"]
            assert next(line for line in lines if line == "event: delta")
            second = http.post("api/chat", json={"message": "¿y ahora?", "conversation_id": chat}, headers=owner)
            assert second.status_code == 409 and "still answering" in second.json()["error"]
            assert next(line for line in lines if line == "event: delta")  # the first answer goes on
        assert http.post("api/chat/stop", json={"conversation_id": chat}, headers=owner).json() == {"stopped": True}
        deadline = time.monotonic() + 15
        while app.service.active.is_running(TWO_CLIENTS, chat):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = http.post("api/chat", json={"message": "¿y ahora?", "conversation_id": chat}, headers=owner)
        assert after.status_code == 200 and "event: done" in after.text


def test_count_to_a_million_is_cut_at_the_longest_answer_and_said_so():
    settings = Settings(demo_first_token_delay=0.01, demo_tokens_per_second=0, warm_up=False, max_answer_chars=5_000)
    with running_app(settings) as app, httpx.Client(base_url=app.url, timeout=60) as http:
        body = http.post("api/chat", json={"message": "count to 999999"}, headers={"x-chat-owner": GREEDY}).text
        events = parse(body)
        answer = "".join(data for event, data in events if event == "delta")
        done = json.loads(next(data for event, data in events if event == "done"))
        assert done["status"] == "cut" and 5_000 <= len(answer) < 5_200 and "999999" not in answer


def test_messages_per_minute_are_counted_across_the_gradio_api_and_the_sse_api():
    from gradio_client import Client

    settings = Settings(demo_first_token_delay=0.01, demo_tokens_per_second=0, warm_up=False, max_messages_per_minute=3)
    owner = SCRIPTED
    with running_app(settings) as app, httpx.Client(base_url=app.url, timeout=30) as http:
        client = Client(app.url, verbose=False)
        for prompt in ["uno", "dos"]:
            answer, _, _ = client.predict(prompt, "demo", owner, api_name="/chat")
            assert not answer.startswith("⚠️")
        assert http.post("api/chat", json={"message": "tres"}, headers={"x-chat-owner": owner}).status_code == 200
        refused = http.post("api/chat", json={"message": "cuatro"}, headers={"x-chat-owner": owner})
        assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
        assert "3 messages in the last minute" in refused.json()["error"]
        answer, _, _ = client.predict("cinco", "demo", owner, api_name="/chat")
        assert answer.startswith("⚠️") and "Send again in" in answer
        other, _, _ = Client(app.url, verbose=False).predict("seis", "demo", ANOTHER, api_name="/chat")
        assert not other.startswith("⚠️")


async def test_a_tool_call_and_its_result_arrive_as_events_before_the_answer(client):
    http, _ = client
    response = await http.post(
        "/api/chat", json={"message": "Combien font 125 * 8 ?", "model": "demo"}, headers={"x-chat-owner": ALICE}
    )
    events = parse(response.text)
    names = [name for name, _ in events]
    assert names.index("tool_call") < names.index("tool_result") < names.index("delta") < names.index("done")
    call = json.loads(dict(events)["tool_call"])
    result = json.loads(dict(events)["tool_result"])
    assert call["tool"] == "calculate" and call["arguments"] == {"expression": "125 * 8"}
    assert result["id"] == call["id"] and result["result"] == "1000" and result["error"] is None
    assert "1000" in "".join(data for name, data in events if name == "delta")
    assert json.loads(events[-1][1])["usage"]["requests"] == 2


async def test_a_call_waiting_for_approval_is_announced_and_answered_with_a_message(client):
    http, service = client
    headers = {"x-chat-owner": ALICE}
    old = parse((await http.post("/api/chat", json={"message": "Старый список покупок"}, headers=headers)).text)
    old_id = json.loads(old[0][1])["conversation_id"]
    asked = parse(
        (
            await http.post(
                "/api/chat", json={"message": "delete my chat called Старый список покупок"}, headers=headers
            )
        ).text
    )
    approval = json.loads(dict(asked)["approval"])
    assert approval["tool"] == "delete_my_conversation" and approval["options"] == ["Approve", "Deny"]
    assert await service.store.session(old_id, ALICE) is not None
    chat_id = json.loads(asked[0][1])["conversation_id"]
    answered = parse(
        (await http.post("/api/chat", json={"message": "Approve", "conversation_id": chat_id}, headers=headers)).text
    )
    assert json.loads(dict(answered)["tool_result"])["id"] == approval["id"]
    assert await service.store.session(old_id, ALICE) is None


async def test_the_time_tool_uses_the_time_zone_header(client):
    http, _ = client
    headers = {"x-chat-owner": ALICE, "x-time-zone": "Africa/Lagos"}
    events = parse((await http.post("/api/chat", json={"message": "what's the time?"}, headers=headers)).text)
    assert json.loads(dict(events)["tool_result"])["result"].endswith("(Africa/Lagos)")


def test_a_stop_naming_the_run_from_its_start_event_stops_it_before_any_text():
    """A client has the run's name (the `start` event's id) before the first update: a Stop sent at once,
    before the answer has started, must not be lost."""
    settings = Settings(demo_first_token_delay=0.05, demo_tokens_per_second=60, warm_up=False)
    owner = {"x-chat-owner": visitor_token("prompt-stopper")}
    with running_app(settings) as app, httpx.Client(base_url=app.url, timeout=30) as http:
        for n in range(5):
            with http.stream("POST", "api/chat", json={"message": f"count to {640 + n}"}, headers=owner) as response:
                lines = response.iter_lines()
                assert next(lines) == "event: start"
                event_id = next(line for line in lines if line.startswith("id:"))[3:].strip()
                conversation_id, run, _ = event_id.rsplit(":", 2)
                http.post("api/chat/stop", json={"conversation_id": conversation_id, "run": run}, headers=owner)
                rest = "\n".join(lines)
            done = json.loads(rest.split("event: done", 1)[1].split("data:", 1)[1].split("\n", 1)[0])
            assert done["status"] == "stopped", rest[-300:]
            stored = run_to_completion(app.service.edits.load_messages(owner["x-chat-owner"], conversation_id))
            assert stored[-1].state == "interrupted" and f"{640 + n}." not in str(stored[-1])
