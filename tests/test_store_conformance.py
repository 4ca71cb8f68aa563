"""One behavioural suite over pydantic-ai's InMemoryConversationStore and ours (SQLite, PostgreSQL, and the
in-memory one with the catalogue): where they differ, ours is wrong."""

from __future__ import annotations

import itertools

import pytest
from pydantic_ai.conversation import Conversation
from pydantic_ai.conversation_store import ConversationConflict, InMemoryConversationStore
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.usage import RunUsage

from storage.catalogue import CataloguedStore
from storage.memory_store import MemoryConversationStore
from storage.sqlite_store import SQLiteConversationStore
from tests.databases import query

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["pydantic-ai", "sqlite", "postgresql", "memory-with-catalogue"])
def store(request, tmp_path):
    if request.param == "pydantic-ai":
        return InMemoryConversationStore()
    if request.param == "memory-with-catalogue":
        return MemoryConversationStore()
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_store")
    return SQLiteConversationStore(tmp_path / "chat.db")


def turn(prompt: str, answer: str) -> list:
    return [ModelRequest(parts=[UserPromptPart(prompt)]), ModelResponse(parts=[TextPart(answer)])]


def texts(conversation: Conversation) -> list[str]:
    return [part.content for message in conversation.messages for part in message.parts]


async def saved(store, conversation_id="c1", scope="alice", turns=2) -> Conversation:
    conversation = Conversation(conversation_id=conversation_id, usage=RunUsage(input_tokens=5, requests=1))
    for n in range(turns):
        conversation.messages.extend(turn(f"q{n}", f"a{n}"))
    await store.save(conversation, scope=scope)
    return conversation


async def test_save_then_load_round_trips_messages_usage_and_revision(store):
    original = await saved(store)
    loaded = await store.load("c1", scope="alice")
    assert loaded.messages == original.messages
    assert loaded.usage == RunUsage(input_tokens=5, requests=1)
    assert loaded.revision == original.revision is not None


async def test_saving_again_appends_only_the_new_messages(store):
    await saved(store)
    loaded = await store.load("c1", scope="alice")
    loaded.messages.extend(turn("q2", "a2"))
    entries = await store.save(loaded, scope="alice")
    assert len(entries) == 2
    assert texts(await store.load("c1", scope="alice")) == ["q0", "a0", "q1", "a1", "q2", "a2"]


async def test_limit_loads_only_the_last_messages(store):
    await saved(store, turns=3)
    assert texts(await store.load("c1", limit=2, scope="alice")) == ["q2", "a2"]
    assert texts(await store.load("c1", limit=0, scope="alice")) == []
    with pytest.raises(UserError):
        await store.load("c1", limit=-1, scope="alice")


async def test_a_stale_revision_conflicts(store):
    await saved(store)
    first = await store.load("c1", scope="alice")
    second = await store.load("c1", scope="alice")
    first.messages.extend(turn("from one", "x"))
    await store.save(first, scope="alice")
    second.messages.extend(turn("from two", "y"))
    with pytest.raises(ConversationConflict):
        await store.save(second, scope="alice")
    assert texts(await store.load("c1", scope="alice"))[-2:] == ["from one", "x"]


async def test_a_new_conversation_with_an_existing_id_conflicts(store):
    await saved(store)
    with pytest.raises(ConversationConflict):
        await store.save(Conversation(conversation_id="c1", messages=turn("q", "a")), scope="alice")


async def test_another_scope_cannot_load_save_list_or_delete(store):
    await saved(store)
    assert await store.load("c1", scope="bob") is None
    assert await store.list_conversations(scope="bob") == []
    await store.delete("c1", scope="bob")
    assert await store.load("c1", scope="alice") is not None
    stolen = await store.load("c1", scope="alice")
    stolen.messages.extend(turn("bob writes", "no"))
    with pytest.raises(ConversationConflict):
        await store.save(stolen, scope="bob")


async def test_list_is_newest_first_and_limited(store):
    for name in ["c1", "c2", "c3"]:
        await saved(store, name)
    other = await saved(store, "elsewhere", scope="bob")
    assert other
    listed = [r.conversation_id for r in await store.list_conversations(scope="alice")]
    assert listed == ["c3", "c2", "c1"]
    assert [r.conversation_id for r in await store.list_conversations(scope="alice", limit=2)] == ["c3", "c2"]


