"""Replicas on one PostgreSQL: `python app.py` twice, with `CHAT_DB` a `postgresql://` URL.

Each test starts real server processes on a real PostgreSQL (tests/conftest.py `postgres_server`) and
drives them over HTTP as a browser's cookie or an API client's token would.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import pytest

from chat.identity import COOKIE_NAME
from chat.render import to_bubbles
from server import run_to_completion
from tests.apps import app_process, visitor_token
from tests.test_sse import parse


@pytest.fixture
def replica_environment(postgres_url):
    return dict(os.environ, CHAT_DB=postgres_url, CHAT_DEMO_TPS="60", CHAT_DEMO_DELAY="0.02", CHAT_RECOVER_EVERY="0.5")


def chat(url: str, message: str, *, conversation_id: str | None = None, **identity) -> tuple[str, str]:
    """One turn over the SSE API; returns (conversation id, answer)."""
    body = {"message": message} | ({"conversation_id": conversation_id} if conversation_id else {})
    response = httpx.post(f"{url}api/chat", json=body, timeout=60, **identity)
    assert response.status_code == 200, response.text
    events = parse(response.text)
    start = json.loads(next(data for name, data in events if name == "start"))
    assert events[-1][0] == "done", events[-3:]
    return start["conversation_id"], "".join(data for name, data in events if name == "delta")


def stored_bubbles(postgres_url: str, owner: str) -> list[list[dict]]:
    """Every conversation of this owner as the page shows it, read straight from the database."""
    from storage.postgres_store import PostgresConversationStore

    store = PostgresConversationStore(postgres_url, max_connections=2)
    try:
        sessions = run_to_completion(store.list_sessions(owner))
        return [to_bubbles(run_to_completion(store.load(s.conversation_id, scope=owner)).messages) for s in sessions]
    finally:
        store.close()


def test_two_replicas_share_conversations_and_the_visitor_cookie_but_not_across_visitors(replica_environment):
    with app_process(replica_environment) as (_, first), app_process(replica_environment) as (_, second):
        page = httpx.get(first)  # the first replica issues the browser's signed visitor cookie
        cookies = {COOKIE_NAME: page.cookies[COOKIE_NAME]}
        conversation, _ = chat(first, "我叫林奕，今年57岁。", cookies=cookies)
        same, answer = chat(second, "我今年几岁？", conversation_id=conversation, cookies=cookies)
        assert same == conversation
        assert "57" in answer  # the second replica read the turn the first one saved

        stranger = {"x-chat-owner": visitor_token("stranger")}
        refused = httpx.post(
            f"{second}api/chat", json={"message": "Wie alt?", "conversation_id": conversation}, headers=stranger
        )
        assert refused.status_code == 404 and "57" not in refused.text


def test_a_replica_killed_mid_answer_loses_no_conversation_and_another_puts_its_turn_back(
    replica_environment, postgres_url
):
    owner = visitor_token("kill9")
    headers = {"x-chat-owner": owner}
    with app_process(replica_environment) as (killed, first), app_process(replica_environment) as (_, second):
        conversation, _ = chat(first, "I'm Bartholomew, I am 73.", headers=headers)
        seen: list[str] = []

        def long_answer() -> None:
            body = {"message": "count to 6000", "conversation_id": conversation}
            try:
                with httpx.stream("POST", f"{first}api/chat", json=body, headers=headers, timeout=60) as response:
                    for line in response.iter_lines():
                        if line.startswith("data: ") and not line.startswith("data: {"):
                            seen.append(line[6:])
            except httpx.HTTPError:
                pass  # the replica died under it

        reader = threading.Thread(target=long_answer, daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while len("".join(seen)) < 400:  # past at least one checkpoint (every 2 s)
            assert time.monotonic() < deadline, "the answer did not stream"
            time.sleep(0.05)
        time.sleep(2.5)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        reader.join(timeout=10)

        deadline = time.monotonic() + 30
        while len(bubbles := stored_bubbles(postgres_url, owner)[0]) < 4:  # the other replica's next look
            assert time.monotonic() < deadline, f"the killed replica's turn was not put back: {bubbles}"
            time.sleep(0.2)
        assert bubbles[2] == {"role": "user", "content": "count to 6000"}
        partial, label = bubbles[3]["content"].split("\n\n*⚠️ interrupted")
        assert "server restarted" in label and partial.startswith("1 2 3") and len(partial) > 100

        _, answer = chat(second, "What's my name, and how old am I?", conversation_id=conversation, headers=headers)
        assert "73" in answer  # the visitor goes on on the replica that is left
