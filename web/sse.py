"""`/api/chat`: the chat turn as standard Server-Sent Events, for `EventSource`, `curl -N` or any front end.

The visitor is an API client's own owner token (the `X-Chat-Owner` header), else the signed cookie the
server gives every browser (so `/sse-demo`'s conversations appear in that browser's sidebar). A
conversation id alone grants nothing: someone else's answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from chat.errors import (
    ConversationBusy,
    PromptRejected,
    ServerClosing,
    StorageFull,
    TooManyRunning,
    TooManyStarts,
    describe_failure,
)
from chat.identity import COOKIE_NAME, MalformedOwner, VisitorCookie, checked_owner, new_visitor_id, visitor
from chat.models import ModelNotOffered
from chat.turns import ChatService, TurnStatus

OWNER_HEADER = "x-chat-owner"
KEEP_ALIVE_SECONDS = 1.0
DEMO_PAGE = Path(__file__).with_name("sse_demo.html")


class ChatRequest(BaseModel):
    message: str | None = None
    conversation_id: str | None = None
    model: str | None = None
    context: str | None = None


RETRY_MILLISECONDS = 3000
"""Sent once per stream: how long an `EventSource` waits before reconnecting."""
_LINE_END = re.compile(r"\r\n|\r|\n")


def sse_event(event: str, data: str, event_id: int | None = None, retry: int | None = None) -> str:
    """One SSE event. Each line of `data` gets its own `data:` field, split at CR, LF and CRLF alike: a
    bare CR ends a line for every conformant parser, so left in a field it would cut the text there."""
    head = f"event: {event}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    if retry is not None:
        head += f"retry: {retry}\n"
    return head + "".join(f"data: {line}\n" for line in _LINE_END.split(data)) + "\n"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class ChatStreamAPI:
    def __init__(self, service: ChatService, cookies: VisitorCookie, default_model: str) -> None:
        self.service = service
        self.cookies = cookies
        self.default_model = default_model

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/api/chat/stream", self.stream_get, methods=["GET"], response_model=None)
        router.add_api_route("/api/chat", self.stream_post, methods=["POST"], response_model=None)
        router.add_api_route("/api/session", self.new_session, methods=["POST"], response_model=None)
        router.add_api_route("/sse-demo", self.demo_page, methods=["GET"], response_class=HTMLResponse)
        return router

    async def stream_get(
        self,
        request: Request,
        message: str | None = None,
        conversation_id: str | None = None,
        model: str | None = None,
        context: str | None = None,
    ) -> Response:
        return await self._stream(
            request, ChatRequest(message=message, conversation_id=conversation_id, model=model, context=context)
        )

    async def stream_post(self, request: Request) -> Response:
        try:
            body = ChatRequest.model_validate(await request.json())
        except (ValueError, json.JSONDecodeError):
            return _error(400, 'Send a JSON body like {"message": "Hello"}.')
        return await self._stream(request, body)

    async def new_session(self) -> JSONResponse:
        """An owner token of the server's making for an API client: keep it, it is your key to your chats."""
        return JSONResponse({"owner": new_visitor_id(), "header": OWNER_HEADER})

    async def demo_page(self) -> HTMLResponse:
        return HTMLResponse(DEMO_PAGE.read_text(encoding="utf-8"))

    async def _stream(self, request: Request, body: ChatRequest) -> Response:
        try:
            token = checked_owner(request.headers.get(OWNER_HEADER))
        except MalformedOwner as malformed:
            return _error(400, str(malformed))
        owner = visitor(token or self.cookies.verify(request.cookies.get(COOKIE_NAME)))
        if not owner:
            return _error(401, f"Send your owner token in an {OWNER_HEADER} header (POST /api/session gives you one).")
        try:
            message = self.service.check_prompt(body.message)
        except PromptRejected as rejected:
            return _error(400 if not (body.message or "").strip() else 413, str(rejected))
        model_name = body.model or self.default_model
        try:  # the operator's choices, checked before anything is stored or any provider is asked
            self.service.check_context(body.context)
            self.service.models.check_offered(model_name)
        except (PromptRejected, ModelNotOffered) as not_offered:
            return _error(400, describe_failure(not_offered, model_name))
        conversation_id = body.conversation_id or str(uuid.uuid4())
        address = request.client.host if request.client else None
        try:  # refused now with a status a client can act on; the run checks again as it starts
            self.service.active.check_can_start(owner, conversation_id, address)
        except ServerClosing as closing:  # draining for a restart: come back in a moment
            return _error(503, str(closing), headers={"Retry-After": "10"})
        except (TooManyRunning, TooManyStarts) as too_many:
            return _error(429, str(too_many), headers={"Retry-After": str(too_many.retry_after_seconds)})
        except ConversationBusy as busy:  # before the 404: a new chat's first answer is not stored yet
            return _error(409, str(busy))
        except StorageFull as full:  # waiting will not help: the visitor deletes some conversations first
            return _error(507, str(full))
        if body.conversation_id and not self.service.has_conversation(owner, conversation_id):
            return _error(404, "No such conversation.")
        updates = self.service.run_turn(owner, conversation_id, message, model_name, body.context, address=address)
        return StreamingResponse(
            self._events(updates, conversation_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _events(self, updates: AsyncIterator[Any], conversation_id: str) -> AsyncIterator[str]:
        sent = ""
        pending: asyncio.Future[Any] | None = None
        ids = itertools.count(1)
        try:
            start = json.dumps({"conversation_id": conversation_id})
            yield sse_event("start", start, next(ids), retry=RETRY_MILLISECONDS)
            while True:
                pending = asyncio.ensure_future(updates.__anext__())
                while not pending.done():
                    done, _ = await asyncio.wait({pending}, timeout=KEEP_ALIVE_SECONDS)
                    if not done:
                        yield ": keep-alive\n\n"
                try:
                    update = pending.result()
                except StopAsyncIteration:
                    return
                finally:
                    pending = None
                fresh = update.text[len(sent) :]
                if fresh.endswith("\r") and not update.final:
                    fresh = fresh[:-1]  # held back: with the next "\n" it is one line end (CRLF), not two
                if fresh:
                    yield sse_event("delta", fresh, next(ids))
                    sent += fresh
                if update.status is TurnStatus.FAILED:
                    yield sse_event("error", json.dumps({"error": update.error}, ensure_ascii=False), next(ids))
                    return
                if update.final:
                    stats = update.stats
                    usage = (
                        None
                        if stats is None
                        else {
                            "requests": stats.requests,
                            "input_tokens": stats.input_tokens,
                            "output_tokens": stats.output_tokens,
                            "estimated": stats.estimated,
                        }
                    )
                    done = {"conversation_id": conversation_id, "status": update.status.value, "usage": usage}
                    yield sse_event("done", json.dumps(done, ensure_ascii=False), next(ids))
                    return
        finally:
            # A client that went away stops the run like the Stop button: the partial answer is saved as
            # stopped. Starlette cancels this generator's scope, so the clean-up is shielded from it.
            with anyio.CancelScope(shield=True):
                if pending is not None:
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
                await updates.aclose()
