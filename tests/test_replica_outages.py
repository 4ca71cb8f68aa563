"""Replicas when PostgreSQL restarts under them, and when one of them is killed: no turn is put back while
its replica lives, and none is lost when it dies.

These tests restart PostgreSQL, so they run on one cluster of their own (not the session's
`postgres_server`), shared by every test here: first the journal's liveness in this process, then two real
replicas behind real nginx (`deploy.scale_out`), driven over HTTP as visitors would.
"""

from __future__ import annotations

import shutil
import time
import uuid

import pytest

from chat.wings.journal import recover_unfinished_turns
from deploy.local_postgres import LocalPostgres, missing_reason
from storage.catalogue import StoreUnavailable
from tests.databases import query

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))


@pytest.fixture(scope="module")
def cluster():
    """A PostgreSQL of this module's own, which its tests stop and start again."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary,pool]')")
    server = LocalPostgres.start()
    yield server
    server.stop("immediate")
    shutil.rmtree(server.folder, ignore_errors=True)


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
