"""Replicas when PostgreSQL restarts under them, and when one of them is killed: no turn is put back while
its replica lives, and none is lost when it dies.

These tests restart PostgreSQL, so they run on one cluster of their own (not the session's
`postgres_server`), shared by every test here: first the journal's liveness in this process, then two real
replicas behind real nginx (`deploy.scale_out`), driven over HTTP as visitors would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from chat.wings.journal import recover_unfinished_turns
from deploy.local_postgres import LocalPostgres, free_port, missing_reason
from deploy.scale_out import nginx_program, scaled_out
from storage.catalogue import StoreUnavailable
from tests.apps import visitor_token
from tests.databases import query, throwaway_postgres
from tests.test_replicas import AnswerInBackground, chat, stored_bubbles

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))


@pytest.fixture(scope="module")
def cluster():
    """A PostgreSQL of this module's own, which its tests stop and start again."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary,pool]')")
    with throwaway_postgres() as server:
        yield server


@pytest.fixture
def store(cluster):
    from storage.postgres_store import PostgresConversationStore

    store = PostgresConversationStore(cluster.create_database(f"test_{uuid.uuid4().hex[:16]}"), max_connections=4)
    yield store
    store.close()


def restart(cluster: LocalPostgres, away: float = 0.0) -> None:
    """Stop PostgreSQL as a restart does (every connection closed), wait `away` seconds, start it again."""
    cluster.stop("fast")
    time.sleep(away)
    cluster.start_again()


def wait_until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def holds_its_lock(store, server_id: str) -> bool:
    """Whether a connection holds this server's liveness lock (storage/postgres_store.py)."""
    from storage.postgres_store import _lock_key

    try:
        return query(
            store,
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND ((classid::bigint << 32) | objid::bigint) = ?)",
            [_lock_key(server_id)],
        )[0][0]
    except StoreUnavailable:  # PostgreSQL still starting
        return False


@pytest.mark.anyio
async def test_a_replica_takes_its_liveness_again_after_postgresql_restarts_and_keeps_its_turn(
    cluster, store, monkeypatch
):
    """The replica's lock went with PostgreSQL; it is taken again once PostgreSQL is back, so a peer that
    looks then finds it running (the grace a restart gives is off here: only the lock protects the turn)."""
    monkeypatch.setattr("storage.postgres_store.RETAKE_SECONDS", 0.0, raising=False)
    streaming, peer, dead = store.turn_journal("streaming"), store.turn_journal("peer"), store.turn_journal("dead")
    await streaming.begin("ada", "c-1", "count to 400", "demo")
    await dead.begin("ada", "c-2", "count to 300", "demo")
    dead.close()  # this one is gone before the restart, and stays gone
    restart(cluster)
    wait_until(lambda: holds_its_lock(store, "streaming"), "the lock was not taken again")
    assert await recover_unfinished_turns(peer, store) == 1  # the dead server's turn, not the living one's
    assert await store.load("c-1", scope="ada") is None
    assert len((await store.load("c-2", scope="ada")).messages) == 2
    streaming.close()
    peer.close()


@pytest.mark.anyio
async def test_right_after_postgresql_restarts_no_replica_is_judged_before_it_could_take_its_lock_again(cluster, store):
    streaming, peer = store.turn_journal("streaming"), store.turn_journal("peer")
    await streaming.begin("bo", "c-3", "count to 400", "demo")
    restart(cluster)
    assert await recover_unfinished_turns(peer, store) == 0  # at once: before or after the lock is taken again
    assert await store.load("c-3", scope="bo") is None
    streaming.close()
    peer.close()


@pytest.fixture(scope="module")
def replicas(cluster, tmp_path_factory):
    """Two replicas of `python app.py` behind nginx on this module's PostgreSQL (`deploy.scale_out`); yields
    (nginx URL, the replica processes, the database URL). Each looks for turns to put back every 10 s."""
    if nginx_program() is None:
        pytest.skip("nginx is not installed")
    database = cluster.create_database("chat_replicas")
    folder = Path(tempfile.mkdtemp(prefix="chat-outages-"))
    folder.chmod(0o755)  # nginx's workers (as root: root) reach it
    environment = dict(os.environ, CHAT_DEMO_TPS="60", CHAT_DEMO_DELAY="0.02", CHAT_RECOVER_EVERY="10")
    port = free_port()
    with scaled_out(2, port, folder, database, environment) as processes:
        yield f"http://127.0.0.1:{port}/", processes, database
    shutil.rmtree(folder, ignore_errors=True)


