"""What a tool round trip costs beyond the model's own time, and what the tools cost a plain chat turn.

    python -m benchmarks.tools            # 9 turns of each kind
    python -m benchmarks.tools --quick    # 3 (the test suite runs this)

A turn that calls a tool makes two model requests (the call, then the answer from its result). The
two requests' model time is what pydantic-ai alone takes for them: the same agent, model, prompt and
tool, run with `agent.run_stream` and read with `stream_text(delta=True)`, with no app around it.
What the app's turn takes beyond that is what the app adds: loading and saving the conversation, the
history policy, the step log, the updates to the page. The demo model waits a fixed delay before each
request's first token and then streams its tokens without delay, so pydantic-ai's own cost per
streamed token (a few hundred tokens per answer) is in the model time, as it is with a real provider.
The second figure compares a plain turn on the agent with tools against the same agent without them
(every request then carries the tools' schemas).
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.common import Row, Samples, Section, run_as_script
from chat.agents import build_chat_agent
from chat.config import Settings
from chat.demo_model import DemoPace
from chat.models import ModelResolver
from chat.runs import RunStatus
from chat.turns import ChatService
from chat.wings.tools import ChatDeps, ChatTools, chat_tools
from server import chat_wings, context_policies
from storage.memory_store import MemoryConversationStore

FIRST_TOKEN_DELAY = 0.2
OVERHEAD_GOAL_MS = 20.0
PLAIN_GOAL = 1.05


async def turn_seconds(service: ChatService, prompt: str, conversation: str) -> float:
    started = time.perf_counter()
    updates = [update async for update in service.run_turn("bench", conversation, prompt, "demo")]
    assert updates[-1].status is RunStatus.COMPLETED, updates[-1].error
    return time.perf_counter() - started


async def model_seconds(service: ChatService, prompt: str) -> float:
    """The same requests through pydantic-ai alone: the agent streams them, nothing loads, saves or shows."""
    model = service.models.resolve("demo")
    started = time.perf_counter()
    async with service.agent.run_stream(
        prompt,
        model=model,
        toolsets=[chat_tools()],
        deps=ChatDeps("bench", service.store),
        event_stream_handler=ignore_events,
    ) as run:
        async for _ in run.stream_text(delta=True, debounce_by=None):
            pass
    return time.perf_counter() - started


async def ignore_events(_: object, events) -> None:  # the app's turn reads the event stream too
    async for _ in events:
        pass


async def measure(turns: int) -> tuple[Samples, Samples, Samples, Samples]:
    pace = DemoPace(first_token_delay=FIRST_TOKEN_DELAY, tokens_per_second=0)
    store, models = MemoryConversationStore(), ModelResolver(Settings(), pace)
    wings = chat_wings(store, context_policies(Settings(), store, models))
    with_tools = ChatService(build_chat_agent(), store, models, wings=wings)
    without = ChatService(build_chat_agent(), store, models, wings=[w for w in wings if not isinstance(w, ChatTools)])
    await turn_seconds(with_tools, "warm up: what is 1 + 1?", "warm-up")  # builds pydantic's schemas once
    await model_seconds(with_tools, "warm up: what is 1 + 1?")
    await turn_seconds(without, "warm up", "warm-up")
    round_trips, model_times, plain_with, plain_without = [], [], [], []
    for n in range(turns):
        question = f"What is {n + 17} * 23?"
        round_trips.append(await turn_seconds(with_tools, question, f"tool-{n}"))
        model_times.append(await model_seconds(with_tools, question))
        plain_with.append(await turn_seconds(with_tools, f"Tell me about bread, part {n}.", f"plain-{n}"))
        plain_without.append(await turn_seconds(without, f"Tell me about bread, part {n}.", f"plain-{n}"))
    return Samples.of(round_trips), Samples.of(model_times), Samples.of(plain_with), Samples.of(plain_without)


def run(quick: bool) -> Section:
    round_trip, model_time, plain_with, plain_without = asyncio.run(measure(3 if quick else 9))
    overhead_ms = (round_trip.median - model_time.median) * 1000
    ratio = plain_with.median / plain_without.median
    return Section(
        "Tools",
        [
            Row(
                "a turn with one tool call (two requests), beyond its two requests' model time",
                f"{overhead_ms:.1f} ms (turn {round_trip.ms()})",
                f"{model_time.ms()} for its two requests in pydantic-ai alone",
                None,
                f"<= {OVERHEAD_GOAL_MS:g} ms",
                overhead_ms <= OVERHEAD_GOAL_MS,
            ),
            Row(
                "a plain turn on the agent with tools",
                plain_with.ms(),
                f"{plain_without.ms()} without tools",
                ratio,
                f"<= {PLAIN_GOAL:g}",
                ratio <= PLAIN_GOAL,
            ),
        ],
        [
            (
                f"Demo model, {FIRST_TOKEN_DELAY * 1000:.0f} ms before each request's first token and no delay "
                "between tokens; in-memory store, so storage does not blur the figures."
            ),
            (
                "The tool turn's model time is the same agent, prompt and tool run by pydantic-ai alone "
                "(`run_stream`, `stream_text(delta=True)`); it includes pydantic-ai's own cost per streamed "
                f"token, which is why it is more than the two first-token delays ({2 * FIRST_TOKEN_DELAY * 1000:.0f} ms)."
            ),
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
