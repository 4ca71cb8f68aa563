"""Lesson 6: multi-turn memory. The model remembers only what you send it again.

A model call is stateless: "memory" is the earlier messages going out with every request. Pass the previous
turn's `result.all_messages()` as `message_history=` and the next turn sees them.
What to notice: with the history, "How old am I?" gets the age told two turns earlier; the same question in a
fresh run (no history) gets "You haven't told me". Each turn sends two more earlier messages than the last.

`message_history=` takes a plain list of messages that you keep yourself (this lesson, lessons 7 and 10).
`conversation=` takes a `pydantic_ai.conversation.Conversation`: the messages plus what a list loses (the running
usage, the conversation id, tool calls a paused run waits on). The app loads one from its ConversationStore
(storage/), passes it as `conversation=`, and saves the run's conversation back to the store.

    python examples/lessons/06_memory.py
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `chat` can be imported

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage

from chat.demo_model import DemoModel, DemoPace

agent = Agent(DemoModel(DemoPace.instant()), instructions="You are a friendly assistant.")


async def turn(prompt: str, history: list[ModelMessage]) -> list[ModelMessage]:
    async with agent.run_stream(prompt, message_history=history) as result:
        answer = "".join([delta async for delta in result.stream_text(delta=True, debounce_by=None)])
    print(f"user: {prompt}\n  assistant: {answer}\n  ({len(history)} earlier messages sent)")
    return result.all_messages()  # this turn's history: everything sent, plus the new answer


async def main() -> None:
    history: list[ModelMessage] = []
    for prompt in ["Hi! I'm Priya, and I am 42.", "Count to 3, please.", "How old am I?", "What's my name?"]:
        history = await turn(prompt, history)
    print("\nThe same question in a fresh run, without message_history:")
    await turn("How old am I?", [])


asyncio.run(main())
