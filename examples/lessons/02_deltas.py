"""Lesson 2: what `stream_text()` yields: deltas or the text so far, and how `debounce_by` groups chunks.

What to notice:
- `delta=False` (the default) yields the whole text so far each time; `delta=True` yields only the new
  piece. A chat UI that replaces its bubble wants the first, an SSE endpoint or a terminal the second.
- `debounce_by=0.1` (the default) merges the chunks that arrive within 0.1 s into one yield, so you get
  fewer, bigger pieces (and the first one only after up to 0.1 s); `debounce_by=None` yields once per chunk.

Run it from the repo root:

    python examples/lessons/02_deltas.py
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `chat` can be imported

from pydantic_ai import Agent

from chat.demo_model import DemoModel, DemoPace

agent = Agent(DemoModel(DemoPace(first_token_delay=0.0, tokens_per_second=100)))  # 30 chunks in 0.3 s
PROMPT = "Please count to 30."


async def show(delta: bool, debounce_by: float | None) -> None:
    async with agent.run_stream(PROMPT) as result:
        pieces = [text async for text in result.stream_text(delta=delta, debounce_by=debounce_by)]
    print(f"delta={delta}, debounce_by={debounce_by}: {len(pieces)} yields")
    print("    " + " | ".join(repr(piece) for piece in pieces[:5]) + (" | ..." if len(pieces) > 5 else ""))
    print(f"    last: {pieces[-1]!r}")


async def main() -> None:
    await show(delta=False, debounce_by=None)  # the text so far, once per chunk: '1', '1 2', '1 2 3', ...
    await show(delta=True, debounce_by=None)  # only the new piece, once per chunk: '1', ' 2', ' 3', ...
    await show(delta=True, debounce_by=0.1)  # the default debounce: chunks merged, a handful of yields


asyncio.run(main())
