"""Lesson 1: stream an answer with `agent.run_stream()`, then read what the run cost.

What to notice: the answer arrives in small pieces, printed between `|` marks, the way a real model
sends tokens. `result.usage` is a property in pydantic-ai 2.x (no parentheses) and is only complete
once the stream has finished, so read it after the `async for`.

Run it from the repo root:

    python examples/lessons/01_run_stream.py
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `chat` can be imported

from pydantic_ai import Agent

from chat.demo_model import DemoModel, DemoPace

# The offline demo model: no API key, streams word by word (here 100 words a second).
agent = Agent(DemoModel(DemoPace(first_token_delay=0.1, tokens_per_second=100)))


async def main() -> None:
    deltas = 0
    async with agent.run_stream("Hello! What are you?") as result:
        # delta=True: each piece is only the new text. debounce_by=None: one piece per chunk (lesson 2).
        async for delta in result.stream_text(delta=True, debounce_by=None):
            print(delta, end="|", flush=True)
            deltas += 1
    print(f"\n\n{deltas} deltas")
    print("usage:", result.usage)  # a property: result.usage, not result.usage()
    print("messages in this run:", [type(message).__name__ for message in result.all_messages()])


asyncio.run(main())
