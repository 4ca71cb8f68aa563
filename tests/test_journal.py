"""Nothing lost when the server dies mid-answer: the turn journal, its checkpoints and the recovery at start."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest
from pydantic_ai.conversation import Conversation
from pydantic_ai.conversation_store import ConversationConflict
from pydantic_ai.messages import ModelRequest, ModelResponse, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from chat.endings import END_KEY, SERVER_RESTARTED
from chat.render import to_bubbles
from chat.wings.journal import Checkpoints, recover_unfinished_turns
from storage.catalogue import StoreUnavailable, TurnEnd
from tests.databases import query
from tests.test_turns import collect, endless_model, make_service

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(server_store):
    """Every test here on a SQLite file and on PostgreSQL."""
    return server_store


def gone_server_id() -> str:
    """The id of a server process on this host that has exited."""
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return f"{socket.gethostname()}:{finished.stdout.strip()}:dead0000"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_checkpoints_write_only_the_new_text_once_per_interval(store):
    journal, clock = store.turn_journal(gone_server_id()), FakeClock()
    checkpoints = await Checkpoints.begin(journal, "ana", "c-7", "¿Qué hora es?", "demo", every=2.0, clock=clock)
    journal.close()  # its server is gone (on PostgreSQL, its lock with it); its rows stay
    checkpoints.saw("Son ")
    await checkpoints.flushed()
    assert (await store.turn_journal().left_by_earlier_servers())[0].partial == ""  # not yet 2 s
    clock.now += 2.1
    checkpoints.saw("Son las ")
    await checkpoints.flushed()
    clock.now += 0.5
    checkpoints.saw("Son las tres")
    await checkpoints.flushed()
    clock.now += 2.0
    checkpoints.saw("Son las tres y media")
    await checkpoints.flushed()
    rows = query(store, "SELECT text FROM running_turn_text ORDER BY id")
    assert rows == [("Son las ",), ("tres y media",)]  # append-only: each checkpoint holds the new text only
    (unfinished,) = await store.turn_journal().left_by_earlier_servers()
    assert (unfinished.prompt, unfinished.partial) == ("¿Qué hora es?", "Son las tres y media")
    await checkpoints.end()
    assert await store.turn_journal().left_by_earlier_servers() == []


async def test_a_turn_is_on_disk_from_before_its_first_token_until_it_is_saved(store):
    asked, answer_now = asyncio.Event(), asyncio.Event()

    async def hesitant(messages, info: AgentInfo):
        asked.set()
        await answer_now.wait()
        yield "Hallo Jörg"

    service = make_service(store, journal=store.turn_journal(), hesitant=FunctionModel(stream_function=hesitant))
    turn = asyncio.create_task(collect(service, "Zähle bis drei", owner="jörg", conversation="c-z", model="hesitant"))
    await asyncio.wait_for(asked.wait(), 10)
    on_disk = query(store, "SELECT scope, conversation_id, prompt FROM running_turns")
    assert on_disk == [("jörg", "c-z", "Zähle bis drei")]  # before the model's first token
    answer_now.set()
    updates = await turn
    assert updates[-1].status.value == "completed"
    assert query(store, "SELECT count(*) FROM running_turns")[0][0] == 0  # saved: nothing to recover


async def test_a_prompt_written_before_the_model_answers_survives_a_crash(store):
    dead = store.turn_journal(gone_server_id())
    turn = await dead.begin("mei", "c-1", "我叫小林，今年35岁。请数到五十。", "demo")
    dead.close()
    rows = query(store, "SELECT prompt FROM running_turns WHERE turn_id = ?", [turn])
    assert rows == [("我叫小林，今年35岁。请数到五十。",)]

    assert await recover_unfinished_turns(store.turn_journal(), store) == 1
    messages = (await store.load("c-1", scope="mei")).messages
    assert messages[0].parts[0].content == "我叫小林，今年35岁。请数到五十。"
    assert (await store.list_sessions("mei"))[0].title.startswith("我叫小林")
    assert "server restarted" in to_bubbles(messages)[-1]["content"]


async def test_a_message_in_a_chat_whose_server_died_puts_its_turn_back_first_without_waiting_for_a_look(store):
    """The visitor of a server that died writes again at once, through another server, in a chat whose first
    turn was running there: it is put back before the new turn reads the conversation, not at the next look."""
    dead = store.turn_journal(gone_server_id())
    turn = await dead.begin("lea", "c-new", "Compte jusqu'à mille.", "demo")
    await dead.append(turn, "1 2 3 4")
    dead.close()
    service = make_service(store, journal=store.turn_journal())
    updates = await collect(service, "Qu'est-ce que je t'ai demandé ?", owner="lea", conversation="c-new")
    assert updates[-1].status.value == "completed"
    bubbles = to_bubbles((await store.load("c-new", scope="lea")).messages)
    assert [bubble["content"] for bubble in bubbles[::2]] == [
        "Compte jusqu'à mille.",
        "Qu'est-ce que je t'ai demandé ?",
    ]
    assert bubbles[1]["content"].startswith("1 2 3 4") and "server restarted" in bubbles[1]["content"]
    assert query(store, "SELECT count(*) FROM running_turns")[0][0] == 0


async def test_recovery_appends_the_partial_answer_after_the_earlier_turns_labelled(store):
    service = make_service(store)
    await collect(service, "My name is Odile.", owner="odile", conversation="c-9")
    dead = store.turn_journal(gone_server_id())
    turn = await dead.begin("odile", "c-9", "count to 500", "demo")
    await dead.append(turn, "1 2 3 ")
    await dead.append(turn, "4 5")
    dead.close()

    assert await recover_unfinished_turns(store.turn_journal(), store) == 1
    messages = (await store.load("c-9", scope="odile")).messages
    assert len(messages) == 4 and "Odile" in messages[0].parts[0].content
    answer = messages[-1]
    assert isinstance(answer, ModelResponse) and answer.state == "interrupted"
    assert answer.parts[0].content == "1 2 3 4 5" and answer.metadata[END_KEY] == SERVER_RESTARTED
    assert to_bubbles(messages)[-1]["content"].startswith("1 2 3 4 5")
    assert await recover_unfinished_turns(store.turn_journal(), store) == 0  # once only
    updates = await collect(service, "What is my name?", owner="odile", conversation="c-9")
    assert "Odile" in updates[-1].text  # the conversation goes on after the recovered turn


async def test_a_turn_of_a_server_still_running_is_left_alone(store):
    alive = f"{socket.gethostname()}:{os.getppid()}:parent00"  # the process that started these tests
    still_running = store.turn_journal(alive)
    await still_running.begin("lin", "c-3", "still streaming", "demo")
    assert await recover_unfinished_turns(store.turn_journal(), store) == 0
    assert await store.load("c-3", scope="lin") is None
    still_running.close()


async def test_a_turn_never_lands_in_someone_elses_conversation(store):
    service = make_service(store)
    await collect(service, "private notes", owner="owner-a", conversation="shared-id")
    dead = store.turn_journal(gone_server_id())
    await dead.begin("owner-b", "shared-id", "sneaky", "demo")
    dead.close()
    assert await recover_unfinished_turns(store.turn_journal(), store) == 0
    messages = (await store.load("shared-id", scope="owner-a")).messages
    assert "sneaky" not in str(messages)
    assert query(store, "SELECT count(*) FROM running_turns")[0][0] == 0


async def test_the_moment_a_turn_is_saved_it_is_out_of_the_journal(store):
    """A server killed right after a turn's save must not put the turn back a second time at the next start:
    the save and the end of the turn's journal entry are one transaction, so no moment holds both."""
    journal_after_each_save = []
    write_record = store.write_record

    async def save_then_look(record, **written):
        await write_record(record, **written)
        journal_after_each_save.append(query(store, "SELECT prompt FROM running_turns"))

    store.write_record = save_then_look
    started = asyncio.Event()
    service = make_service(store, journal=store.turn_journal(), endless=endless_model(started=started))
    await collect(service, "Nenne drei Flüsse.", owner="ilse", conversation="c-f")
    stopping = asyncio.create_task(collect(service, "Zähl weiter…", owner="ilse", conversation="c-f", model="endless"))
    await started.wait()
    assert service.stop("ilse", "c-f")
    assert (await stopping)[-1].status.value == "stopped"
    assert journal_after_each_save == [[], []]  # answered, then stopped: neither left in the journal
    assert await recover_unfinished_turns(store.turn_journal(gone_server_id()), store) == 0
    assert len((await store.load("c-f", scope="ilse")).messages) == 4
    assert (await store.list_sessions("ilse"))[0].title == "Nenne drei Flüsse."


