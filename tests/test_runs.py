"""The shared run-in-own-task mechanism: the first token goes first, and a gone consumer never hangs a run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from pydantic_ai import CancellationToken

from chat.errors import ConversationBusy, TooManyFromAddress, TooManyRunning, TooManyStarts
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


async def test_a_final_update_is_not_held_back_by_the_pause_between_coalesced_updates():
    """Under load updates are paced up to a second apart; a Stop's final update must not wait out the pause."""
    stopped = asyncio.Event()

    async def produce(token: CancellationToken, report: Report[Step]) -> None:
        report(Step(1))
        await report.first_delivered()
        report(Step(2))  # the consumer now pauses before showing this one
        await stopped.wait()
        report(Step(3, final=True))

    updates = stream_from_own_task(ActiveTurns(), "maya", "run-9", produce, crashed, min_update_interval=3600)
    assert await updates.__anext__() == Step(1)
    following = asyncio.ensure_future(updates.__anext__())
    await settle()
    assert not following.done()  # paced: Step(2) waits for the hour to pass
    stopped.set()
    assert await asyncio.wait_for(following, timeout=10) == Step(3, final=True)  # the final one, at once


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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_stop_pressed_before_its_run_started_ends_that_run_as_it_starts():
    clock = Clock()
    active = ActiveTurns(clock=clock)
    assert active.stop("bob", "chat-9") is False  # nothing runs yet: the answer is still queued
    clock.now += 40  # queued a long while behind other answers
    token = active.start("bob", "chat-9")
    assert token.cancelled
    active.finish("bob", "chat-9", token)
    clock.now += 60
    assert not active.start("bob", "chat-9").cancelled  # used once: the next run is not stopped by it


def test_a_stop_announced_by_another_replica_stops_only_a_run_that_is_here_now():
    active = ActiveTurns(clock=Clock())
    assert active.stop_running("ngozi", "chat-4") is False  # it runs on another replica, or nowhere
    assert not active.start("ngozi", "chat-4").cancelled  # and nothing was kept to stop a later run here
    assert active.stop_running("ngozi", "chat-4") is True
    assert active.stop_running("ngozi", "chat-5") is False


def test_a_stop_naming_its_run_stops_that_run_only_and_is_never_kept_for_a_later_one():
    """The chat page's Stop names the run its answer came from (ui/stop_button.py)."""
    active = ActiveTurns(clock=Clock())
    first = active.start("amara", "chat-7", tag="morning")
    assert active.stop_running("amara", "chat-7", "evening") is False  # an earlier answer's Stop request
    assert not first.cancelled
    assert active.stop_running("amara", "chat-7", "morning") is True and first.cancelled
    active.finish("amara", "chat-7", first)
    assert active.stop_running("amara", "chat-7", "morning") is False
    assert not active.start("amara", "chat-7").cancelled  # nothing was kept to stop the next run


def test_a_stop_naming_a_run_that_has_not_started_ends_that_run_as_it_starts_and_no_other():
    """An API client has its run's tag before the first update (the SSE API's `start` event names it)."""
    clock = Clock()
    active = ActiveTurns(clock=clock)
    assert active.stop_running("tomás", "chat-3", "a1f0") is False  # queued: nothing runs yet
    other = active.start("tomás", "chat-3", tag="77be")  # an earlier answer of this chat, still queued first
    assert not other.cancelled
    active.finish("tomás", "chat-3", other)
    clock.now += 2
    named = active.start("tomás", "chat-3", tag="a1f0")
    assert named.cancelled
    active.finish("tomás", "chat-3", named)
    assert not active.start("tomás", "chat-3", tag="c0de").cancelled  # used once


def test_a_stop_that_arrives_as_its_run_ends_does_not_stop_the_next_run():
    clock = Clock()
    active = ActiveTurns(clock=clock)
    first = active.start("bob", "chat-9")
    active.finish("bob", "chat-9", first)
    clock.now += 0.4  # the page still showed Stop when the answer ended
    assert active.stop("bob", "chat-9") is False
    clock.now += 5
    assert not active.start("bob", "chat-9").cancelled


def test_an_early_stop_lapses_and_stops_only_its_own_key():
    clock = Clock()
    active = ActiveTurns(clock=clock)
    active.stop("bob", "chat-9")
    assert not active.start("bob", "chat-10").cancelled
    assert not active.start("eve", "chat-9").cancelled  # another visitor's run with the same id
    clock.now += ActiveTurns.EARLY_STOP_SECONDS + 1
    assert not active.start("bob", "chat-9").cancelled


def test_one_run_per_conversation_and_a_limit_per_visitor():
    active = ActiveTurns(max_per_owner=2)
    first = active.start("bob", "chat-1")
    with pytest.raises(ConversationBusy):
        active.start("bob", "chat-1")  # a second tab on the same chat
    active.start("bob", "recipe-7")
    with pytest.raises(TooManyRunning):
        asyncio.run(active.check_can_start("bob", "chat-2"))
    with pytest.raises(TooManyRunning):
        active.start("bob", "chat-2")
    assert not active.start("carol", "chat-2").cancelled  # others keep their own allowance
    active.finish("bob", "chat-1", first)
    active.start("bob", "chat-2")  # a slot came free
    assert active.running_for("bob") == 2 and len(active) == 3


