"""Who is asking, resolved once per event: the signed-in account, an API caller's own token, or the
id in the browser's signed cookie (chat/identity.py)."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Protocol

import gradio as gr

from chat.identity import COOKIE_NAME, MalformedOwner, VisitorCookie, checked_owner, new_visitor_id, visitor


def new_conversation_id() -> str:
    return str(uuid.uuid4())


class Visitors:
    """Every event is also an API call, so every handler resolves its visitor here itself."""

    def __init__(self, cookies: VisitorCookie) -> None:
        self.cookies = cookies
        self._without_cookie: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def owner(self, token: str | None, request: gr.Request | None, profile: gr.OAuthProfile | None) -> str | None:
        """The owner scope of this event: the signed-in account, else the API caller's token (the page
        sends none), else the browser's cookie. A malformed token is refused with what to send instead."""
        try:
            explicit = checked_owner(token)
        except MalformedOwner as malformed:
            raise gr.Error(str(malformed), print_exception=False) from None
        return visitor(explicit or self._from_browser(request), profile)

    def _from_browser(self, request: gr.Request | None) -> str | None:
        cookies = getattr(request, "cookies", None) or {}
        from_cookie = self.cookies.verify(cookies.get(COOKIE_NAME))
        if from_cookie:
            return from_cookie
        # A browser that refuses the cookie (third-party cookies blocked in an embedding iframe) still
        # gets one visitor for the whole page session; it starts afresh on reload.
        session = getattr(request, "session_hash", None)
        if not session:
            return None
        with self._lock:
            minted = self._without_cookie.setdefault(session, new_visitor_id())
            self._without_cookie.move_to_end(session)
            while len(self._without_cookie) > 10_000:
                self._without_cookie.popitem(last=False)
        return minted


class Stoppable(Protocol):
    def stop(self, owner: str, run_id: str) -> bool: ...


class RunHandlers:
    """The handlers of a tab whose runs its visitor can stop (chat, recipe, hand-off)."""

    def __init__(self, runs: Stoppable, visitors: Visitors) -> None:
        self.visitors = visitors
        self._runs = runs

    async def stop(
        self, token: str | None, run_id: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> None:
        """Stop this visitor's run of this id (someone else's id stops nothing); the run saves what it has.

        A coroutine though it awaits nothing: Gradio runs it on the event loop, where the run's task is
        cancelled at once. A plain function would wait for one of Gradio's 40 worker threads, and with
        hundreds of answers stopped together most Stops queued there (benchmarks/ANALYSIS.md)."""
        owner = self.visitors.owner(token, request, profile)
        if owner and run_id:
            self._runs.stop(owner, run_id)
