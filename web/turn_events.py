"""What a turn's updates mean to a client, whatever its protocol: the agent's steps (thinking, tool calls,
approvals) as they change, and the usage at the end."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import anyio

from chat.steps import APPROVE, DENY, THINKING, Step

U = TypeVar("U")


async def with_keep_alive(updates: AsyncIterator[U], every: float) -> AsyncIterator[U | None]:
    """The updates, with a None each time none came for `every` seconds: a stream that sends something now
    and then stays open through proxies and idle timers while a tool runs or the model thinks.

    Closed early (the client went away), it closes `updates`, shielded from the cancellation Starlette
    brings: whether the turn then runs on or stops is the turn's own choice (`keep_running_when_left`).
    """
    pending: asyncio.Future[U] | None = None
    try:
        while True:
            pending = asyncio.ensure_future(anext(updates))
            while not pending.done():
                done, _ = await asyncio.wait({pending}, timeout=every)
                if not done:
                    yield None
            try:
                update = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield update
    finally:
        with anyio.CancelScope(shield=True):
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            await updates.aclose()  # type: ignore[attr-defined]


def step_changes(steps: tuple[Step, ...], sent: dict[str, Step]) -> Iterator[tuple[str, dict[str, Any]]]:
    """What changed in the agent's steps since `sent` (which is brought up to date), as (name, data) pairs:
    `thinking` (a delta), `tool_call`, `approval` and `tool_result`; each protocol words them its own way."""
    for step in steps:
        before = sent.get(step.id)
        sent[step.id] = step
        if step.kind == THINKING:
            grown = step.text[len(before.text) if before else 0 :]
            if grown:
                yield "thinking", {"id": step.id, "delta": grown}
            continue
        if before is None:
            yield "tool_call", {"id": step.id, "tool": step.tool, "arguments": _json_or_text(step.text)}
        if step.awaiting_approval and not (before is not None and before.awaiting_approval):
            # Answered like the page's buttons: send "Approve" or "Deny" as the next message in this chat.
            yield "approval", {"id": step.id, "tool": step.tool, "options": [APPROVE, DENY]}
        if step.done and not (before is not None and before.done):
            result = {"id": step.id, "tool": step.tool, "result": step.result, "error": step.error}
            yield "tool_result", {**result, "seconds": step.seconds}


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # arguments the model broke: passed on as it sent them
        return text


def usage_summary(update: Any) -> dict[str, Any] | None:
    stats = update.stats
    if stats is None:
        return None
    return {
        "requests": stats.requests,
        "input_tokens": stats.input_tokens,
        "output_tokens": stats.output_tokens,
        "estimated": stats.estimated,
    }