def test_one_network_address_runs_at_most_its_share_whatever_visitor_ids_it_makes():
    active = ActiveTurns(max_per_owner=3, max_per_address=2)
    first = active.start("id-one", "a", "198.51.100.7")
    active.start("id-two", "b", "198.51.100.7")
    with pytest.raises(TooManyFromAddress, match="network address"):
        asyncio.run(active.check_can_start("id-three", "c", "198.51.100.7"))
    with pytest.raises(TooManyFromAddress):
        active.start("id-three", "c", "198.51.100.7")
    active.start("id-three", "c", "2001:db8::5")  # another address has its own share
    active.start("id-four", "d")  # no address known (a test, an in-process caller): not counted
    active.finish("id-one", "a", first)
    active.start("id-three", "e", "198.51.100.7")  # a slot came free
    assert len(active) == 4


async def test_a_refused_run_ends_with_a_final_update_and_never_runs():
    ran: list[str] = []

    async def produce(token: CancellationToken, report: Report[Step]) -> None:
        ran.append("ran")
        report(Step(1, final=True))

    active = ActiveTurns()
    active.start("alice", "run-1")
    updates = [step async for step in stream_from_own_task(active, "alice", "run-1", produce, crashed)]
    assert updates == [Step(-1, final=True)] and ran == []
    assert active.is_running("alice", "run-1")  # the first run keeps its registration


def test_a_visitor_may_start_so_many_runs_in_any_minute():
    clock = Clock()
    active = ActiveTurns(starts_per_minute=3, clock=clock)
    for n in range(3):
        active.finish("dora", f"chat-{n}", active.start("dora", f"chat-{n}"))
        clock.now += 10
    with pytest.raises(TooManyStarts) as refused:
        active.start("dora", "chat-3")
    assert refused.value.retry_after_seconds == 30  # the first start leaves the minute in 30 s
    active.start("ezra", "chat-3")  # counted per visitor
    clock.now += 30
    active.start("dora", "chat-3")


async def test_a_new_run_right_after_stop_waits_for_the_stopped_one_to_save_instead_of_being_refused():
    saved = asyncio.Event()

    async def produce(token: CancellationToken, report: Report[Step]) -> None:
        report(Step(1))
        while not token.cancelled:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.2)  # saving the partial answer takes a moment
        saved.set()
        report(Step(2, final=True))

    active = ActiveTurns()
    updates = stream_from_own_task(active, "noor", "chat-5", produce, crashed)
    assert await updates.__anext__() == Step(1)
    assert active.stop("noor", "chat-5")
    with pytest.raises(ConversationBusy):
        await active.check_can_start("noor", "chat-5")  # still saving: without waiting, the next turn is refused
    await active.settle("noor", "chat-5")
    assert saved.is_set()
    await active.check_can_start("noor", "chat-5")  # the next turn may start now
    await updates.aclose()


async def test_settling_never_waits_for_a_run_nobody_stopped():
    async def produce(token: CancellationToken, report: Report[Step]) -> None:
        report(Step(1))
        while not token.cancelled:  # answering until the consumer leaves
            await asyncio.sleep(0.005)
        report(Step(2, final=True))

    active = ActiveTurns()
    updates = stream_from_own_task(active, "noor", "chat-6", produce, crashed)
    assert await updates.__anext__() == Step(1)
    await asyncio.wait_for(active.settle("noor", "chat-6"), timeout=1)  # returns at once: it is answering
    assert active.is_running("noor", "chat-6")
    await updates.aclose()


def endless_until_stopped(saved: list[str]):
    async def produce(token: CancellationToken, report: Report[Step]) -> None:
        report(Step(1))
        while not token.cancelled:
            await asyncio.sleep(0.01)
        saved.append("partial saved")
        report(Step(2, final=True))

    return produce


async def test_a_stream_closing_clients_next_request_waits_for_the_stream_it_just_left():
    """The AI SDK's stop() then regenerate(): the new request can come before the server sees the old
    stream close. It waits for that run to be stopped and saved, then starts; it is not refused as busy."""
    saved: list[str] = []
    active = ActiveTurns()
    left = stream_from_own_task(active, "ines", "chat-4", endless_until_stopped(saved), crashed)
    assert await left.__anext__() == Step(1)
    asking_again = asyncio.create_task(active.settle("ines", "chat-4", asked_by_a_leaver=True))
    await settle()
    assert not asking_again.done()  # the old stream is not seen closed yet: waiting, not refused
    await left.aclose()  # the server sees it close now
    await asyncio.wait_for(asking_again, timeout=5)
    assert saved == ["partial saved"]
    await active.check_can_start("ines", "chat-4")  # no ConversationBusy


async def test_a_busy_conversation_is_still_refused_when_its_reader_is_there():
    saved: list[str] = []
    active = ActiveTurns()
    reading = stream_from_own_task(active, "ines", "chat-5", endless_until_stopped(saved), crashed)
    assert await reading.__anext__() == Step(1)
    await active.settle("ines", "chat-5")  # a page or SSE request: nothing is stopping, no wait
    await asyncio.wait_for(active.settle("ines", "chat-5", asked_by_a_leaver=True), timeout=5)  # waits a moment only
    with pytest.raises(ConversationBusy):
        await active.check_can_start("ines", "chat-5")
    assert saved == []
    await reading.aclose()
