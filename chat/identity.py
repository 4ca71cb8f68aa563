"""Who a visitor is: their Hugging Face account when signed in, else an id the server issued.

- A browser gets its id in a cookie the server signs (`VisitorCookie`): HttpOnly, so no page script
  (nor an injected one) can read it, and signed with a secret that never leaves the server, so no one
  can make up another visitor's.
- An API caller sends an owner token of its own (`checked_owner`): at least 128 random bits, which
  `POST /api/session` hands out. Whoever knows a token is its owner: it is a password, not a name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any

HF_PREFIX = "hf:"
COOKIE_NAME = "chat_visitor"
TIME_ZONE_COOKIE = "chat_time_zone"
"""The browser's time zone, set by the page for the chat's date and time tool (untrusted, not an identity)."""
TIME_ZONE_HEADER = "X-Time-Zone"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,128}")
"""22 characters of base64url are 132 bits: the shortest token nobody guesses."""


class MalformedOwner(ValueError):
    """An owner token that is not a string of at least 128 random bits."""

    def __init__(self) -> None:
        super().__init__(
            "An owner token is 22 to 128 characters of letters, digits, '-' and '_' (at least 128 random "
            "bits): get one from POST /api/session, or make one with "
            'python -c "import secrets; print(secrets.token_urlsafe(24))".'
        )


def client_address(request: object) -> str | None:
    """The network address a request (Gradio's or Starlette's) came from, for the per-address limit.

    Behind a proxy it is the one the proxy forwards, when uvicorn is told to trust that proxy
    (`Settings.forwarded_allow_ips`, which `server.serve` hands to uvicorn); else the connection's own."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None)


def new_visitor_id() -> str:
    return secrets.token_urlsafe(24)


def checked_owner(token: object) -> str | None:
    """The API caller's own owner token, None when none was sent; `MalformedOwner` when it cannot be one."""
    if token is None or token == "":
        return None
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise MalformedOwner()
    return token


def visitor(owner_token: str | None, profile: Any | None = None) -> str | None:
    """The owner scope for this request.

    A signed-in Hugging Face user is `hf:<username>`, taken from the server-side OAuth session. A token
    is the client's word, so it may never claim that form: otherwise anyone could send `hf:alice` as
    their token and read Alice's conversations.
    """
    username = getattr(profile, "username", None) if profile is not None else None
    if username:
        return f"{HF_PREFIX}{username}"
    if not owner_token or owner_token.startswith(HF_PREFIX):
        return None
    return owner_token


class VisitorCookie:
    """Signs the visitor ids the server issues, and reads back only the ones it signed."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self) -> tuple[str, str]:
        """A new visitor id and the cookie value that carries it."""
        visitor_id = new_visitor_id()
        return visitor_id, f"{visitor_id}.{self._signature(visitor_id)}"

    def verify(self, cookie_value: str | None) -> str | None:
        """The visitor id in a cookie this server signed; None for no cookie, a forged or a damaged one."""
        if not cookie_value or cookie_value.count(".") != 1:
            return None
        visitor_id, signature = cookie_value.split(".")
        if not _TOKEN.fullmatch(visitor_id) or not hmac.compare_digest(signature, self._signature(visitor_id)):
            return None
        return visitor_id

    def _signature(self, visitor_id: str) -> str:
        digest = hmac.new(self._secret, visitor_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