async def test_branch_keeps_the_old_history_and_can_switch_back(store):
    await saved(store, turns=2)
    loaded = await store.load("c1", scope="alice")
    branched = await store.branch("c1", at=2, expected_revision=loaded.revision, scope="alice")
    assert texts(branched) == ["q0", "a0"]
    branched.messages.extend(turn("q1 edited", "a1 new"))
    await store.save(branched, scope="alice")
    assert texts(await store.load("c1", scope="alice")) == ["q0", "a0", "q1 edited", "a1 new"]
    record = await store.read_record("c1")
    assert len(record.branches) == 1
    back = await store.branch("c1", from_entry=record.branches[0], expected_revision=record.revision, scope="alice")
    assert texts(back) == ["q0", "a0", "q1", "a1"]


async def test_fork_shares_history_and_survives_deleting_the_original(store):
    await saved(store, turns=2)
    fork = await store.fork("c1", at=2, new_conversation_id="f1", source_scope="alice")
    assert texts(fork) == ["q0", "a0"]
    fork.messages.extend(turn("fork q", "fork a"))
    await store.save(fork, scope="alice")
    await store.delete("c1", scope="alice")
    assert await store.load("c1", scope="alice") is None
    assert texts(await store.load("f1", scope="alice")) == ["q0", "a0", "fork q", "fork a"]


async def test_delete_removes_the_conversation(store):
    await saved(store)
    await store.delete("c1", scope="alice")
    assert await store.load("c1", scope="alice") is None
    assert await store.list_conversations(scope="alice") == []
    await saved(store)  # the id can be used again
    assert await store.load("c1", scope="alice") is not None


async def test_load_entries_identifies_each_message(store):
    await saved(store)
    entries = await store.load_entries("c1", scope="alice")
    assert [e.parent_id for e in entries[1:]] == [e.id for e in entries[:-1]]
    assert entries[0].parent_id is None


def stored_messages(store) -> int:
    """Messages the store still holds on disk (or in memory), whoever they belonged to."""
    if isinstance(store, InMemoryConversationStore):
        return len(store._entries)
    return query(store, "SELECT count(*) FROM entries")[0][0]


async def test_a_save_stores_one_entry_per_new_message_and_leaves_the_earlier_ones_as_they_were(store):
    await saved(store, turns=2)
    first_entries = await store.load_entries("c1", scope="alice")
    assert stored_messages(store) == 4  # one per message, not one for the conversation
    loaded = await store.load("c1", scope="alice")
    loaded.messages.extend(turn("q2", "a2"))
    await store.save(loaded, scope="alice")
    assert stored_messages(store) == 6
    assert [await store.read_entry(entry.id) for entry in first_entries] == first_entries


@pytest.mark.parametrize("stored_before", [True, False], ids=["saved-conversation", "new-conversation"])
async def test_of_two_saves_that_read_the_same_revision_one_wins_and_the_other_leaves_nothing(store, stored_before):
    """pydantic-ai's `save` compares revisions before it writes; two servers saving at once both pass that
    check, so `write_record` must compare again, in the write, and roll back what the loser wrote."""
    if stored_before:
        await saved(store)
        first, second = await store.load("c1", scope="alice"), await store.load("c1", scope="alice")
    else:
        first, second = Conversation(conversation_id="c1"), Conversation(conversation_id="c1")
    read_by_both = await store.read_record("c1")
    first.messages.extend(turn("from one", "x"))
    second.messages.extend(turn("from two", "y"))
    await store.save(first, scope="alice")
    real_read_record = store.read_record

    async def as_read_before_the_other_saved(conversation_id: str):
        return read_by_both

    store.read_record = as_read_before_the_other_saved
    with pytest.raises(ConversationConflict):
        await store.save(second, scope="alice")
    store.read_record = real_read_record
    assert texts(await store.load("c1", scope="alice"))[-2:] == ["from one", "x"]
    assert stored_messages(store) == len(first.messages)  # nothing of the losing save


