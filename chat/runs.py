"""Streaming runs that live in a task of their own, shared by chat turns, recipes and the hand-off.

Whoever consumes the updates (a Gradio generator, an SSE response, a test) can be cancelled or
closed from any task, and the pydantic-ai run still ends in the task that started it. A consumer that
leaves stops the run (it cancels the run's token and waits while the partial result is saved and the
provider stream closed), unless the run is kept for later readers (`LiveRun`, chat turns). And
whatever ends the run, its readers get a final update: none waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from pydantic_ai import CancellationToken

from chat.address_limits import AddressLimits
from chat.endings import SERVER_RESTARTED, STOPPED
from chat.errors import (
    ConversationBusy,
    PromptRejected,
    ServerClosing,
    TooManyFromAddress,
    TooManyRunning,
    TooManyStarts,
)
from chat.quota import StoredDataQuota

log = logging.getLogger(__name__)

SETTLE_SECONDS = 5.0
"""How long a new turn waits for the stopped answer of its conversation to be saved before it is refused."""
LEFT_NOTICE_SECONDS = 1.0
"""How long a new request from a stream-closing client waits for its previous stream to be seen closed."""


class RunStatus(enum.StrEnum):
    """Where a run is: streaming, until its final update says how it ended. The same for every kind of run."""

    STREAMING = "streaming"
    COMPLETED = "completed"
    STOPPED = "stopped"
    CUT = "cut"
    """Ended at the server's longest answer (`max_answer_chars`)."""
    CONNECTION_LOST = "connection_lost"
    FAILED = "failed"


class RunUpdate:
    """What every kind of run reports: its status; the update that is not `STREAMING` is the last."""

    status: RunStatus

    @property
    def final(self) -> bool:
        return self.status is not RunStatus.STREAMING

    @property
    def spent_tokens(self) -> int:
        """The tokens the run has used, as far as this kind of update says (0: it does not say)."""
        return 0


class Update(Protocol):
    @property
    def final(self) -> bool: ...


U = TypeVar("U", bound=Update)
V = TypeVar("V")


class Report(Generic[U]):
    """What a run calls with each update; it never blocks the run."""

    def __init__(self, send: Callable[[U], None]) -> None:
        self._send = send
        self._first_delivered = asyncio.Event()

    def __call__(self, update: U) -> None:
        self._send(update)

    async def first_delivered(self) -> None:
        """Wait until the consumer has handed on the first update (or is gone).

        A run that streams faster than the page can show it would otherwise spend the moment of its
        first token producing the rest, and the first token reaches the page tens of ms later
        (benchmarks/ANALYSIS.md). One short pause per run puts the first token first.
        """
        await self._first_delivered.wait()

    def _delivered(self) -> None:
        self._first_delivered.set()


