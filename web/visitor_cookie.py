"""Gives every browser a visitor id of the server's making, in a signed HttpOnly cookie.

Any response to a request that did not carry a valid cookie sets one, the page's first GET
included, so the page's events (and `/sse-demo`'s requests) all carry it from then on.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat.identity import COOKIE_NAME, VisitorCookie

ONE_YEAR = 365 * 24 * 3600


class IssueVisitorCookie:
    def __init__(self, app: ASGIApp, cookies: VisitorCookie) -> None:
        self.app = app
        self.cookies = cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.cookies.verify(_cookie(scope)) is not None:
            await self.app(scope, receive, send)
            return
        _, value = self.cookies.issue()
        set_cookie = f"{COOKIE_NAME}={value}; Path=/; Max-Age={ONE_YEAR}; HttpOnly; " + _cross_site_attributes(scope)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", set_cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed Cookie header is a missing cookie
                return None
            morsel = jar.get(COOKIE_NAME)
            return morsel.value if morsel else None
    return None


def _cross_site_attributes(scope: Scope) -> str:
    """Behind https (a Hugging Face Space, a proxy) the page may sit in another site's iframe (the Space
    page embeds the app): only a Secure, SameSite=None cookie reaches it there, partitioned to that
    embedding. Over plain http (localhost) Lax, which browsers require there."""
    forwarded = dict(scope.get("headers", [])).get(b"x-forwarded-proto", b"").decode("latin-1")
    if scope.get("scheme") == "https" or forwarded.split(",")[0].strip() == "https":
        return "Secure; SameSite=None; Partitioned"
    return "SameSite=Lax"
