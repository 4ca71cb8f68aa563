"""The app's catalogue (titles, listing, search, policies, stored bytes) on every backend chat/ runs on."""

from __future__ import annotations

import pytest
from pydantic_ai.conversation import Conversation
from pydantic_ai.conversation_store import ConversationConflict
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

from storage.catalogue import ServerStore, TurnEnd

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(any_store):
    return any_store


async def chat(store, conversation_id: str, scope: str, *turns: tuple[str, str]) -> None:
    conversation = await store.load(conversation_id, scope=scope) or Conversation(conversation_id=conversation_id)
    for prompt, answer in turns:
        conversation.messages += [ModelRequest(parts=[UserPromptPart(prompt)]), ModelResponse(parts=[TextPart(answer)])]
    await store.save(conversation, scope=scope)


async def test_listing_is_per_owner_and_kind_newest_first_with_limit_and_offset(store):
    for n in range(4):
        await chat(store, f"c{n}", "ayşe", (f"soru {n}", f"cevap {n}"))
    await chat(store, "r1", "ayşe", ("menemen", "{}"))
    await store.describe("r1", "ayşe", TurnEnd(title="Menemen", kind="recipe"))
    await chat(store, "c1", "ayşe", ("bir soru daha", "tamam"))  # the latest change goes first
    listed = [summary.conversation_id for summary in await store.list_sessions("ayşe")]
    assert listed == ["c1", "c3", "c2", "c0"]
    assert [s.conversation_id for s in await store.list_sessions("ayşe", limit=2, offset=1)] == ["c3", "c2"]
    assert [s.title for s in await store.list_sessions("ayşe", kind="recipe")] == ["Menemen"]
    assert await store.session("r1", "ayşe") is None and await store.session("r1", "ayşe", kind="recipe")
    assert await store.list_sessions("someone-else") == []


async def test_a_turns_settings_are_its_policy_and_summary_and_only_the_owners(store):
    await chat(store, "p1", "ravi", ("namaste", "namaste!"))
    assert (await store.turn_settings("p1", "ravi")).summary is None
    await store.set_context_policy("p1", "ravi", "summary")
    await store.save_summary("p1", "ravi", "They greeted each other.", 2)
    settings = await store.turn_settings("p1", "ravi")
    assert (settings.context_policy, settings.summary) == ("summary", ("They greeted each other.", 2))
    await store.set_context_policy("p1", "mallory", "full")
    assert await store.context_policy("p1", "ravi") == "summary"
    assert (await store.turn_settings("p1", "mallory")).context_policy is None


async def test_another_owner_neither_writes_nor_blocks_a_conversations_summary(store):
    await chat(store, "s1", "ravi", ("namaste", "namaste!"))
    await store.save_summary("s1", "mallory", "Mallory's words.", 2)  # knows the id, not the owner
    await store.save_summary("s1", "ravi", "They greeted each other.", 2)
    assert (await store.turn_settings("s1", "ravi")).summary == ("They greeted each other.", 2)
    assert (await store.turn_settings("s1", "mallory")).summary is None


async def test_save_turn_writes_its_metadata_and_ends_its_journal_entry_with_the_messages_or_not_at_all(store):
    """A save another server made meanwhile is found in the write itself (pydantic-ai's own check before it
    passes when both read first): what the turn adds beside its messages must go with them."""
    await chat(store, "c1", "ana", ("olá", "olá!"))
    stale, read_by_both = await store.load("c1", scope="ana"), await store.read_record("c1")
    await chat(store, "c1", "ana", ("saved", "meanwhile"))
    stale.messages += [ModelRequest(parts=[UserPromptPart("late")])]
    journal = store.turn_journal() if isinstance(store, ServerStore) else None  # the turn's entry, where kept
    turn_id = journal and await journal.begin("ana", "c1", "late", "demo")
    end = TurnEnd(title="Olá", model="demo", context_policy="summary", kind="recipe", journal_turn_id=turn_id)

    async def as_read_before_the_other_saved(conversation_id: str):
        return read_by_both

    store.read_record = as_read_before_the_other_saved
    with pytest.raises(ConversationConflict):
        await store.save_turn(stale, scope="ana", end=end)
    del store.read_record
    assert (await store.session("c1", "ana")).model is None
    assert await store.context_policy("c1", "ana") is None
    assert journal is None or await journal.running("ana", "c1")
    fresh = await store.load("c1", scope="ana")
    fresh.messages += [ModelRequest(parts=[UserPromptPart("on time")])]
    await store.save_turn(fresh, scope="ana", end=end)
    described = await store.session("c1", "ana", kind="recipe")
    assert (described.title, described.model) == ("Olá", "demo")
    assert await store.context_policy("c1", "ana") == "summary"
    if journal is not None:
        assert not await journal.running("ana", "c1")
        journal.close()


async def test_raw_messages_are_every_stored_message_and_only_for_the_owner(store):
    await chat(store, "raw", "ines", ("olá", "olá!"), ("tudo bem?", "sim"))
    raw = await store.raw_messages("raw", "ines")
    assert len(raw) == 4 and "tudo bem?" in raw[2]
    assert await store.raw_messages("raw", "mallory") == []