class ActiveTurns:
    """The runs streaming right now, by owner and run id, so Stop can reach them from another event.

    - One run per key: a chat answering in one tab (or over the API) refuses a second turn elsewhere
      (`ConversationBusy`) instead of two answers racing into one conversation.
    - At most `max_per_owner` runs per visitor, of every kind (`TooManyRunning`), and at most
      `starts_per_minute` started in any minute (`TooManyStarts`), and optionally at most
      `max_per_address` from one network address (`TooManyFromAddress`): one visitor cannot take every slot
      of a shared server, nor fill its disk with a script; `quota` bounds what each may keep stored.
    - What one network address may do whoever it claims to be (`addresses`, chat/address_limits.py): how many
      visitors it brings in an hour, answers it starts in a minute, tokens of paid models (`paid`) in a day.
    - A Stop never gets lost: pressed before its run has started (the answer still queued), it waits
      for that run and ends it as it starts; pressed just after the run ended (the page had not caught up),
      it is ignored, so it cannot stop the next one.
    """

    LATE_STOP_SECONDS = 3.0
    """A Stop this soon after its key's run ended was meant for that run (the page was behind)."""
    EARLY_STOP_SECONDS = 120.0
    """A Stop waits this long for a run that has not started (queued behind others) before it lapses."""
    RESUME_SECONDS = 60.0
    """How long an ended run's final update can still be read by a client that comes back for it."""
    _RESUMABLE = 1_000
    """Ended runs kept for `live` at most (oldest dropped): each holds its whole final answer."""
    _REMEMBERED = 10_000
    """Waiting Stops and end times kept at most (oldest dropped): a flood of Stops costs bounded memory."""

    def __init__(
        self,
        max_per_owner: int | None = None,
        starts_per_minute: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        quota: StoredDataQuota | None = None,
        max_per_address: int | None = None,
        addresses: AddressLimits | None = None,
    ) -> None:
        self.max_per_owner = max_per_owner
        self.max_per_address = max_per_address
        self.starts_per_minute = starts_per_minute
        self.quota = quota
        """What an owner may keep stored, checked before any run starts (`StorageFull`)."""
        self._starts: dict[str, deque[float]] = {}
        self._tokens: dict[tuple[str, str], CancellationToken] = {}
        self._per_owner: Counter[str] = Counter()
        self._per_address: Counter[str] = Counter()
        self._address_of: dict[tuple[str, str], str] = {}
        self.addresses = addresses if addresses is not None else AddressLimits()
        self._billed: dict[tuple[str, str], str] = {}
        """Runs on a model that costs money, and the address their tokens are counted for when they end."""
        self._tags: dict[tuple[str, str], str | None] = {}
        self._stops_waiting: dict[tuple[str, str], tuple[float, str | None]] = {}
        """Stops pressed before their run started: when, and the tag of the run they name (None: the next)."""
        self._ended: dict[tuple[str, str], float] = {}
        self._runs: dict[tuple[str, str], LiveRun[Any]] = {}
        self._finished: dict[tuple[str, str], tuple[float, LiveRun[Any]]] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self.closing = False
        """The server is shutting down: new runs are refused, running ones were stopped (`close`)."""

    async def check_can_start(self, owner: str, run_id: str, address: str | None = None, *, paid: bool = False) -> None:
        """The refusal `admit` would raise now (`PromptRejected`), for callers that answer before streaming."""
        if self.quota is not None:
            await self.quota.check(owner)
        with self._lock:
            self._refusal(owner, run_id, address, paid)

    async def admit(
        self, owner: str, run_id: str, address: str | None = None, tag: str | None = None, *, paid: bool = False
    ) -> CancellationToken:
        """`start`, after checking what the owner keeps stored (`StorageFull`)."""
        if self.quota is not None:
            await self.quota.check(owner)
        return self.start(owner, run_id, address, tag, paid=paid)

    def start(
        self, owner: str, run_id: str, address: str | None = None, tag: str | None = None, *, paid: bool = False
    ) -> CancellationToken:
        """Register a run; `PromptRejected` (busy, too many, closing) when it must not start.

        `address`: the client's network address, for `max_per_address` and `addresses` (None: not counted).
        `tag`: the run's `LiveRun.tag`, which a Stop sent before the run started may name. `paid`: the run's
        model costs money, so its tokens count against the address's daily budget (`finish` counts them)."""
        key = (owner, run_id)
        token = CancellationToken()
        with self._lock:
            self._refusal(owner, run_id, address, paid)
            self._tokens[key] = token
            self._per_owner[owner] += 1
            if address is not None:
                self._address_of[key] = address
                self._per_address[address] += 1
                self.addresses.started(address, owner)
                if paid:
                    self._billed[key] = address
            if self.starts_per_minute is not None:
                self._starts.setdefault(owner, deque()).append(self._clock())
            self._tags[key] = tag
            pressed_at, named_tag = self._stops_waiting.pop(key, (None, None))
            if pressed_at is not None and self._clock() - pressed_at > self.EARLY_STOP_SECONDS:
                pressed_at = None  # lapsed
            elif named_tag is not None and named_tag != tag:  # it names another run of this key: keep it for that one
                _remember(self._stops_waiting, key, (pressed_at, named_tag))
                pressed_at = None
        if pressed_at is not None:
            token.cancel()  # Stop came first: the run ends at once and saves the prompt, labelled stopped
        return token

    def _refusal(self, owner: str, run_id: str, address: str | None, paid: bool = False) -> None:
        if self.closing:
            raise ServerClosing()
        if (owner, run_id) in self._tokens:
            raise ConversationBusy()
        if self.max_per_owner is not None and self._per_owner[owner] >= self.max_per_owner:
            raise TooManyRunning(self.max_per_owner)
        if (
            address is not None
            and self.max_per_address is not None
            and self._per_address[address] >= self.max_per_address
        ):
            raise TooManyFromAddress(self.max_per_address)
        if self.starts_per_minute is not None:
            starts = self._recent_starts(owner)
            if len(starts) >= self.starts_per_minute:
                raise TooManyStarts(self.starts_per_minute, retry_after=starts[0] + 60 - self._clock())
        if address is not None:
            self.addresses.check(address, owner, paid=paid)

    def _recent_starts(self, owner: str) -> deque[float]:
        starts = self._starts.get(owner, deque())
        while starts and self._clock() - starts[0] >= 60:
            starts.popleft()
        if not starts:
            self._starts.pop(owner, None)
        if len(self._starts) > self._REMEMBERED:  # visitors seen once long ago: forget them
            for idle in [name for name, times in self._starts.items() if not times or self._clock() - times[-1] >= 60]:
                del self._starts[idle]
        return starts

    @property
    def stop_reason(self) -> str:
        """How a stopped run's answer is labelled: stopped by its visitor, or by the server going down."""
        return SERVER_RESTARTED if self.closing else STOPPED

    def close(self) -> int:
        """Refuse new runs and stop every running one; each saves its partial result. Returns how many."""
        with self._lock:
            self.closing = True
            tokens = list(self._tokens.values())
        for token in tokens:
            token.cancel()
        return len(tokens)

    def track(self, owner: str, run_id: str, run: LiveRun[Any]) -> None:
        """Make a started run findable by `live`, for readers who come after its first one."""
        with self._lock:
            self._runs[(owner, run_id)] = run

    async def settle(
        self, owner: str, run_id: str, timeout: float = SETTLE_SECONDS, *, asked_by_a_leaver: bool = False
    ) -> None:
        """Wait, at most `timeout` seconds, for this key's run to finish if it is already stopping.

        A message sent right after Stop (a queued follow-up, an API client's next request) then starts
        once the stopped answer is saved, instead of being refused as busy while it saves.

        `asked_by_a_leaver`: the request comes from a protocol whose only Stop is closing the stream (the AI
        SDK's `stop()` then `regenerate()`). Its new request can arrive before the server has seen the old
        stream close; a run of the same kind is given `LEFT_NOTICE_SECONDS` to be found left and stopped.
        """
        key = (owner, run_id)
        with self._lock:
            token, run = self._tokens.get(key), self._runs.get(key)
        if token is None or run is None or run.task is None:
            return
        if not token.cancelled:
            if not (asked_by_a_leaver and run.stops_when_left):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.task), LEFT_NOTICE_SECONDS)
            if not token.cancelled:
                return  # its reader is still there: the conversation is busy
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.task), timeout)

    def live(self, owner: str, run_id: str) -> LiveRun[Any] | None:
        """The owner's run of this id that is running, or that ended less than `RESUME_SECONDS` ago."""
        key = (owner, run_id)
        with self._lock:
            running = self._runs.get(key)
            if running is not None:
                return running
            ended_at, finished = self._finished.get(key, (0.0, None))
        return finished if finished is not None and self._clock() - ended_at <= self.RESUME_SECONDS else None

    def finish(self, owner: str, run_id: str, token: CancellationToken, spent_tokens: int = 0) -> None:
        """The run has ended; `spent_tokens` (what its final update says it used) count for a paid run's address."""
        key = (owner, run_id)
        with self._lock:
            if self._tokens.get(key) is token:
                del self._tokens[key]
                billed = self._billed.pop(key, None)
                if billed is not None:
                    self.addresses.spend(billed, spent_tokens)
                del self._tags[key]
                run = self._runs.pop(key, None)
                if run is not None:
                    _remember(self._finished, key, (self._clock(), run), limit=self._RESUMABLE)
                self._per_owner[owner] -= 1
                if not self._per_owner[owner]:
                    del self._per_owner[owner]
                address = self._address_of.pop(key, None)
                if address is not None:
                    self._per_address[address] -= 1
                    if not self._per_address[address]:
                        del self._per_address[address]
                _remember(self._ended, key, self._clock())

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)

    def is_running(self, owner: str, run_id: str) -> bool:
        with self._lock:
            return (owner, run_id) in self._tokens

    def running_of(self, owner: str, kind: str) -> dict[str, str]:
        """The owner's runs of this kind running now, by run id: what each answers (`LiveRun.subject`)."""
        with self._lock:
            if not self._per_owner[owner]:  # most visitors at most moments: no walk over every run
                return {}
            return {
                run_id: run.subject
                for (run_owner, run_id), run in self._runs.items()
                if run_owner == owner and run.kind == kind and (run_owner, run_id) in self._tokens
            }

    def running_for(self, owner: str) -> int:
        with self._lock:
            return self._per_owner[owner]

    def stop(self, owner: str, run_id: str) -> bool:
        """Stop the owner's run with this id: True when one was running, False when there was none.

        With none running, the Stop waits for the run to start (`start` ends it at once), unless a run of
        this id has just ended: then it was pressed as that one ended, and is dropped.
        """
        key = (owner, run_id)
        with self._lock:
            token = self._tokens.get(key)
            if token is None:
                now = self._clock()
                ended = self._ended.get(key)
                if ended is None or now - ended > self.LATE_STOP_SECONDS:
                    _remember(self._stops_waiting, key, (now, None))
                return False
        token.cancel()
        return True

    def stop_running(self, owner: str, run_id: str, tag: str | None = None) -> bool:
        """Stop the run only if it runs here now (a Stop sent to every replica: the others remember nothing).

        With `tag`, only if it is the run of that tag (`LiveRun.tag`): a client naming the run it saw never
        stops a later one of the same id. A run of that tag that has not started yet (a client gets its tag
        before the run's first update) waits for this Stop, and ends as it starts; a tag names one run only,
        so waiting for it can stop nothing else, here or on another replica."""
        key = (owner, run_id)
        with self._lock:
            token = self._tokens.get(key)
            if tag is not None and self._tags.get(key) != tag:
                _remember(self._stops_waiting, key, (self._clock(), tag))
                return False
        if token is None:
            return False
        token.cancel()
        return True