def journal_servers(database: str) -> set[str]:
    """The servers the journal holds running turns of."""
    import psycopg

    with psycopg.connect(database, autocommit=True) as connection:
        return {server for (server,) in connection.execute("SELECT server_id FROM running_turns")}


def running_turns(database: str) -> int:
    import psycopg

    try:
        with psycopg.connect(database, autocommit=True) as connection:
            return connection.execute("SELECT count(*) FROM running_turns").fetchone()[0]
    except psycopg.OperationalError:
        return -1


def status(answer: AnswerInBackground) -> str:
    name, data = answer.events[-1]
    return json.loads(data)["status"] if name == "done" else "error: " + json.loads(data)["error"]


def test_postgresql_restarted_under_two_replicas_puts_back_no_turn_that_is_streaming_or_saved(cluster, replicas):
    url, _, database = replicas
    # Answers that outlast the outage, on both replicas (nginx hashes each visitor to one).
    streaming: dict[str, AnswerInBackground] = {}
    while len(streaming) < 4 or len(journal_servers(database)) < 2:
        owner = visitor_token(f"restart{len(streaming)}")
        streaming[owner] = AnswerInBackground(url, {"message": "count to 1500"}, {"x-chat-owner": owner})
        streaming[owner].wait_for_deltas(5)
    # Answers that end while PostgreSQL is away: their visitors are told they were not saved.
    failing = {
        owner: AnswerInBackground(url, {"message": "count to 240"}, {"x-chat-owner": owner})
        for owner in (visitor_token("away0"), visitor_token("away1"))
    }
    for answer in failing.values():
        answer.wait_for_deltas(5)
    cluster.stop("fast")
    try:
        assert all(answer.ended(timeout=60) for answer in failing.values())
    finally:
        cluster.start_again()
    for answer in failing.values():
        assert "store cannot be reached" in status(answer) and "send it again" in status(answer)
    assert all(answer.ended(timeout=120) for answer in streaming.values())
    assert [status(answer) for answer in streaming.values()] == ["completed"] * len(streaming)

    def go_on(owner: str, conversation: str) -> None:
        for n in range(5):
            chat(url, f"count to {60 + n}", conversation_id=conversation, headers={"x-chat-owner": owner})

    later = [
        threading.Thread(target=go_on, args=(owner, answer.conversation_id)) for owner, answer in streaming.items()
    ]
    for thread in later:
        thread.start()
    for thread in later:
        thread.join(timeout=300)
    wait_until(lambda: running_turns(database) == 0, "turns were left in the journal", timeout=60)

    for owner, answer in streaming.items():  # 20 turns and more after the restart, each stored once
        (bubbles,) = stored_bubbles(database, owner)
        prompts = [bubble["content"] for bubble in bubbles[::2]]
        assert prompts == ["count to 1500", *(f"count to {60 + n}" for n in range(5))]
        assert bubbles[1]["content"] == answer.text() and not any("interrupted" in b["content"] for b in bubbles)
    for owner in failing:  # not saved, as its visitor was told, and not put back later
        assert stored_bubbles(database, owner) == []


def test_a_message_right_after_its_replica_is_killed_finds_the_chat_and_its_turn_put_back(replicas):
    url, processes, database = replicas
    owner = visitor_token("killed")
    headers = {"x-chat-owner": owner}
    first = AnswerInBackground(url, {"message": "count to 3000"}, headers)  # a new chat: not stored until saved
    first.wait_for_deltas(150)  # past a checkpoint (every 2 s)
    (server,) = journal_servers(database)
    (killed,) = [process for process in processes if f":{process.pid}:" in server]
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)
    time.sleep(0.5)
    _, answer = chat(url, "What did I ask you?", conversation_id=first.conversation_id, headers=headers)
    assert answer
    (bubbles,) = stored_bubbles(database, owner)
    assert [bubble["content"] for bubble in bubbles[::2]] == ["count to 3000", "What did I ask you?"]
    assert "interrupted" in bubbles[1]["content"] and bubbles[1]["content"].startswith("1 2 3")