async def test_a_save_that_fails_leaves_the_turn_in_the_journal_and_the_title_unwritten(store):
    dead = store.turn_journal(gone_server_id())
    turn = await dead.begin("rui", "c-r", "Olá, tudo bem?", "demo")
    dead.close()
    await store.save(
        Conversation(conversation_id="c-r", messages=[ModelRequest(parts=[UserPromptPart("primeiro")])]), scope="rui"
    )
    stale = Conversation(conversation_id="c-r", messages=[ModelRequest(parts=[UserPromptPart("Olá, tudo bem?")])])
    with pytest.raises(ConversationConflict):  # saved from elsewhere meanwhile: its revision is old
        await store.save_turn(stale, scope="rui", end=TurnEnd(title="Olá", model="demo", journal_turn_id=turn))
    assert query(store, "SELECT prompt FROM running_turns") == [("Olá, tudo bem?",)]
    assert (await store.session("c-r", "rui")).title == "New chat"


async def test_a_checkpoint_written_after_its_turn_was_saved_leaves_nothing_behind(store):
    journal = store.turn_journal()
    turn = await journal.begin("noa", "c-n", "שלום, מה שלומך?", "demo")
    await journal.append(turn, "שלום")
    saved = Conversation(conversation_id="c-n", messages=[ModelRequest(parts=[UserPromptPart("שלום, מה שלומך?")])])
    await store.save_turn(saved, scope="noa", end=TurnEnd(title="שלום", journal_turn_id=turn))
    await journal.append(turn, "! טוב")  # the checkpoint the save did not wait for
    assert query(store, "SELECT count(*) FROM running_turn_text")[0][0] == 0
    assert query(store, "SELECT count(*) FROM running_turns")[0][0] == 0


