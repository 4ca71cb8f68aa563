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


class AnswerInBackground:
    """One SSE API answer read on a thread of its own; `events` are its (event, data) pairs as they arrive."""

    def __init__(self, url: str, body: dict, headers: dict) -> None:
        self.events: list[tuple[str, str]] = []
        self.event_ids: list[str] = []
        """Each event's id, appended before the event: `event_ids[n - 1]` exists once `events` has n."""
        self.thread = threading.Thread(target=self._read, args=(url, body, headers), daemon=True)
        self.thread.start()

    def _read(self, url: str, body: dict, headers: dict) -> None:
        try:
            with httpx.stream("POST", f"{url}api/chat", json=body, headers=headers, timeout=90) as response:
                name, event_id = "", ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        self.event_ids.append(event_id)
                        self.events.append((name, line[6:]))
        except httpx.HTTPError:
            pass  # the server died under it

    def text(self) -> str:
        return "".join(data for name, data in self.events if name == "delta")

    def wait_for_deltas(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while sum(name == "delta" for name, _ in self.events) < count:
            assert time.monotonic() < deadline, f"the answer did not stream: {self.events[-3:]}"
            time.sleep(0.05)

    @property
    def conversation_id(self) -> str:
        return json.loads(next(data for name, data in self.events if name == "start"))["conversation_id"]

    def ended(self, timeout: float) -> bool:
        self.thread.join(timeout=timeout)
        return not self.thread.is_alive()


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
        answer = AnswerInBackground(first, {"message": "count to 6000", "conversation_id": conversation}, headers)
        answer.wait_for_deltas(100)
        time.sleep(2.5)  # past at least one checkpoint (every 2 s)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        assert answer.ended(timeout=10)

        deadline = time.monotonic() + 30
        while len(bubbles := stored_bubbles(postgres_url, owner)[0]) < 4:  # the other replica's next look
            assert time.monotonic() < deadline, f"the killed replica's turn was not put back: {bubbles}"
            time.sleep(0.2)
        assert bubbles[2] == {"role": "user", "content": "count to 6000"}
        partial, label = bubbles[3]["content"].split("\n\n*⚠️ interrupted")
        assert "server restarted" in label and partial.startswith("1 2 3") and len(partial) > 100

        _, answer = chat(second, "What's my name, and how old am I?", conversation_id=conversation, headers=headers)
        assert "73" in answer  # the visitor goes on on the replica that is left


def test_a_stop_request_sent_to_another_replica_stops_the_answer_where_it_streams(replica_environment, postgres_url):
    owner = visitor_token("elsewhere")
    headers = {"x-chat-owner": owner}
    with app_process(replica_environment) as (_, streaming), app_process(replica_environment) as (_, other):
        answer = AnswerInBackground(streaming, {"message": "count to 8000"}, headers)
        answer.wait_for_deltas(10)
        conversation = answer.conversation_id

        stranger = httpx.post(
            f"{other}api/chat/stop", json={"conversation_id": conversation}, headers={"x-chat-owner": "x" * 32}
        )
        assert stranger.json() == {"stopped": False}  # not theirs: nothing is announced, nothing stops
        assert not answer.ended(timeout=0.5)

        stopped = httpx.post(
            f"{other}api/chat/stop", json={"conversation_id": conversation}, headers=headers, timeout=15
        )
        assert stopped.json() == {"stopped": True}  # the other replica announced it, and saw it end
        assert answer.ended(timeout=10) and json.loads(answer.events[-1][1])["status"] == "stopped"
        (bubbles,) = stored_bubbles(postgres_url, owner)
        assert bubbles[0]["content"] == "count to 8000" and "stopped" in bubbles[1]["content"]


def test_an_answer_streaming_on_one_replica_resumes_from_another_where_the_reader_was(
    replica_environment, postgres_url
):
    owner = visitor_token("roaming")
    headers = {"x-chat-owner": owner}
    with app_process(replica_environment) as (_, streaming), app_process(replica_environment) as (_, other):
        answer = AnswerInBackground(streaming, {"message": "count to 700"}, headers)
        answer.wait_for_deltas(15)
        # The reader's connection drops here, and it comes back through the other replica.
        read = len(answer.events)
        last_id = answer.event_ids[read - 1]
        before = "".join(data for name, data in answer.events[:read] if name == "delta")

        stranger = httpx.post(f"{other}api/chat", json={}, headers={"x-chat-owner": "y" * 32, "last-event-id": last_id})
        assert stranger.status_code == 404 and "1 2 3" not in stranger.text
        resumed = httpx.post(f"{other}api/chat", json={}, headers={**headers, "last-event-id": last_id}, timeout=60)
        assert resumed.status_code == 200, resumed.text
        events = parse(resumed.text)
        assert events[-1][0] == "done" and json.loads(events[-1][1])["status"] == "completed"
        rest = "".join(data for name, data in events if name == "delta")
        assert answer.ended(timeout=30)
        assert rest and before + rest == answer.text()  # nothing lost, nothing twice
        (bubbles,) = stored_bubbles(postgres_url, owner)
        assert bubbles[1]["content"] == before + rest and (before + rest).rstrip(".").endswith("699 700")


def test_postgresql_down_mid_answer_gives_a_clear_message_and_the_next_turn_works(replica_environment, postgres_server):
    headers = {"x-chat-owner": visitor_token("outage")}
    with app_process(replica_environment) as (_, url):
        conversation, _ = chat(url, "My name is Dörte and I am 64.", headers=headers)
        answer = AnswerInBackground(url, {"message": "count to 240", "conversation_id": conversation}, headers)
        answer.wait_for_deltas(5)
        postgres_server.stop("fast")  # every connection of the pool dies with it
        try:
            assert answer.ended(timeout=60)
            last_name, last_data = answer.events[-1]
            assert last_name == "error" and "store cannot be reached" in json.loads(last_data)["error"]
            assert "psycopg" not in last_data and "Pool" not in last_data  # no internal text
            body = {"message": "Are you there?", "conversation_id": conversation}
            while_away = httpx.post(f"{url}api/chat", json=body, headers=headers, timeout=60)
            assert while_away.status_code == 503 and int(while_away.headers["retry-after"]) > 0
            assert "cannot be reached" in while_away.json()["error"] and "Pool" not in while_away.text
        finally:
            postgres_server.start_again()
        _, after = chat(url, "How old am I?", conversation_id=conversation, headers=headers)
        assert "64" in after
