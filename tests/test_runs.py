"""The shared run-in-own-task mechanism: the first token goes first, and a gone consumer never hangs a run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from pydantic_ai import CancellationToken

from chat.runs import ActiveTurns, Report, stream_from_own_task

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Step:
    number: int
    final: bool = False


def crashed(error: BaseException) -> Step:
    return Step(-1, final=True)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_run_waits_after_its_first_update_until_the_consumer_has_handed_it_on():
    progress: list[str] = []

    async def produce(token: CancellationToken, report: Report[Step]) -> None:
        report(Step(1))
        await report.first_delivered()
        progress.append("resumed")
        report(Step(2, final=True))

    updates = stream_from_own_task(ActiveTurns(), "alice", "run-1", produce, crashed)
    assert await updates.__anext__() == Step(1)
    await settle()
    assert progress == []  # the consumer is still showing the first update: the run holds back
    assert await asyncio.wait_for(updates.__anext__(), timeout=5) == Step(2, final=True)
    assert progress == ["resumed"]


async def test_a_consumer_gone_after_the_first_update_releases_the_run_which_still_ends():
    ended = asyncio.Event()

    async def produce(token: CancellationToken, report: Report[Step]) -> None:
        report(Step(1))
        await report.first_delivered()
        assert token.cancelled  # released because the consumer left, and told so
        ended.set()
        report(Step(2, final=True))

    active = ActiveTurns()
    updates = stream_from_own_task(active, "alice", "run-1", produce, crashed)
    assert await updates.__anext__() == Step(1)
    await asyncio.wait_for(updates.aclose(), timeout=5)
    assert ended.is_set() and not active.is_running("alice", "run-1")