async def fork_chain(store) -> dict[str, list[str]]:
    """X, Y forked from X with a turn of its own, Z forked from Y with one more: what each should load."""
    await saved(store, "X", turns=1)
    y = await store.fork("X", new_conversation_id="Y", source_scope="alice")
    y.messages.extend(turn("y asks", "y hears"))
    await store.save(y, scope="alice")
    z = await store.fork("Y", new_conversation_id="Z", source_scope="alice")
    z.messages.extend(turn("z asks", "z hears"))
    await store.save(z, scope="alice")
    return {
        "X": ["q0", "a0"],
        "Y": ["q0", "a0", "y asks", "y hears"],
        "Z": ["q0", "a0", "y asks", "y hears", "z asks", "z hears"],
    }


@pytest.mark.parametrize("order", list(itertools.permutations("XYZ")), ids="".join)
async def test_a_fork_chain_deletes_in_any_order_and_leaves_nothing_behind(store, order):
    expected = await fork_chain(store)
    for name in order:
        await store.delete(name, scope="alice")
        del expected[name]
        for remaining, messages in expected.items():  # the others still load whole
            assert texts(await store.load(remaining, scope="alice")) == messages
    assert await store.list_conversations(scope="alice") == []
    assert stored_messages(store) == 0


async def test_deleting_a_fork_and_its_original_leaves_no_messages_or_search_text(store):
    await saved(store, turns=2)
    fork = await store.fork("c1", new_conversation_id="f1", source_scope="alice")
    fork.messages.extend(turn("ζήτημα δικό μου", "απάντηση"))
    await store.save(fork, scope="alice")
    await store.delete("c1", scope="alice")
    await store.delete("f1", scope="alice")
    assert stored_messages(store) == 0
    if isinstance(store, CataloguedStore):
        assert await store.search("alice", "q1") == [] and await store.search("alice", "ζήτημα") == []


async def test_deleting_keeps_what_a_branch_still_reaches_and_drops_what_only_it_reached(store):
    await saved(store, turns=2)
    loaded = await store.load("c1", scope="alice")
    branched = await store.branch("c1", at=2, expected_revision=loaded.revision, scope="alice")
    branched.messages.extend(turn("other way", "sure"))
    await store.save(branched, scope="alice")
    await saved(store, "c2", turns=1)
    await store.delete("c1", scope="alice")
    assert stored_messages(store) == 2  # c2's two; c1's branch went with it
    assert texts(await store.load("c2", scope="alice")) == ["q0", "a0"]


async def test_read_history_walks_from_a_head_with_or_without_a_limit(store):
    await saved(store, turns=3)
    record = await store.read_record("c1")
    whole = await store.read_history(record.head_id)
    assert [entry.message.parts[0].content for entry in whole] == ["q0", "a0", "q1", "a1", "q2", "a2"]
    assert [entry.id for entry in await store.read_history(record.head_id, limit=2)] == [e.id for e in whole[-2:]]
    assert await store.read_history(None) == []
    middle = await store.read_history(whole[2].id)
    assert [entry.id for entry in middle] == [entry.id for entry in whole[:3]]


async def test_a_fork_at_a_point_starts_fresh_usage_and_a_whole_fork_copies_it(store):
    await saved(store, turns=2)
    part = await store.fork("c1", at=2, new_conversation_id="part", source_scope="alice")
    whole = await store.fork("c1", new_conversation_id="whole", source_scope="alice", scope="bob")
    assert part.usage == RunUsage() and whole.usage == RunUsage(input_tokens=5, requests=1)
    assert await store.load("whole", scope="alice") is None  # the fork took the scope it was given
    assert texts(await store.load("whole", scope="bob")) == ["q0", "a0", "q1", "a1"]
    with pytest.raises(ConversationConflict):
        await store.fork("c1", new_conversation_id="part", source_scope="alice")
    with pytest.raises(UserError):
        await store.fork("c1", new_conversation_id="x", source_scope="bob")  # not bob's to fork


async def test_saving_onto_a_deleted_conversation_conflicts(store):
    await saved(store)
    stale = await store.load("c1", scope="alice")
    await store.delete("c1", scope="alice")
    stale.messages.extend(turn("too late", "gone"))
    with pytest.raises(ConversationConflict):
        await store.save(stale, scope="alice")


async def test_a_reopened_sqlite_file_holds_the_same_conversations(tmp_path):
    first = SQLiteConversationStore(tmp_path / "kept.db")
    expected = await fork_chain(first)
    reopened = SQLiteConversationStore(tmp_path / "kept.db")
    for name, messages in expected.items():
        assert texts(await reopened.load(name, scope="alice")) == messages
    await reopened.delete("Y", scope="alice")
    assert texts(await reopened.load("Z", scope="alice")) == expected["Z"]


