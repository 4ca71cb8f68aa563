"""What one network address may do, whatever visitor ids it sends: a script that makes a new owner token, a
new `/v1` key or a new session for every request is still one address, so it is held where a person is.

- At most `visitors_per_hour` different visitors (browser cookies, API owner tokens, `/v1` keys) start
  answers from one address in any hour, and `POST /api/session` hands out no more than that (`TooManyVisitors`).
- At most `messages_per_minute` answers start from one address in any minute, whoever sends them
  (`TooManyFromAddressPerMinute`), beside each visitor's own limit.
- At most `tokens_per_day` tokens are spent for one address in any 24 hours on models that cost money
  (`TokenBudgetSpent`); `ModelResolver.costs_money` says which do.

Counted in this process's memory: with replicas each counts its own (nginx keeps a visitor on one, but a
script with fresh ids is spread over all of them, so it gets each replica's allowance). None: no limit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from chat.errors import TokenBudgetSpent, TooManyFromAddressPerMinute, TooManyVisitors

HOUR, MINUTE, DAY = 3600.0, 60.0, 86400.0
REMEMBERED = 10_000
"""Addresses kept at most: past it, those with nothing in their windows are forgotten."""


class AddressLimits:
    def __init__(
        self,
        visitors_per_hour: int | None = None,
        messages_per_minute: int | None = None,
        tokens_per_day: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.visitors_per_hour = visitors_per_hour
        self.messages_per_minute = messages_per_minute
        self.tokens_per_day = tokens_per_day
        self._clock = clock
        self._lock = threading.Lock()
        self._visitors: dict[str, OrderedDict[str, float]] = {}
        """Per address, each visitor seen in the last hour and when last, oldest first."""
        self._starts: dict[str, deque[float]] = {}
        self._spent: dict[str, deque[tuple[float, int]]] = {}

    def check(self, address: str, owner: str, *, paid: bool = False) -> None:
        """The refusal for a run `owner` would start from `address` now; nothing is counted."""
        with self._lock:
            self._check_visitor(address, owner)
            now = self._clock()
            if self.messages_per_minute is not None:
                starts = _recent(self._starts, address, now - MINUTE)
                if len(starts) >= self.messages_per_minute:
                    raise TooManyFromAddressPerMinute(self.messages_per_minute, starts[0] + MINUTE - now)
            if paid and self.tokens_per_day is not None:
                spent = _recent(self._spent, address, now - DAY, when=lambda entry: entry[0])
                total = sum(tokens for _, tokens in spent)
                if total >= self.tokens_per_day:
                    raise TokenBudgetSpent(self.tokens_per_day, _until_below(spent, total, self.tokens_per_day) - now)

    def started(self, address: str, owner: str) -> None:
        """Count a run that starts (after `check`)."""
        with self._lock:
            now = self._clock()
            self._seen(address, owner, now)
            if self.messages_per_minute is not None:
                self._starts.setdefault(address, deque()).append(now)
            self._forget_idle(now)

    def hand_out(self, address: str, new_owner: str) -> None:
        """Count an owner token handed out to `address` (`POST /api/session`) as one of its visitors, or
        `TooManyVisitors` when it has had as many as it may this hour."""
        with self._lock:
            self._check_visitor(address, new_owner)
            self._seen(address, new_owner, self._clock())
            self._forget_idle(self._clock())

    def spend(self, address: str, tokens: int) -> None:
        """Count what a run on a model that costs money spent, when it ends."""
        if self.tokens_per_day is None or tokens <= 0:
            return
        with self._lock:
            self._spent.setdefault(address, deque()).append((self._clock(), tokens))

    def spent_today(self, address: str) -> int:
        with self._lock:
            return sum(tokens for _, tokens in _recent(self._spent, address, self._clock() - DAY, lambda e: e[0]))

    def _check_visitor(self, address: str, owner: str) -> None:
        if self.visitors_per_hour is None:
            return
        now = self._clock()
        seen = self._visitors.get(address)
        if seen is None or owner in seen:
            return
        while seen and next(iter(seen.values())) <= now - HOUR:
            seen.popitem(last=False)
        if len(seen) >= self.visitors_per_hour:
            raise TooManyVisitors(self.visitors_per_hour, next(iter(seen.values())) + HOUR - now)

    def _seen(self, address: str, owner: str, now: float) -> None:
        if self.visitors_per_hour is None:
            return
        seen = self._visitors.setdefault(address, OrderedDict())
        seen[owner] = now
        seen.move_to_end(owner)

    def _forget_idle(self, now: float) -> None:
        """Addresses seen once long ago cost no memory for ever (a flood of forged-looking ones included)."""
        for kept, since in ((self._visitors, now - HOUR), (self._starts, now - MINUTE)):
            if len(kept) > REMEMBERED:
                for address in [a for a, times in kept.items() if not times or _last(times) <= since]:
                    del kept[address]
        if len(self._spent) > REMEMBERED:
            for address in [a for a, spent in self._spent.items() if not spent or spent[-1][0] <= now - DAY]:
                del self._spent[address]


def _recent(kept: dict, address: str, since: float, when: Callable = lambda entry: entry) -> deque:
    """The address's entries newer than `since`, older ones dropped."""
    entries = kept.get(address, deque())
    while entries and when(entries[0]) <= since:
        entries.popleft()
    return entries


def _last(times: OrderedDict[str, float] | deque[float]) -> float:
    return next(reversed(times.values())) if isinstance(times, OrderedDict) else times[-1]


def _until_below(spent: deque[tuple[float, int]], total: int, budget: int) -> float:
    """When enough of what was spent has left the day's window for the address to be under its budget."""
    for at, tokens in spent:
        total -= tokens
        if total < budget:
            return at + DAY
    return spent[-1][0] + DAY
