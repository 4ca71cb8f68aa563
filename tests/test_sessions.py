"""A visitor's conversations on a real SQLite file: open, rename, delete, search, export, import, regenerate."""

from __future__ import annotations

import json

import pytest
from pydantic_ai.conversation import ConversationTypeAdapter

from chat.config import Settings
from chat.demo_model import DemoPace
from chat.errors import ConversationUnavailable
from chat.models import ModelResolver
from chat.runs import RunStatus
from chat.sessions import ImportRejected, Sessions
from chat.text import title_from_prompt
from chat.turns import ChatService
from tests.scripted import chat_service

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(any_store):
    """chat/ is written against `CataloguedStore`: every test here runs on SQLite and in memory."""
    return any_store


@pytest.fixture
def service(store) -> ChatService:
    return chat_service(store, ModelResolver(Settings(), DemoPace.instant()), min_update_interval=0)


@pytest.fixture
def sessions(store) -> Sessions:
    return Sessions(store)


async def say(service: ChatService, prompt: str, conversation: str = "c1", owner: str = "alice"):
    updates = [u async for u in service.run_turn(owner, conversation, prompt, "demo")]
    return updates[-1]


async def test_the_first_completed_prompt_names_the_conversation(service, sessions):
    await say(service, "Plan a three-day trip to Kyoto in autumn with temples and food")
    await say(service, "Make it four days")
    (summary,) = await sessions.list("alice")
    assert summary.title == title_from_prompt("Plan a three-day trip to Kyoto in autumn with temples and food")
    assert summary.title.endswith("…") and len(summary.title) <= 49
    assert summary.model == "demo"


async def test_open_renders_the_stored_chat_with_stopped_labels(service, sessions):
    await say(service, "hello")
    opened = await sessions.open("alice", "c1")
    assert [b["role"] for b in opened.bubbles] == ["user", "assistant"]


async def test_a_conversation_id_alone_opens_renames_deletes_and_exports_nothing(service, sessions):
    await say(service, "my secret plan")
    with pytest.raises(ConversationUnavailable):
        await sessions.open("mallory", "c1")
    with pytest.raises(ConversationUnavailable):
        await sessions.rename("mallory", "c1", "owned")
    with pytest.raises(ConversationUnavailable):
        await sessions.delete("mallory", "c1")
    with pytest.raises(ConversationUnavailable):
        await sessions.export_json("mallory", "c1")
    assert await sessions.search("mallory", "secret") == []
    assert await sessions.list("mallory") == []
    assert (await sessions.open("alice", "c1")).title == "my secret plan"


async def test_rename_and_delete(service, sessions):
    await say(service, "first")
    assert await sessions.rename("alice", "c1", "  Renamed   chat ") == "Renamed chat"
    assert (await sessions.list("alice"))[0].title == "Renamed chat"
    with pytest.raises(ConversationUnavailable):
        await sessions.rename("alice", "c1", "   ")
    await sessions.delete("alice", "c1")
    assert await sessions.list("alice") == []
    with pytest.raises(ConversationUnavailable):
        await sessions.open("alice", "c1")


async def test_export_json_is_lossless_and_imports_as_a_new_conversation(service, sessions, store):
    await say(service, "我叫小王,今年 28。")
    await say(service, "我多大了?")
    exported = await sessions.export_json("alice", "c1")
    original = await store.load("c1", scope="alice")
    assert ConversationTypeAdapter.validate_json(exported).messages == original.messages
    new_id = await sessions.import_json("bob", exported)
    assert new_id != "c1"
    imported = await sessions.open("bob", new_id)
    assert imported.messages == original.messages
    assert imported.title.startswith("Imported: 我叫小王")
    final = await say(service, "我叫什么?", conversation=new_id, owner="bob")
    assert "小王" in final.text  # the imported history is the model's history


async def test_a_bad_import_explains_itself_and_changes_nothing(sessions):
    for payload in ["not json", json.dumps({"messages": [{"kind": "nonsense"}]}), json.dumps({"messages": []})]:
        with pytest.raises(ImportRejected, match="Nothing was imported"):
            await sessions.import_json("alice", payload)
    assert await sessions.list("alice") == []