# -- titles and metadata (pydantic-ai 2.78: `update`, `write_details`) ------------------------------


async def test_update_sets_a_title_and_metadata_without_changing_the_revision(store):
    conversation = await saved(store)
    record = await store.update(
        "c1", title="Sopa de ajo ¿y después?", metadata={"model": "demo", "n": 3}, scope="alice"
    )
    assert (record.title, record.metadata) == ("Sopa de ajo ¿y después?", {"model": "demo", "n": 3})
    assert record.revision == conversation.revision
    stored = await store.read_record("c1")
    assert (stored.title, stored.metadata, stored.revision) == (record.title, record.metadata, conversation.revision)
    [listed] = await store.list_conversations(scope="alice")
    assert listed.title == "Sopa de ajo ¿y después?"


async def test_update_changes_only_what_is_passed_and_none_clears_it(store):
    await saved(store)
    await store.update("c1", title="一番目", metadata={"pinned": True}, scope="alice")
    assert (await store.update("c1", title="二番目", scope="alice")).metadata == {"pinned": True}
    cleared = await store.update("c1", metadata=None, scope="alice")
    assert (cleared.title, cleared.metadata) == ("二番目", None)
    assert (await store.update("c1", title=None, scope="alice")).title is None


async def test_a_save_neither_conflicts_with_nor_undoes_an_update(store):
    await saved(store)
    loaded = await store.load("c1", scope="alice")  # read before the update
    await store.update("c1", title="Renamed meanwhile", metadata={"tag": "x"}, scope="alice")
    loaded.messages.extend(turn("after", "the rename"))
    await store.save(loaded, scope="alice")
    record = await store.read_record("c1")
    assert (record.title, record.metadata) == ("Renamed meanwhile", {"tag": "x"})
    assert texts(await store.load("c1", scope="alice"))[-2:] == ["after", "the rename"]


async def test_expected_title_guards_a_title_someone_set(store):
    await saved(store)
    named = await store.update("c1", title="Auto", expected_title=None, scope="alice")
    assert named.title == "Auto"
    with pytest.raises(ConversationConflict):
        await store.update("c1", title="Second guess", expected_title=None, scope="alice")
    assert (await store.read_record("c1")).title == "Auto"
    assert (await store.update("c1", title="Mine", expected_title="Auto", scope="alice")).title == "Mine"


async def test_write_details_checks_the_revision_and_the_expected_values_where_it_writes(store):
    await saved(store)
    read_earlier = await store.read_record("c1")
    loaded = await store.load("c1", scope="alice")
    loaded.messages.extend(turn("saved", "meanwhile"))
    await store.save(loaded, scope="alice")
    with pytest.raises(ConversationConflict):  # saved since it was read
        await store.write_details("c1", {"title": "Late"}, expected_revision=read_earlier.revision)
    with pytest.raises(ConversationConflict):  # someone else's title is there
        await store.write_details("c1", {"title": "Mine"}, expected_revision=loaded.revision, expected={"title": "X"})
    with pytest.raises(ConversationConflict):  # deleted
        await store.write_details("gone", {"title": "Mine"}, expected_revision=loaded.revision)
    assert (await store.read_record("c1")).title is None
    written = await store.write_details(
        "c1", {"title": "Mine"}, expected_revision=loaded.revision, expected={"title": None}
    )
    assert (written.title, written.revision) == ("Mine", loaded.revision)


async def test_update_is_scoped_and_needs_a_stored_conversation(store):
    await saved(store)
    with pytest.raises(UserError):
        await store.update("c1", title="bob's now", scope="bob")
    with pytest.raises(UserError):
        await store.update("missing", title="anything", scope="alice")
    assert (await store.read_record("c1")).title is None


async def test_a_branch_keeps_the_title_and_a_fork_starts_without_one(store):
    conversation = await saved(store)
    await store.update("c1", title="Kept", metadata={"k": 1}, scope="alice")
    branched = await store.branch("c1", at=2, expected_revision=conversation.revision, scope="alice")
    assert branched is not None
    assert (await store.read_record("c1")).title == "Kept"
    await store.fork("c1", new_conversation_id="f1", source_scope="alice")
    fork = await store.read_record("f1")
    assert (fork.title, fork.metadata) == (None, None)
