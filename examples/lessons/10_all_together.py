"""Lesson 10: all together: stream each turn, store its new messages in SQLite, load them back for the next turn.

Each message is one row of a `messages` table (sqlite-utils), its JSON from `ModelMessagesTypeAdapter`, in
insertion order. Before a turn the rows come back as `message_history`; after it, only
`result.new_messages()` are inserted. Nothing is kept in memory between turns, or between runs of the script.
What to notice: the first run introduces someone; run it again and the second run continues the same
conversation from the database ("You are 52 years old"). The database is in the temp folder unless named:

    python examples/lessons/10_all_together.py              # first run: an introduction
    python examples/lessons/10_all_together.py              # second run: it remembers
    python examples/lessons/10_all_together.py my-chat.db   # a database of your own
"""

import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `chat` can be imported

import sqlite_utils
from pydantic_ai import Agent, ModelMessage, ModelMessagesTypeAdapter

from chat.demo_model import DemoModel, DemoPace

DB_PATH = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "lesson-10-chat.db"
agent = Agent(DemoModel(DemoPace(first_token_delay=0.0, tokens_per_second=100)))


def load(db: sqlite_utils.Database) -> list[ModelMessage]:
    rows = db["messages"].rows_where(order_by="rowid") if db["messages"].exists() else []
    return ModelMessagesTypeAdapter.validate_python([json.loads(row["message_json"]) for row in rows])


def save(db: sqlite_utils.Database, messages: list[ModelMessage]) -> None:
    as_json = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    with db.atomic():  # one transaction: a turn's messages are stored all together or not at all
        db["messages"].insert_all({"message_json": json.dumps(message)} for message in as_json)


async def turn(db: sqlite_utils.Database, prompt: str) -> None:
    history = load(db)
    print(f"user: {prompt}  ({len(history)} messages loaded from the database)\nassistant: ", end="")
    async with agent.run_stream(prompt, message_history=history) as result:
        async for delta in result.stream_text(delta=True, debounce_by=None):
            print(delta, end="|", flush=True)
    print()
    save(db, result.new_messages())


async def main() -> None:
    db = sqlite_utils.Database(DB_PATH)
    first_run = not db["messages"].exists()
    prompts = ["Hello! My name is Kofi and I am 52.", "Count to 5."] if first_run else ["How old am I?", "Who am I?"]
    for prompt in prompts:
        await turn(db, prompt)
    print(f"{db['messages'].count} messages stored in {DB_PATH}" + ("; run me again" if first_run else ""))


asyncio.run(main())
