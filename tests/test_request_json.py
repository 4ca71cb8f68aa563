"""Bodies that are not JSON the app can hold (web/request_json.py), sent raw to every route that reads one on the
real server: a 400 in the route's own error shape, before any model runs or anything is stored. And a bare CR
that a model streams, on every route that answers in Server-Sent Events."""

from __future__ import annotations

import json
import re
import secrets

import httpx
import pytest
from pydantic_ai.models.function import FunctionModel

from tests.test_ag_ui import run_input
from tests.test_sse import parse
from tests.test_vercel_ai import chat_request, demo_app, new_chat_id, recipes_of, sessions_of, stored
from web.request_json import UnreadableJSON, read_json

PROMPT = "PROMPT"
"""Where each malformed body puts what is wrong with it, in a request the route would otherwise answer."""
ROUTES = {
    "api/chat": {"message": PROMPT, "model": "demo"},
    "api/chat/stop": {"conversation_id": PROMPT},
    "v1/chat/completions": {"model": "demo", "messages": [{"role": "user", "content": PROMPT}]},
    "api/vercel-ai": chat_request("vercel-chat", PROMPT),
    "api/vercel-ai/recipe": chat_request("vercel-recipe", PROMPT),
    "api/ag-ui": run_input("ag-ui-thread", PROMPT),
    "api/ag-ui/recipe": run_input("ag-ui-recipe", PROMPT),
}
NESTED = b'{"a":' * 40_000 + b"0" + b"}" * 40_000
MALFORMED = {  # each replaces the prompt's JSON string, quotes included
    "a lone low surrogate escape": b'"crepes \\udc9f and jam"',
    "a lone high surrogate escape, its other half cut off": b'"a waffle \\ud83e"',
    "a surrogate encoded as UTF-8 bytes (CESU-8)": b'"gofres \xed\xa0\xbd"',
    "Latin-1, not UTF-8": b'"tarte flamb\xe9e"',
    "objects nested 40,000 deep": NESTED,
    "cut off mid-string": b'"blini with so',
}


@pytest.fixture(scope="module")
def app():
    with demo_app() as served:
        yield served


@pytest.fixture
def models_run(app, monkeypatch) -> list[str]:
    """The models asked for while the test runs: every turn, completion and recipe resolves its model as it starts."""
    resolver, asked = app.service.models, []
    real = resolver.resolve

    def resolve(name: str):
        asked.append(name)
        return real(name)

    monkeypatch.setattr(resolver, "resolve", resolve)
    return asked


def post_raw(app, path: str, owner: str, body: bytes) -> httpx.Response:
    headers = {
        "content-type": "application/json",
        "x-chat-owner": owner,
        "authorization": f"Bearer sk-{owner}",
    }
    return httpx.post(f"{app.url}{path}", content=body, headers=headers, timeout=60)


def with_prompt(path: str, prompt: bytes) -> bytes:
    before, after = json.dumps(ROUTES[path]).encode().split(f'"{PROMPT}"'.encode())
    return before + prompt + after


def error_message(path: str, response: httpx.Response) -> str:
    """The refusal's sentence, checked to be in the route's own shape, as its other 400s are."""
    if path.startswith("v1/"):  # OpenAI's
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
        return error["message"]
    if path.startswith("api/vercel-ai"):  # a plain sentence, which the AI SDK shows as the chat's error
        assert response.headers["content-type"].startswith("text/plain")
        return response.text
    assert response.headers["content-type"] == "application/json"
    (message,) = response.json().values()
    assert list(response.json()) == ["error"]
    return message


def test_the_requests_are_ones_the_routes_answer(app, models_run):
    owner = secrets.token_urlsafe(24)
    for path in ROUTES:
        sound = post_raw(app, path, owner, with_prompt(path, b'"pancakes"'))
        assert sound.status_code == 200, (path, sound.text)
    assert models_run == ["demo"] * 6  # all but the stop


@pytest.mark.parametrize("path", ROUTES)
def test_a_body_that_is_not_json_the_app_can_hold_is_a_400_before_anything_runs(app, models_run, path):
    owner = secrets.token_urlsafe(24)
    for case, prompt in MALFORMED.items():
        response = post_raw(app, path, owner, with_prompt(path, prompt))
        assert response.status_code == 400, (case, response.text)
        message = error_message(path, response)
        assert "not JSON this server reads" in message, case
        for internal in ("line 1", "column", "Traceback", "Recursion", "surrogates not allowed", "codec"):
            assert internal not in response.text, (case, internal)
    assert models_run == []
    assert sessions_of(app, owner) == [] and recipes_of(app, owner) == []


def test_what_the_reader_reads():
    assert read_json(b'{"emoji": "\\ud83e\\udd5e"}') == {"emoji": "\U0001f95e"}  # a pair is one character
    assert read_json("\ufeff".encode() + b'{"from": "a Windows tool"}') == {"from": "a Windows tool"}
    assert read_json(b"[" * 200 + b"]" * 200) is not None  # as deep as the refusal says it reads
    with pytest.raises(UnreadableJSON):
        read_json(b"")


PIECES = ["Zeile eins\rZeile zwei", "\r", "\ndrei\r", "vier\r\r", "fünf"]
"""A model's answer with bare CRs: alone, at a chunk's end, as half of a CRLF split across chunks, doubled."""
WHOLE = "".join(PIECES)


async def with_bare_carriage_returns(messages, info):
    for piece in PIECES:
        yield piece


def text_of_events(path: str, body: str) -> str:
    """The answer's text, read from the events as a spec-conformant SSE parser (EventSource's) reads them."""
    events = parse(body)
    if path == "api/chat":
        return "".join(data for name, data in events if name == "delta")
    chunks = [json.loads(data) for _, data in events if data != "[DONE]"]
    if path == "api/vercel-ai":
        return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")
    if path == "api/ag-ui":
        return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "TEXT_MESSAGE_CONTENT")
    return "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])


@pytest.mark.parametrize("path", ["api/chat", "api/vercel-ai", "api/ag-ui", "v1/chat/completions"])
def test_a_bare_carriage_return_in_the_answer_cuts_no_event_on_any_stream(app, monkeypatch, path):
    monkeypatch.setattr(
        app.service.models, "resolve", lambda name: FunctionModel(stream_function=with_bare_carriage_returns)
    )
    owner, chat_id = secrets.token_urlsafe(24), new_chat_id()
    body = {
        "api/chat": {"message": "Zähl bis fünf", "conversation_id": None},
        "api/vercel-ai": chat_request(chat_id, "Zähl bis fünf"),
        "api/ag-ui": run_input(chat_id, "Zähl bis fünf"),
        "v1/chat/completions": {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "Zähl"}]},
    }[path]
    response = post_raw(app, path, owner, json.dumps(body).encode())
    assert response.status_code == 200
    text = text_of_events(path, response.text)
    if path == "api/chat":  # its deltas are data lines: each line end arrives as LF, and every word arrives
        assert text == re.sub(r"\r\n|\r", "\n", WHOLE)
        (session,) = sessions_of(app, owner)
        chat_id = session.conversation_id
    else:  # the others' are JSON, where a CR is "\r"
        assert text == WHOLE
    if path != "v1/chat/completions":  # a completion without a conversation id is not stored
        assert stored(app, owner, chat_id)[-1].parts[0].content == WHOLE  # kept exactly
