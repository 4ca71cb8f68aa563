"""Lesson 8: two agents, one history: an analyst reads the numbers, then a writer turns its analysis into prose.

Each agent has its own `instructions` and `system_prompt`; the history (a list of messages) is shared by passing
the analyst's `all_messages()` to the writer as `message_history=`.
What to notice in the table at the end:
- `instructions` are recorded on (and sent with) every request, and it is always the running agent's own: the
  writer's request carries the writer's instructions, so the same history can serve any agent.
- `system_prompt` is added only when the history is empty: the analyst's stays in the first message, and the
  writer's is never sent at all. So prefer `instructions` for who an agent is.

    python examples/lessons/08_two_agents.py
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `chat` can be imported

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, SystemPromptPart

from chat.demo_model import DemoModel, DemoPace

model = DemoModel(DemoPace.instant())  # it answers as an analyst or a writer when the instructions say so
analyst = Agent(model, name="analyst", system_prompt="Be precise.", instructions="You are the ANALYST: use bullets.")
writer = Agent(model, name="writer", system_prompt="Be warm.", instructions="You are the WRITER: write prose.")


async def ask(agent: Agent, prompt: str, history: list[ModelMessage]) -> list[ModelMessage]:
    print(f"--- {agent.name}: {prompt}")
    async with agent.run_stream(prompt, message_history=history) as result:
        async for delta in result.stream_text(delta=True, debounce_by=None):
            print(delta, end="", flush=True)
    print("\n")
    return result.all_messages()


async def main() -> None:
    history = await ask(analyst, "Visitors per month: 120, 135, 128, 160, 190", [])
    history = await ask(writer, "Write it up for the newsletter.", history)
    print("requests in the shared history:  system prompt parts | instructions")
    for message in history:
        if isinstance(message, ModelRequest):
            system = [part.content for part in message.parts if isinstance(part, SystemPromptPart)]
            print(f"  {system!s:34} | {message.instructions}")


asyncio.run(main())
