"""The SQLite store at size: save cost by conversation length, listing, and search.

    python -m benchmarks.store            # full sizes
    python -m benchmarks.store --quick    # tiny sizes (the test suite runs this)

Every figure is a median over repeated runs, reported against a baseline measured in the same
run: saves against the save at turn 1, listing and search against an indexed one-row lookup.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from pydantic_ai.conversation import Conversation
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

from benchmarks.common import Row, Samples, Section, run_as_script
from storage.sqlite_store import SQLiteConversationStore

SAVE_GOAL = 1.5
CHECKPOINT_GOAL = 1.5
"""Issue 13: checkpointing a streaming answer costs at most 1.5x an ordinary save at turn 1,000."""
CHECKPOINT_TEXT = "1 2 3 4 5 6 7 8 9 10 " * 20
"""About two seconds of an answer at 100 tokens/s: what one checkpoint writes."""
WORDS_EN = ["tofu", "pepper", "garlic", "ginger", "scallion", "bean", "sauce", "rice", "noodle", "broth"]
WORDS_ZH = ["麻婆豆腐", "花椒", "大蒜", "生姜", "葱花", "豆瓣酱", "米饭", "面条", "高汤", "牛肉"]


def turn(n: int) -> list:
    en, zh = WORDS_EN[n % 10], WORDS_ZH[(n * 7) % 10]
    return [
        ModelRequest(parts=[UserPromptPart(f"Question {n}: how do I cook {en} with {zh}?")]),
        ModelResponse(parts=[TextPart(f"Answer {n}: slice the {en}, add {zh}, simmer for {n % 30} minutes.")]),
    ]


def timed(operation, repeat: int = 7) -> Samples:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - started)
    return Samples.of(samples)


async def timed_awaits(operation, repeat: int = 7) -> Samples:
    """`timed` for the catalogue's calls, each awaited as chat/ awaits it (a worker thread included)."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await operation()
        samples.append(time.perf_counter() - started)
    return Samples.of(samples)


async def catalogue_costs(store: SQLiteConversationStore) -> tuple[Samples, Samples, Samples, Samples]:
    return (
        await timed_awaits(lambda: store.session("fill-7", "owner-7")),
        await timed_awaits(lambda: store.list_sessions("owner-3", limit=50)),
        await timed_awaits(lambda: store.search("owner-3", "garlic")),
        await timed_awaits(lambda: store.search("owner-3", "麻婆豆腐")),
    )


async def save_cost_at(store: SQLiteConversationStore, turns: int, conversation_id: str) -> Samples:
    conversation = Conversation(conversation_id=conversation_id)
    for n in range(turns - 1):
        conversation.messages.extend(turn(n))
    await store.save(conversation, scope="bench")
    samples = []
    for n in range(21):
        loaded = await store.load(conversation_id, scope="bench", limit=2)
        loaded.messages.extend(turn(turns + n))
        started = time.perf_counter()
        await store.save(loaded, scope="bench")
        samples.append(time.perf_counter() - started)
    return Samples.of(samples)


async def fill(store: SQLiteConversationStore, conversations: int, messages_each: int) -> None:
    for c in range(conversations):
        conversation = Conversation(conversation_id=f"fill-{c}")
        for n in range(messages_each // 2):
            conversation.messages.extend(turn(c + n))
        await store.save(conversation, scope=f"owner-{c % 10}")


async def checkpoint_cost(store: SQLiteConversationStore) -> Samples:
    journal = store.turn_journal()
    turn_id = await journal.begin("bench", "turn-long", "count to 5000", "demo")
    cost = await timed_awaits(lambda: journal.append(turn_id, CHECKPOINT_TEXT), repeat=21)
    await journal.finish(turn_id)
    return cost


def run(quick: bool) -> Section:
    long_turns = 20 if quick else 1000
    conversations, messages_each = (100, 10) if quick else (10_000, 10)

    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteConversationStore(Path(folder) / "bench.db")
        asyncio.run(save_cost_at(store, 1, "warm-up"))  # the first save builds pydantic's serializers
        saves = {1: asyncio.run(save_cost_at(store, 1, "turn-1"))}
        if not quick:
            saves[100] = asyncio.run(save_cost_at(store, 100, "turn-100"))
        saves[long_turns] = asyncio.run(save_cost_at(store, long_turns, "turn-long"))
        checkpoint = asyncio.run(checkpoint_cost(store))
        asyncio.run(fill(store, conversations, messages_each))
        total_messages = store.db.execute("SELECT count(*) FROM entries").fetchone()[0]
        lookup, listing, search_en, search_zh = asyncio.run(catalogue_costs(store))

    first = saves[1]
    rows = [Row("save at turn 1", first.ms(2), "", None, "baseline")]
    for turn, cost in saves.items():
        if turn != 1:
            ratio = cost.median / first.median
            rows.append(
                Row(f"save at turn {turn:,}", cost.ms(2), first.ms(2), ratio, f"<= {SAVE_GOAL:g}", ratio <= SAVE_GOAL)
            )
    long_save = saves[long_turns]
    ratio = checkpoint.median / long_save.median
    rows.append(
        Row(
            f"checkpoint of a streaming answer ({len(CHECKPOINT_TEXT)} chars), vs a save at turn {long_turns:,}",
            checkpoint.ms(2),
            long_save.ms(2),
            ratio,
            f"<= {CHECKPOINT_GOAL:g}",
            ratio <= CHECKPOINT_GOAL,
        )
    )
    rows.append(Row("one-row lookup by id and owner", lookup.ms(3), "", None, "baseline"))
    for name, cost in (
        (f"list 50 of {conversations:,} conversations", listing),
        (f"search 'garlic' over {total_messages:,} messages (the visitor's: a tenth)", search_en),
        (f"search '麻婆豆腐' over {total_messages:,} messages (the visitor's: a tenth)", search_zh),
    ):
        rows.append(Row(name, cost.ms(2), lookup.ms(3), cost.median / lookup.median))
    return Section(
        "SQLite store",
        rows,
        [
            (
                "A real SQLite file; a save appends one turn to a conversation of that length (21 saves each), "
                "lookups and searches are repeated 7 times. Search reads the visitor's own messages only (a "
                "tenth of these), so its cost grows with their share, not with the whole database."
            )
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
