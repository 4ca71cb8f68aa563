"""Shutting down without losing an answer: SIGTERM (every redeploy, a Space restart) and Ctrl-C drain.

Draining refuses new runs, stops the running ones (each saves its partial answer, labelled as cut short
by a restart) and waits for them to finish saving, at most `grace` seconds. What a drain cannot save
in time, the turn journal still has (chat/wings/journal.py).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence

from chat.runs import ActiveTurns

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 10.0


def wait_for_stop_signal(signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)) -> signal.Signals:
    """Block the main thread until one of `signals` arrives; returns it."""
    received: list[signal.Signals] = []
    arrived = threading.Event()

    def note(number: int, _frame: object) -> None:
        received.append(signal.Signals(number))
        arrived.set()

    for each in signals:
        signal.signal(each, note)
    while not arrived.wait(0.5):  # a timed wait, so the signal handler gets to run promptly
        pass
    return received[0]


def drain(
    running: ActiveTurns,
    grace: float = DEFAULT_GRACE_SECONDS,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Stop every run and wait until all have saved; False if `grace` ran out first. Call off the event loop."""
    stopped = running.close()
    deadline = clock() + grace
    while len(running):
        if clock() >= deadline:
            log.warning("shutdown: %d of %d running turns not saved within %.0f s", len(running), stopped, grace)
            return False
        sleep(0.02)
    log.info("shutdown: %d running turns stopped and saved", stopped)
    return True