def _remember(
    remembered: dict[tuple[str, str], V], key: tuple[str, str], value: V, limit: int = ActiveTurns._REMEMBERED
) -> None:
    """Keep `value` for `key`, and at most `limit` keys: the oldest are dropped first."""
    remembered.pop(key, None)  # re-inserted last: the dict stays in time order, oldest first
    remembered[key] = value
    while len(remembered) > limit:
        del remembered[next(iter(remembered))]


class LiveRun(Generic[U]):
    """One run as its readers see it: the latest update (each holds the whole result so far) and a wake-up
    for the next. The run never waits for a reader, so a reader can leave and another come later (a
    reloaded page, an `EventSource` reconnecting) and start from the latest update."""

    def __init__(self, kind: str, subject: str = "", tag: str | None = None) -> None:
        self.kind = kind
        """Which service's run this is (`chat`, `recipe`, ...): a reader checks it before trusting `latest`."""
        self.subject = subject
        """What the run answers (a chat turn's prompt), for a reader who was not there when it started."""
        self.tag = tag or secrets.token_hex(4)
        """Tells this run from a later one under the same key: a resume must not land in the next answer."""
        self.latest: U | None = None
        self.ended = asyncio.Event()
        """The final update is published: nothing comes after it, and no pause between updates may hold it."""
        self.task: asyncio.Task[None] | None = None
        """The task the run lives in; held here so that a run nobody reads is not garbage-collected."""
        self.stops_when_left = False
        """Its reader leaving stops it (`stream_from_own_task` without `keep_running_when_left`)."""
        self._version = 0
        self._changed = asyncio.Event()

    def publish(self, update: U) -> None:
        if self.ended.is_set():
            return
        self.latest = update
        self._version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()  # wakes every reader waiting on the update before this one
        if update.final:
            self.ended.set()

    async def read(
        self,
        *,
        min_update_interval: float | Callable[[], float] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> AsyncIterator[U]:
        """The latest update, then each newer one until the final; with `min_update_interval` at most one
        per interval, the latest winning (a callable is asked again after each update, to follow the load)."""
        seen = 0
        next_due = 0.0
        while True:
            if self._version == seen:
                await self._changed.wait()
            if min_update_interval is not None and not self.ended.is_set() and clock() < next_due:
                with contextlib.suppress(TimeoutError):  # under load up to a second; a final update ends it
                    await asyncio.wait_for(self.ended.wait(), next_due - clock())
            update = self.latest
            assert update is not None
            seen = self._version
            yield update
            if update.final:
                return
            if min_update_interval is not None:
                interval = min_update_interval() if callable(min_update_interval) else min_update_interval
                next_due = clock() + interval


async def stream_from_own_task(
    active: ActiveTurns,
    owner: str,
    run_id: str,
    produce: Callable[[CancellationToken, Report[U]], Awaitable[None]],
    crashed: Callable[[BaseException], U],
    *,
    kind: str = "run",
    subject: str = "",
    tag: str | None = None,
    address: str | None = None,
    paid: bool = False,
    keep_running_when_left: bool = False,
    min_update_interval: float | Callable[[], float] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> AsyncIterator[U]:
    """Run `produce(token, report)` in its own task and yield what it reports; the last update is final.

    `kind`, `subject` and `tag` describe the run to later readers (`LiveRun`); `address` and `paid` are what
    `ActiveTurns.start` counts (a final update's `spent_tokens` is what a paid run spent); `crashed(error)` makes the
    final update when `produce` ends without reporting one. Updates are paced
    as `LiveRun.read` says. A consumer that leaves early (cancelled or closed from any task) stops the
    run, which saves its partial result, unless `keep_running_when_left`: then the run goes on to its
    end, and `ActiveTurns.live` finds it for a reader who comes back.
    """
    try:
        token = await active.admit(owner, run_id, address, tag, paid=paid)
    except PromptRejected as refusal:  # draining for a restart, busy elsewhere, or too many at once
        yield crashed(refusal)
        return
    run: LiveRun[U] = LiveRun(kind, subject, tag)
    run.stops_when_left = not keep_running_when_left
    report: Report[U] = Report(run.publish)

    async def guarded() -> None:
        try:
            await produce(token, report)
        except BaseException as error:
            if not run.ended.is_set():
                log.exception("run %s ended without a final update", run_id)
                run.publish(crashed(error))
            raise
        finally:
            active.finish(owner, run_id, token, spent_tokens=getattr(run.latest, "spent_tokens", 0))

    run.task = asyncio.create_task(guarded())
    active.track(owner, run_id, run)
    try:
        async for update in run.read(min_update_interval=min_update_interval, clock=clock):
            yield update
            report._delivered()  # the consumer came back for more: the update has been handed on
    finally:
        # Reached by Stop, by a consumer cancelled or closed from any task (tab closed), and on success.
        report._delivered()  # a run waiting for its first update to be shown must not wait for a gone consumer
        if not keep_running_when_left or run.ended.is_set() or active.closing:
            token.cancel()
            await wait_for_run(run.task)


async def refused(update: U) -> AsyncIterator[U]:
    """The stream of a run refused before it started: its one, final update."""
    yield update


async def wait_for_run(task: asyncio.Task[None]) -> None:
    """Wait for the run to finish saving even if the waiter itself is being cancelled."""
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):  # asyncio.wait never cancels the task it waits for
            await asyncio.wait({task})
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.error("run task failed", exc_info=task.exception())
