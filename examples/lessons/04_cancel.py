"""Lesson 4: stop a stream early and keep the partial answer, two ways.

1. Your code stops it: `await result.cancel()` keeps the partial answer in `result.all_messages()` as a
   `ModelResponse(state='interrupted')`. A plain `break` does not: the partial answer is lost.
2. Something outside cancels the task (Gradio's Stop, a visitor who left): catch `CancelledError`, recover the
   run with `RunCancelled.from_cancellation(exc)` (`.all_messages()`, `.new_messages()` to save, `.usage`), re-raise.
What to notice: after `cancel()` the history ends in 'ModelResponse:interrupted', after `break` in the request
alone; the recovered run's last message is the partial count. With a real provider both ways close its HTTP
stream at once, so the server sees the client disconnect and stops generating, and usage shows 0 tokens (OpenAI-
style servers report them in the last chunk): tests/test_lessons.py shows it with a local OpenAI-compatible server.

    python examples/lessons/04_cancel.py
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `chat` can be imported

from pydantic_ai import Agent, RunCancelled

from chat.demo_model import DemoModel, DemoPace

agent = Agent(DemoModel(DemoPace(first_token_delay=0.0, tokens_per_second=100)))


async def handler(mid_stream: asyncio.Event, recovered: list) -> None:  # stands for a Gradio chat handler
    try:
        async with agent.run_stream("Count to 200.") as result:
            async for delta in result.stream_text(delta=True, debounce_by=None):
                if delta.strip() == "8":
                    mid_stream.set()  # tell the outside we are mid-answer
    except asyncio.CancelledError as exc:
        recovered.append(RunCancelled.from_cancellation(exc))  # the app saves its .new_messages() here
        raise  # an outside cancellation must keep propagating


async def main() -> None:
    for stop in ("cancel", "break"):
        async with agent.run_stream("Count to 200.") as result:
            async for delta in result.stream_text(delta=True, debounce_by=None):
                print(delta, end="|")
                if delta.strip() == "5":
                    if stop == "cancel":
                        await result.cancel()  # stops the stream and records the partial response
                    break
        print(f"  1. {stop}: all_messages() = {[f'{type(m).__name__}:{m.state}' for m in result.all_messages()]}")

    mid_stream, recovered = asyncio.Event(), []
    task = asyncio.create_task(handler(mid_stream, recovered))
    await mid_stream.wait()
    task.cancel()  # what Gradio's Stop button does to the handler's task
    await asyncio.gather(task, return_exceptions=True)
    run, last = recovered[0], recovered[0].new_messages()[-1]
    print(f"2. task.cancel() (task.cancelled()={task.cancelled()}); RunCancelled.from_cancellation(exc) kept")
    print(f"   {len(run.all_messages())} messages, the last {last.parts[0].content!r} ({last.state}), {run.usage}")


asyncio.run(main())
