"""Who is asking: the browser's token and the owner scope it stands for, resolved once per event."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import OrderedDict

import gradio as gr

from chat.identity import visitor


def new_owner_token() -> str:
    """An opaque visitor id: 128 random bits, kept in the visitor's browser."""
    return secrets.token_urlsafe(16)


def new_conversation_id() -> str:
    return str(uuid.uuid4())


class Visitors:
    """Every event is also an API call, so every handler resolves its visitor here itself."""

    def __init__(self) -> None:
        self._minted: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def browser_token(self, token: str | None, request: gr.Request | None) -> str:
        """The browser's own token; on a first visit, one minted per page session.

        Page load and a quick first Send both find the browser state empty and run concurrently:
        minting per session makes them agree, so the first chat cannot land under a lost token.
        """
        if visitor(token):
            return token or ""
        session = getattr(request, "session_hash", None)
        if not session:
            return new_owner_token()
        with self._lock:
            minted = self._minted.setdefault(session, new_owner_token())
            self._minted.move_to_end(session)
            while len(self._minted) > 10_000:
                self._minted.popitem(last=False)
        return minted

    def owner(self, token: str | None, request: gr.Request | None, profile: gr.OAuthProfile | None) -> str | None:
        """The owner scope of this event: the signed-in account, else the browser's (possibly new) token."""
        return visitor(self.browser_token(token, request), profile)
