"""Lesson 9: bound what each request sends: the last few messages, plus a summary of the older ones.

`Agent(capabilities=[ProcessHistory(fn)])` runs `fn(messages)` before every request (the one after a tool call too)
and sends what it returns; `history_processors=` raises TypeError in 2.x. This `fn` keeps the last ~KEEP messages,
cut at a user prompt so a tool call keeps its return, behind a summarizer agent's summary of the rest. Notice: "sent"
stays short as "kept" grows, with no orphans (tool returns without their call); the last answer knows the age via
the summary alone; `result.all_messages()` is the trimmed view, so keep the history: `kept += result.new_messages()`.

    python examples/lessons/09_window_and_summary.py
"""

import asyncio
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `chat` can be imported

from pydantic_ai import Agent, ModelMessage, ModelRequest
from pydantic_ai.capabilities import ProcessHistory
from pydantic_ai.messages import SystemPromptPart, ToolCallPart, ToolReturnPart, UserPromptPart

from chat.demo_model import DemoModel, DemoPace

KEEP = 4
summarizer = Agent(DemoModel(DemoPace.instant()), instructions="Summarize the conversation transcript you are given.")


async def window_and_summary(messages: list[ModelMessage]) -> list[ModelMessage]:
    turns = [i for i, m in enumerate(messages) if any(isinstance(p, UserPromptPart) for p in m.parts)]
    cut = 0 if len(messages) <= KEEP else next((i for i in turns if i >= len(messages) - KEEP), turns[-1])
    sent = messages[cut:]
    if cut:  # fold the older part, with any earlier summary in it, into one new summary
        older = [p for m in messages[:cut] for p in m.parts]
        said = [f"User: {p.content}" for p in older if isinstance(p, UserPromptPart)]
        said += [f"Earlier summary: {p.content}" for p in older if isinstance(p, SystemPromptPart)]
        summary = (await summarizer.run("\n".join(said))).output
        sent = [ModelRequest(parts=[SystemPromptPart(summary)]), *sent]
    calls = {p.tool_call_id for m in sent for p in m.parts if isinstance(p, ToolCallPart)}
    orphans = [p for m in sent for p in m.parts if isinstance(p, ToolReturnPart) and p.tool_call_id not in calls]
    print(f"    sent {[type(m.parts[0]).__name__.removesuffix('Part') for m in sent]}, orphans: {len(orphans)}")
    return sent


agent = Agent(DemoModel(DemoPace.instant()), capabilities=[ProcessHistory(window_and_summary)])


@agent.tool_plain
def calculate(expression: str) -> str:
    """Multiply numbers, e.g. '17 * 23'."""
    return str(math.prod(int(number) for number in expression.split("*")))


async def main() -> None:
    kept: list[ModelMessage] = []
    for prompt in ["Hi, I'm Olu and I am 45.", "What is 17 * 23?", "What is 6 * 7?", "How old am I?"]:
        print(f"user: {prompt}")
        async with agent.run_stream(prompt, message_history=kept) as result:
            answer = (await result.get_output()).splitlines()[0]
        kept += result.new_messages()
        print(f"  assistant: {answer}\n  kept: {len(kept)}, result.all_messages(): {len(result.all_messages())}")
    print(f"the summary sent last: {result.all_messages()[0].parts[0].content}")


asyncio.run(main())