async def test_a_turn_that_ended_while_the_database_was_away_never_comes_back_as_restarted(store):
    """Its visitor was told it failed and kept the prompt; once the database is back its entry is ended,
    so a server that later finds this one gone puts nothing back."""
    journal = store.turn_journal()
    checkpoints = await Checkpoints.begin(journal, "tomás", "c-t", "¿Sigues ahí? 🙂", "demo")
    reachable_finish = journal.finish

    async def database_away(turn_id: str) -> None:
        raise StoreUnavailable("PostgreSQL is not reachable")

    journal.finish = database_away
    await checkpoints.end()  # the turn failed as the visitor was told; ending its entry fails too
    assert query(store, "SELECT prompt FROM running_turns") == [("¿Sigues ahí? 🙂",)]
    journal.finish = reachable_finish  # the database is back: this server's next look ends the entry
    assert await recover_unfinished_turns(journal, store) == 0
    journal.close()  # and then this server is gone
    assert await recover_unfinished_turns(store.turn_journal(), store) == 0
    assert await store.load("c-t", scope="tomás") is None


class FlakyJournal:
    """A journal whose database is away for its first checkpoint, and slow while `hold` is clear."""

    def __init__(self) -> None:
        self.appended: list[str] = []
        self.failures_left = 1
        self.hold = asyncio.Event()
        self.hold.set()

    async def begin(self, *_: str) -> str:
        return "turn-1"

    async def append(self, turn_id: str, text: str) -> None:
        await self.hold.wait()
        if self.failures_left:
            self.failures_left -= 1
            raise StoreUnavailable("away")
        self.appended.append(text)

    async def finish(self, turn_id: str) -> None:
        pass


async def test_a_checkpoint_never_holds_up_the_answer_and_one_that_failed_goes_with_the_next():
    journal, clock = FlakyJournal(), FakeClock()
    checkpoints = await Checkpoints.begin(journal, "kofi", "c-2", "count", "demo", every=2.0, clock=clock)
    clock.now += 2.1
    checkpoints.saw("un deux ")  # the database is away: nothing is written, the answer goes on
    await checkpoints.flushed()
    assert journal.appended == []
    journal.hold.clear()  # now the database is slow
    clock.now += 2.1
    checkpoints.saw("un deux trois ")  # returns at once, its write still waiting
    clock.now += 2.1
    checkpoints.saw("un deux trois quatre ")  # one write at a time: this one waits for the next interval
    journal.hold.set()
    await checkpoints.flushed()
    clock.now += 2.1
    checkpoints.saw("un deux trois quatre cinq")
    await checkpoints.end()
    assert journal.appended == ["un deux trois ", "quatre cinq"]  # nothing lost, nothing twice