async def test_search_finds_chinese_and_english_only_in_the_owners_conversations(store):
    await chat(store, "zh", "alice", ("我想学习麻婆豆腐的做法", "好的"))
    await chat(store, "en", "alice", ("Tell me about sourdough bread", "Sure"))
    await chat(store, "bob", "bob", ("麻婆豆腐 and sourdough", "mine"))
    assert [h.conversation_id for h in await store.search("alice", "麻婆豆腐")] == ["zh"]
    assert [h.conversation_id for h in await store.search("alice", "豆腐")] == ["zh"]  # two characters
    assert [h.conversation_id for h in await store.search("alice", "SOURDOUGH")] == ["en"]
    assert "«麻婆豆腐»" in (await store.search("alice", "麻婆豆腐"))[0].snippet
    assert await store.search("alice", 'bread" OR "x') == []  # quotes are text, not FTS syntax
    assert await store.search("alice", "   ") == []


async def test_search_ignores_case_beyond_ascii_and_treats_wildcards_as_text(store):
    await chat(store, "fr", "zoé", ("Où est l'ÉCOLE de Željko?", "Près de la gare"))
    await chat(store, "pct", "zoé", ("Is 100% of 5_000 too much?", "no"))
    await chat(store, "other", "zoé", ("nothing here", "at all"))
    assert [h.conversation_id for h in await store.search("zoé", "école de želj")] == ["fr"]
    assert [h.conversation_id for h in await store.search("zoé", "ÉCOLE")] == ["fr"]
    assert "«ÉCOLE»" in (await store.search("zoé", "école"))[0].snippet  # as written, marked where it matched
    assert [h.conversation_id for h in await store.search("zoé", "100%")] == ["pct"]
    assert [h.conversation_id for h in await store.search("zoé", "5_0")] == ["pct"]
    assert [h.conversation_id for h in await store.search("zoé", "%")] == ["pct"]  # a percent sign, not "anything"
    assert [h.conversation_id for h in await store.search("zoé", "_")] == ["pct"]


async def test_a_run_titles_its_chat_once_in_one_write_and_only_the_owner_renames_it(store):
    await chat(store, "c1", "alice", ("q", "a"))
    assert (await store.session("c1", "alice")).title == "New chat"
    await store.describe("c1", "alice", TurnEnd(title="Primero", model="demo", context_policy="summary"))
    await store.describe(
        "c1", "alice", TurnEnd(title="Segundo", model="openai-chat:gpt-4o-mini")
    )  # a later turn: no new title
    described = await store.session("c1", "alice")
    assert (described.title, described.model) == ("Primero", "openai-chat:gpt-4o-mini")
    assert await store.context_policy("c1", "alice") == "summary"  # None left it as it was
    await store.describe("c1", "bob", TurnEnd(title="Stolen", model="evil"))  # someone else's: nothing changes
    assert not await store.set_title("c1", "bob", "Stolen")
    assert (
        await store.session("c1", "bob") is None
        and (await store.session("c1", "alice")).model == "openai-chat:gpt-4o-mini"
    )
    assert await store.set_title("c1", "alice", "Renamed")  # a rename always replaces the title
    await chat(store, "c1", "alice", ("q2", "a2"))  # a save keeps the app's metadata
    assert (await store.session("c1", "alice")).title == "Renamed"


async def test_the_sidebars_title_is_the_title_pydantic_ai_keeps_on_the_record(store):
    await chat(store, "t1", "zoë", ("¿Qué tal?", "Bien"))
    await store.describe("t1", "zoë", TurnEnd(title="¿Qué tal?"))  # the app names it from the first prompt ...
    assert (await store.read_record("t1")).title is None  # ... which is not a title anyone set
    await store.update("t1", title="Café, Köln → Zürich", expected_title=None, scope="zoë")  # an agent titles it
    assert (await store.session("t1", "zoë")).title == "Café, Köln → Zürich"
    assert await store.set_title("t1", "zoë", "Mein Titel")  # the page's rename
    assert (await store.read_record("t1")).title == "Mein Titel"
    assert [record.title for record in await store.list_conversations(scope="zoë")] == ["Mein Titel"]
    assert not await store.set_title("t1", "mallory", "Gestohlen")
    assert (await store.read_record("t1")).title == "Mein Titel"
    await store.update("t1", title=None, scope="zoë")  # cleared: a new chat until a prompt names it again
    assert (await store.session("t1", "zoë")).title == "New chat"
    await chat(store, "t1", "zoë", ("Nächste Frage", "Antwort"))
    await store.describe("t1", "zoë", TurnEnd(title="Nächste Frage"))
    assert (await store.session("t1", "zoë")).title == "Nächste Frage"


async def test_stored_bytes_grow_with_each_save_per_owner_and_go_with_a_delete(store):
    await chat(store, "k1", "kofi", ("Akwaaba! Wo ho te sɛn?", "Me ho yɛ."))
    after_one = await store.stored_bytes("kofi")
    assert after_one > len("Akwaaba! Wo ho te sɛn?Me ho yɛ.".encode())
    await chat(store, "k1", "kofi", ("Ε" * 3000, "ok"))
    # the message and its search text, two bytes a letter each
    assert await store.stored_bytes("kofi") - after_one >= 2 * 3000 * 2
    await chat(store, "l1", "lena", ("Hallo", "Hallo!"))
    assert await store.stored_bytes("lena") < after_one and await store.stored_bytes("nobody") == 0
    await store.delete("k1", scope="kofi")
    assert await store.stored_bytes("kofi") == 0 and await store.stored_bytes("lena") > 0
