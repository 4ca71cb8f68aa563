"""SIGTERM and Ctrl-C drain: running answers stop and are saved, new ones are refused, the process exits."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time

import httpx
import pytest
from fastapi import FastAPI

from chat.endings import END_KEY, SERVER_RESTARTED
from chat.identity import VisitorCookie
from chat.recipe_runs import RecipeService
from chat.render import to_bubbles
from chat.runs import ActiveTurns, RunStatus
from chat.wings.handoff import HandoffService
from chat.wings.shutdown import drain
from server import run_to_completion
from tests.apps import visitor_token
from tests.test_turns import collect, endless_model, make_service
from web.sse import ChatStreamAPI


def test_a_drain_stops_running_answers_saves_them_labelled_and_refuses_new_ones(store):
    started = asyncio.Event()
    service = make_service(store, endless=endless_model(started=started))
    loop = asyncio.new_event_loop()
    serving = threading.Thread(target=loop.run_forever, daemon=True)
    serving.start()
    turns = [
        asyncio.run_coroutine_threadsafe(
            collect(service, f"Lauf {n}", owner=f"u{n}", conversation=f"c{n}", model="endless"), loop
        )
        for n in range(3)
    ]
    asyncio.run_coroutine_threadsafe(asyncio.wait_for(started.wait(), 10), loop).result()

    def streaming(n: int) -> bool:
        run = service.live_turn(f"u{n}", f"c{n}")
        return run is not None and run.latest is not None and bool(run.latest.text)

    deadline = time.monotonic() + 10
    while not all(streaming(n) for n in range(3)):  # every answer has text before the drain
        assert time.monotonic() < deadline
        time.sleep(0.01)

    assert drain(service.active, grace=10) is True  # from the main thread, as app.py does after SIGTERM
    for n, turn in enumerate(turns):
        final = turn.result(timeout=10)[-1]
        assert final.status is RunStatus.STOPPED and final.text
        messages = asyncio.run_coroutine_threadsafe(store.load(f"c{n}", scope=f"u{n}"), loop).result().messages
        assert messages[-1].metadata[END_KEY] == SERVER_RESTARTED
        assert "server restarted" in to_bubbles(messages)[-1]["content"]

    refused = asyncio.run_coroutine_threadsafe(collect(service, "one more", owner="late", conversation="c9"), loop)
    final = refused.result(timeout=10)[-1]
    assert final.status is RunStatus.FAILED and "restarting" in final.error
    loop.call_soon_threadsafe(loop.stop)


@pytest.mark.anyio
async def test_recipes_hand_offs_and_the_sse_api_refuse_while_draining(store):
    service = make_service(store)
    service.active.close()
    recipes = RecipeService(store, service.models, active=service.active)
    handoffs = HandoffService(store, service.models, active=service.active)
    recipe = [u async for u in recipes.run("rosa", "r1", "paella", "demo")][-1]
    assert recipe.status is RunStatus.FAILED and "restarting" in recipe.error
    handoff = [u async for u in handoffs.run("rosa", "h1", "1, 2, 3", "demo")][-1]
    assert handoff.status is RunStatus.FAILED and "restarting" in handoff.error
    app = FastAPI()
    app.include_router(ChatStreamAPI(service, VisitorCookie(b"test-secret"), default_model="demo").router())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        answer = await http.post("/api/chat", json={"message": "hola"}, headers={"x-chat-owner": visitor_token("rosa")})
    assert answer.status_code == 503 and int(answer.headers["retry-after"]) > 0
    assert "restarting" in answer.json()["error"] and "Traceback" not in answer.text


def test_a_drain_gives_up_after_its_grace_period():
    running = ActiveTurns()
    running.start("stuck", "never-saves")  # a run that does not end when stopped
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    assert drain(running, grace=5, clock=lambda: now[0], sleep=sleep) is False
    assert 5 <= now[0] < 5.1


def test_sigterm_mid_answer_saves_every_running_turn_and_exits(tmp_path):
    from tests.apps import app_process

    database = tmp_path / "chat.db"
    environment = dict(os.environ, CHAT_DB=str(database), CHAT_DEMO_TPS="40", CHAT_DEMO_DELAY="0.05")
    owners = [visitor_token(f"drain{n}") for n in range(3)]
    with app_process(environment) as (process, url):
        seen: dict[str, str] = {}

        def stream(owner: str) -> None:
            with httpx.stream(
                "POST",
                f"{url}api/chat",
                json={"message": f"count to 4000 ({owner})"},
                headers={"x-chat-owner": owner},
                timeout=30,
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and owner in seen:
                        seen[owner] += line[6:]
                    elif line.startswith("event: delta"):
                        seen.setdefault(owner, "")

        readers = [threading.Thread(target=stream, args=(owner,), daemon=True) for owner in owners]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + 30
        while len(seen) < len(owners) or min(len(text) for text in seen.values()) < 30:
            assert time.monotonic() < deadline, f"the answers did not stream: {seen}"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0  # exits by itself, within its 10 s grace
        for reader in readers:
            reader.join(timeout=10)

    with sqlite3.connect(database) as db:  # saved by the drain, not left for the next start to recover
        assert db.execute("SELECT count(*) FROM running_turns").fetchone()[0] == 0
    from storage.sqlite_store import SQLiteConversationStore

    store = SQLiteConversationStore(database)
    for owner in owners:
        (summary,) = run_to_completion(store.list_sessions(owner))
        shown = to_bubbles(asyncio.run(store.load(summary.conversation_id, scope=owner)).messages)
        assert shown[0]["content"] == f"count to 4000 ({owner})"
        assert "server restarted" in shown[1]["content"] and shown[1]["content"].startswith("1 2 3")
