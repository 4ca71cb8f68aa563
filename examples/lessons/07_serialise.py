"""Lesson 7: messages to JSON and back, then carry on the conversation from the loaded JSON.

`result.all_messages_json()` gives the whole history as JSON bytes (`result.new_messages_json()` just this run's);
`ModelMessagesTypeAdapter.validate_json(...)` turns them back into `ModelRequest` / `ModelResponse` objects.
What to notice: the JSON keeps every part with its kind, content and timestamp; the loaded list equals the
original; and a new run given the loaded list as `message_history` still knows the age told before saving.

    python examples/lessons/07_serialise.py
"""

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `chat` can be imported

from pydantic_ai import Agent, ModelMessagesTypeAdapter

from chat.demo_model import DemoModel, DemoPace

agent = Agent(DemoModel(DemoPace.instant()))


async def main() -> None:
    async with agent.run_stream("Hello! I'm Tomás and I am 67.") as result:
        print("assistant:", await result.get_output())

    data = result.all_messages_json()  # bytes, for a file, a database row, a queue...
    print(f"\nall_messages_json(): {len(data)} bytes; the first message:")
    print(json.dumps(json.loads(data)[0], indent=2, ensure_ascii=False))

    loaded = ModelMessagesTypeAdapter.validate_json(data)
    print(f"\nloaded {[type(m).__name__ for m in loaded]}, equal to the original: {loaded == result.all_messages()}")

    async with agent.run_stream("How old am I?", message_history=loaded) as result:
        print("user: How old am I?\nassistant:", await result.get_output())


asyncio.run(main())
