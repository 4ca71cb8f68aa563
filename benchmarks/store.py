"""The SQLite store at size: save cost by conversation length, listing, and full-text search.

    python -m benchmarks.store            # full sizes, writes benchmarks/RESULTS-store.md
    python -m benchmarks.store --quick    # tiny sizes, no file (the test suite runs this)

Every figure is a median over repeated runs, reported against a baseline measured in the same
run: saves against the save at turn 1, listing and search against an indexed one-row lookup.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic_ai.conversation import Conversation
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

from storage.sqlite_store import SQLiteConversationStore

RESULTS = Path(__file__).with_name("RESULTS-store.md")
WORDS_EN = ["tofu", "pepper", "garlic", "ginger", "scallion", "bean", "sauce", "rice", "noodle", "broth"]
WORDS_ZH = ["麻婆豆腐", "花椒", "大蒜", "生姜", "葱花", "豆瓣酱", "米饭", "面条", "高汤", "牛肉"]


def turn(n: int) -> list:
    en, zh = WORDS_EN[n % 10], WORDS_ZH[(n * 7) % 10]
    return [
        ModelRequest(parts=[UserPromptPart(f"Question {n}: how do I cook {en} with {zh}?")]),
        ModelResponse(parts=[TextPart(f"Answer {n}: slice the {en}, add {zh}, simmer for {n % 30} minutes.")]),
    ]


def timed(operation, repeat: int = 7) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def save_cost_at(store: SQLiteConversationStore, turns: int, conversation_id: str) -> float:
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
    return statistics.median(samples)


async def fill(store: SQLiteConversationStore, conversations: int, messages_each: int) -> None:
    for c in range(conversations):
        conversation = Conversation(conversation_id=f"fill-{c}")
        for n in range(messages_each // 2):
            conversation.messages.extend(turn(c + n))
        await store.save(conversation, scope=f"owner-{c % 10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    long_turns = 20 if args.quick else 1000
    conversations, messages_each = (100, 10) if args.quick else (10_000, 10)

    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteConversationStore(Path(folder) / "bench.db")
        save_1 = asyncio.run(save_cost_at(store, 1, "turn-1"))
        save_100 = asyncio.run(save_cost_at(store, 100, "turn-100")) if not args.quick else None
        save_long = asyncio.run(save_cost_at(store, long_turns, "turn-long"))
        asyncio.run(fill(store, conversations, messages_each))
        total_messages = store.db.execute("SELECT count(*) FROM entries").fetchone()[0]
        lookup = timed(lambda: store.session("fill-7", "owner-7"))
        listing = timed(lambda: store.list_sessions("owner-3", limit=50))
        search_en = timed(lambda: store.search("owner-3", "garlic"))
        search_zh = timed(lambda: store.search("owner-3", "麻婆豆腐"))

    rows = [
        ("save at turn 1", save_1, save_1, "baseline"),
        *([("save at turn 100", save_100, save_1, "<= 1.5")] if save_100 is not None else []),
        (f"save at turn {long_turns}", save_long, save_1, "<= 1.5"),
        ("one-row lookup by id and owner", lookup, lookup, "baseline"),
        (f"list 50 of {conversations:,} conversations", listing, lookup, "report"),
        (f"FTS search 'garlic' over {total_messages:,} messages", search_en, lookup, "report"),
        (f"FTS search '麻婆豆腐' over {total_messages:,} messages", search_zh, lookup, "report"),
    ]
    table = "\n".join(
        ["| benchmark | median | ratio to its baseline | goal |", "|---|---|---|---|"]
        + [f"| {name} | {value * 1000:.2f} ms | {value / base:.2f} | {goal} |" for name, value, base, goal in rows]
    )
    print(table)
    if not args.quick:
        RESULTS.write_text(
            "# Store benchmark results\n\n"
            f"`python -m benchmarks.store` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
            f"Python {platform.python_version()}; medians of 7 runs (saves: 21).\n\n{table}\n"
        )


if __name__ == "__main__":
    main()
