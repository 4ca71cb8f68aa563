"""What only the SQLite store promises: its schema, its rows, its search, and faults on a real file."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic_ai.conversation import Conversation
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

from storage.catalogue import CorruptConversation
from storage.migrations import migrations
from storage.sqlite_store import SQLiteConversationStore

pytestmark = pytest.mark.anyio


def turn(prompt: str, answer: str) -> list:
    return [ModelRequest(parts=[UserPromptPart(prompt)]), ModelResponse(parts=[TextPart(answer)])]


@pytest.fixture
def store(tmp_path) -> SQLiteConversationStore:
    return SQLiteConversationStore(tmp_path / "data" / "chat.db")


def count(store: SQLiteConversationStore, table: str) -> int:
    return store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


async def chat(store, conversation_id: str, scope: str, *turns: tuple[str, str]) -> None:
    conversation = await store.load(conversation_id, scope=scope) or Conversation(conversation_id=conversation_id)
    for prompt, answer in turns:
        conversation.messages.extend(turn(prompt, answer))
    await store.save(conversation, scope=scope)


def test_migrating_twice_changes_nothing(tmp_path):
    path = tmp_path / "chat.db"
    first = SQLiteConversationStore(path)
    schema, applied = first.db.schema, [m.name for m in migrations.applied(first.db)]
    second = SQLiteConversationStore(path)
    migrations.apply(second.db)
    assert second.db.schema == schema and "entries_fts" not in schema
    assert (
        [m.name for m in migrations.applied(second.db)]
        == applied
        == [
            "m001_create_conversations_and_entries",
            "m002_full_text_search_over_messages",
            "m003_conversation_kind",
            "m004_context_policy_and_summaries",
            "m005_handoff_runs_are_chats",
            "m006_running_turns",
            "m007_server_secrets",
            "m008_stored_bytes_per_conversation",
            "m009_search_without_a_full_text_index",
        ]
    )


async def test_analyst_runs_stored_before_m005_join_the_sidebar(tmp_path):
    from sqlite_utils import Database

    path = tmp_path / "older.db"
    older = Database(path)
    migrations.apply(older, stop_before="m005_handoff_runs_are_chats")
    older["conversations"].insert(
        {
            "id": "run-7",
            "scope": "zoë",
            "title": "Analysis: Q3 Umsatz",
            "kind": "handoff",
            "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-01-01T00:00:00+00:00",
        }
    )
    older["conversations"].insert(
        {
            "id": "recipe-2",
            "scope": "zoë",
            "title": "Ramen",
            "kind": "recipe",
            "created_at": "2026-01-02T00:00:00+00:00",
            "updated_at": "2026-01-02T00:00:00+00:00",
        }
    )
    older.close()
    reopened = SQLiteConversationStore(path)
    assert [s.conversation_id for s in await reopened.list_sessions("zoë")] == ["run-7"]  # recipes stay apart


def test_connections_use_wal_busy_timeout_and_foreign_keys(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


async def test_one_row_per_message_and_a_save_writes_only_the_new_ones(store, sqlite_on_this_thread):
    for n in range(50):
        await chat(store, "long", "alice", (f"q{n}", f"a{n}"))
    assert count(store, "entries") == 100
    row = store.db.execute("SELECT message_json FROM entries LIMIT 1").fetchone()[0]
    assert row.startswith("[{") and '"parts"' in row  # one message, as pydantic-ai's adapter writes it
    revision = (await store.read_record("long")).revision
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    await chat(store, "long", "alice", ("one more", "answer"))
    store.db.conn.set_trace_callback(None)
    writes = {s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))}
    entry_inserts = {s for s in writes if s.startswith("INSERT INTO entries")}
    assert len(entry_inserts) == 2  # the two new messages, and nothing of the 100 before them
    (record_write,) = writes - entry_inserts  # and the conversation's own row: its revision compare-and-swap
    assert record_write.startswith("UPDATE conversations") and record_write.endswith(f"revision = '{revision}'")


async def test_the_primitives_run_their_sqlite_work_off_the_event_loop(store):
    threads: set[str] = set()
    original = store.transaction

    def traced_transaction():
        threads.add(threading.current_thread().name)
        return original()

    store.transaction = traced_transaction
    await chat(store, "off-loop", "zanele", ("Sawubona", "Yebo"))
    assert threads and threading.current_thread().name not in threads


async def test_conversations_survive_reopening_the_file(tmp_path):
    path = tmp_path / "chat.db"
    await chat(SQLiteConversationStore(path), "c1", "alice", ("hello", "hi"))
    reopened = await SQLiteConversationStore(path).load("c1", scope="alice")
    assert [p.content for m in reopened.messages for p in m.parts] == ["hello", "hi"]


async def test_delete_removes_the_entries_nothing_reaches(store):
    await chat(store, "c1", "alice", ("q", "a"), ("q2", "a2"))
    await chat(store, "c2", "alice", ("other", "kept"))
    await store.delete("c1", scope="alice")
    assert count(store, "entries") == 2
    assert await store.search("alice", "q2") == []


async def test_a_corrupt_row_breaks_only_its_own_conversation(store):
    await chat(store, "broken", "alice", ("q", "a"))
    await chat(store, "fine", "alice", ("q", "a"))
    store.db.execute("UPDATE entries SET message_json = '{not json' WHERE conversation_id = 'broken'")
    with pytest.raises(CorruptConversation, match="could not be read"):
        await store.load("broken", scope="alice")
    assert await store.load("fine", scope="alice") is not None
    assert {s.conversation_id for s in await store.list_sessions("alice")} == {"broken", "fine"}


def test_fifty_concurrent_writers_on_different_conversations(store):
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            for n in range(5):
                asyncio.run(chat(store, f"c{number}", f"owner{number % 5}", (f"q{n}", f"a{n}")))
        except BaseException as error:  # noqa: BLE001 (a thread: collected and reported below)
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(store, "entries") == 50 * 5 * 2
    assert sum(len(asyncio.run(store.list_sessions(f"owner{n}", limit=100))) for n in range(5)) == 50
    assert store.integrity_ok()


async def test_conversations_stored_before_m008_are_counted_when_it_runs(tmp_path):
    path = tmp_path / "older.db"
    counted = SQLiteConversationStore(path)
    await chat(counted, "m1", "maren", ("Hvor ligger Tromsø?", "Nord i Norge."), ("Og Bodø?", "Litt sør."))
    expected = await counted.stored_bytes("maren")
    counted.db.execute("UPDATE conversations SET stored_bytes = 0")
    counted.db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm008_stored_bytes_per_conversation'")
    counted.db.execute("ALTER TABLE conversations DROP COLUMN stored_bytes")
    counted.db.conn.close()
    assert await SQLiteConversationStore(path).stored_bytes("maren") == expected > 0