async def test_export_markdown_is_a_readable_transcript(service, sessions):
    await say(service, "My name is Sam and I am 41.")
    markdown = await sessions.export_markdown("alice", "c1")
    assert markdown.startswith("# My name is Sam and I am 41.")
    assert "**You**\n\nMy name is Sam and I am 41." in markdown and "**Assistant**" in markdown


async def test_regenerate_keeps_the_old_answer_as_a_branch(service, store):
    await say(service, "count to 3")
    prompt = await service.edits.rewind_to_last_prompt("alice", "c1")
    assert prompt == "count to 3"
    assert await service.edits.load_messages("alice", "c1") == []
    final = await say(service, prompt)
    assert final.status is RunStatus.COMPLETED
    messages = await service.edits.load_messages("alice", "c1")
    assert len(messages) == 2
    record = await store.read_record("c1")
    old = await store.read_history(record.branches[0])
    assert old[-1].message.parts[0].content == "1 2 3."


@pytest.mark.parametrize("any_store", ["sqlite"], indirect=True)  # damages a stored row with SQL
async def test_a_corrupt_conversation_opens_with_a_clear_message_and_others_still_work(service, sessions, store):
    await say(service, "broken one", conversation="bad")
    await say(service, "fine one", conversation="good")
    store.db.execute("UPDATE entries SET message_json = 'garbage' WHERE conversation_id = 'bad'")
    with pytest.raises(ConversationUnavailable, match="could not be read"):
        await sessions.open("alice", "bad")
    assert (await sessions.open("alice", "good")).bubbles
    final = await say(service, "still works?", conversation="good")
    assert final.status is RunStatus.COMPLETED
    refused = await say(service, "and this one?", conversation="bad")
    assert refused.status is RunStatus.FAILED and "could not be read" in refused.error


def test_titles_are_cut_on_word_boundaries():
    assert title_from_prompt("  hello\n world ") == "hello world"
    assert title_from_prompt("") == "New chat"
    long = title_from_prompt("word " * 30)
    assert long.endswith("…") and not long.endswith(" …")


async def test_an_import_with_half_an_emoji_imports_the_rest(sessions, store):
    payload = (
        '[{"kind": "request", "parts": [{"part_kind": "user-prompt", "content": "Olá \\ud83d, tudo bem? \\ud83d\\ude00"}]},'
        ' {"kind": "response", "parts": [{"part_kind": "text", "content": "Tudo \\udc00 ótimo"}]}]'
    )
    imported = await sessions.import_json("rui", payload.encode())
    messages = (await store.load(imported, scope="rui")).messages
    assert messages[0].parts[0].content == "Olá \ufffd, tudo bem? \U0001f600"  # the lone half only is replaced
    assert messages[1].parts[0].content == "Tudo \ufffd ótimo"


@pytest.mark.parametrize("any_store", ["sqlite"], indirect=True)  # damages a stored row with SQL
async def test_a_damaged_conversation_can_still_be_exported_raw_and_deleted(service, sessions, store):
    await say(service, "Notizen über Käse", conversation="harmed")
    store.db.execute(
        "UPDATE entries SET message_json = '{\"kind\": \"respo' WHERE conversation_id = 'harmed' AND rowid = "
        "(SELECT max(rowid) FROM entries WHERE conversation_id = 'harmed')"
    )
    with pytest.raises(ConversationUnavailable, match="could not be read"):
        await sessions.open("alice", "harmed")
    salvaged = json.loads(await sessions.export_json("alice", "harmed"))
    assert (
        "Notizen über Käse" in salvaged["stored_messages"][0] and salvaged["stored_messages"][-1] == '{"kind": "respo'
    )
    with pytest.raises(ConversationUnavailable):
        await sessions.export_json("mallory", "harmed")  # damaged or not, only its owner gets it
    await sessions.delete("alice", "harmed")
    assert await store.session("harmed", "alice") is None
    assert store.db.execute("SELECT count(*) FROM entries WHERE conversation_id = 'harmed'").fetchone()[0] == 0
