"""`/api/chat`: the chat turn as standard Server-Sent Events, for `EventSource`, `curl -N` or any front end;
a dropped client resumes with `Last-Event-ID`, and `/api/chat/stop` stops a turn.

The visitor is an API client's own owner token (the `X-Chat-Owner` header), else the signed cookie the
server gives every browser (so `/sse-demo`'s conversations appear in that browser's sidebar). A
conversation id alone grants nothing: someone else's answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from chat.errors import TooManyVisitors
from chat.identity import VisitorCookie, client_address, new_visitor_id
from chat.runs import RunStatus
from chat.steps import Step
from chat.turns import ChatService
from chat.wings.relay import AnswerRelay
from chat.wings.stop_everywhere import StopEverywhere
from web.route_base import ChatRoutes, Refused
from web.turn_events import step_changes, usage_summary, with_keep_alive
from web.turn_start import OWNER_HEADER, Refusal, TurnAsk, json_refusal

KEEP_ALIVE_SECONDS = 1.0
DEMO_PAGE = Path(__file__).with_name("sse_demo.html")


class StopRequest(BaseModel):
    conversation_id: str
    run: str | None = None
    """Stop only this run (the chat page's Stop sends it); then only on this server."""


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


class ChatStreamAPI(ChatRoutes):
    MALFORMED = 'Send a JSON body like {"message": "Hello"}.'

    def __init__(
        self,
        service: ChatService,
        cookies: VisitorCookie,
        default_model: str,
        stops: StopEverywhere | None = None,
        relay: AnswerRelay | None = None,
    ) -> None:
        super().__init__(service, cookies, default_model)
        self.stops = stops
        """Stops that reach other replicas too; None: this server's turns only."""
        self.relay = relay
        """Resumes of turns running on other replicas; None: this server's turns only."""

    def router(self) -> APIRouter:
        router = self.routes(
            ("GET", "/api/chat/stream", self.stream_get),
            ("POST", "/api/chat", self.stream_post),
            ("POST", "/api/chat/stop", self.stop),
            ("POST", "/api/session", self.new_session),
        )
        router.add_api_route("/sse-demo", self.demo_page, methods=["GET"], response_class=HTMLResponse)
        return router

    def refused(self, refusal: Refusal) -> Response:
        return json_refusal(refusal)

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
        return await self._stream(request, await self.body(request, ChatRequest.model_validate))

    async def stop(self, request: Request) -> JSONResponse:
        """Stop a turn of yours, like the page's Stop (closing the stream does not: the turn goes on)."""
        owner = self.caller(request)
        asked = await self.body(
            request, StopRequest.model_validate, 'Send a JSON body like {"conversation_id": "..."}.'
        )
        conversation_id = asked.conversation_id
        if asked.run is not None:
            return JSONResponse({"stopped": self.service.active.stop_running(owner, conversation_id, asked.run)})
        if self.stops is None:
            return JSONResponse({"stopped": self.service.stop(owner, conversation_id)})
        return JSONResponse({"stopped": await self.stops.stop(owner, conversation_id)})

    async def new_session(self, request: Request) -> JSONResponse:
        """An owner token of the server's making for an API client: keep it, it is your key to your chats.

        Each is one of the visitors its network address may bring in an hour (`AddressLimits`)."""
        owner, address = new_visitor_id(), client_address(request)
        if address is not None:
            try:
                self.service.active.addresses.hand_out(address, owner)
            except TooManyVisitors as too_many:
                raise Refused(Refusal(429, str(too_many), retry_after=too_many.retry_after_seconds)) from None
        return JSONResponse({"owner": owner, "header": OWNER_HEADER})

    async def demo_page(self) -> HTMLResponse:
        return HTMLResponse(DEMO_PAGE.read_text(encoding="utf-8"))

    async def _stream(self, request: Request, body: ChatRequest) -> Response:
        owner = self.caller(request)
        last_event_id = request.headers.get("last-event-id")
        if last_event_id:  # a client coming back for the rest: nothing new is sent to the model
            return await self._resume(owner, last_event_id)
        tag = secrets.token_hex(4)
        ask = TurnAsk(body.message, body.conversation_id, body.model, body.context)
        conversation_id, updates = await self.start(request, owner, ask, tag)
        return _event_stream(self._events(updates, StreamPlace(conversation_id, tag, 0), announce=True))

    async def _resume(self, owner: str, last_event_id: str) -> Response:
        """The rest of a turn from the event a client last read: running (here, or on another replica), or
        ended less than a minute ago."""
        place = StreamPlace.parse(last_event_id)
        if place is not None and place.offset is None:
            return Response(status_code=204)  # it read the end already; a 204 stops `EventSource` reconnecting
        if place is None:
            return json_refusal(Refusal(404, NOT_RESUMABLE))
        run = self.service.live_turn(owner, place.conversation_id)
        if run is not None and run.tag == place.tag:
            return _event_stream(self._events(self.service.follow(run), place, announce=False))
        if run is None and self.relay is not None:
            relayed = await self.relay.follow(owner, place.conversation_id, place.tag, place.offset or 0)
            if relayed is not None:
                return _event_stream(self._events(relayed, place, announce=False, relayed=True))
        return json_refusal(Refusal(404, NOT_RESUMABLE))

    async def _events(
        self, updates: AsyncIterator[Any], place: StreamPlace, announce: bool, relayed: bool = False
    ) -> AsyncIterator[str]:
        """`start` (unless resuming), then a `delta` for each stretch of new text, then `done` or `error`;
        before the answer, `thinking`, `tool_call` and `tool_result` events for what the agent did.

        Each event's id is where the reader is: a client that reconnects with it as `Last-Event-ID` gets
        the text after it. Leaving does not stop the turn: it runs on, is saved, and can be resumed."""
        conversation_id, offset = place.conversation_id, place.offset or 0
        # A relayed answer's text starts where the reader was (chat/wings/relay.py); the ids still count from
        # the answer's beginning, so the reader can resume again anywhere.
        shift, offset = (offset, 0) if relayed else (0, offset)
        steps_sent: dict[str, Step] = {}
        async with contextlib.aclosing(with_keep_alive(updates, KEEP_ALIVE_SECONDS)) as paced:
            if announce:
                start = json.dumps({"conversation_id": conversation_id})
                yield sse_event("start", start, place.at(shift + offset), retry=RETRY_MILLISECONDS)
            async for update in paced:
                if update is None:
                    yield ": keep-alive\n\n"
                    continue
                for name, data in step_changes(update.steps, steps_sent):
                    yield sse_event(name, json.dumps(data, ensure_ascii=False), place.at(shift + offset))
                fresh = update.text[offset:]
                if fresh.endswith("\r") and not update.final:
                    fresh = fresh[:-1]  # held back: with the next "\n" it is one line end (CRLF), not two
                if fresh:
                    offset += len(fresh)
                    yield sse_event("delta", fresh, place.at(shift + offset))
                if update.status is RunStatus.FAILED:
                    yield sse_event("error", json.dumps({"error": update.error}, ensure_ascii=False), place.at(None))
                    return
                if update.final:
                    done = {
                        "conversation_id": conversation_id,
                        "status": update.status.value,
                        "usage": usage_summary(update),
                    }
                    yield sse_event("done", json.dumps(done, ensure_ascii=False), place.at(None))
                    return


END = "end"
NOT_RESUMABLE = (
    "That answer cannot be resumed: it ended over a minute ago, or it is not yours. "
    "Whatever it said is saved in its conversation."
)


@dataclass(frozen=True)
class StreamPlace:
    """Where a reader is in one turn's answer, written as each event's `id:` (`conversation:run:characters`,
    or `conversation:run:end` once it has read the end)."""

    conversation_id: str
    tag: str
    """The run's `LiveRun.tag`: a resume never continues a later answer in the same conversation."""
    offset: int | None
    """How many characters of the answer the reader has; None: all of it, and how it ended."""

    def at(self, offset: int | None) -> str:
        return f"{self.conversation_id}:{self.tag}:{END if offset is None else offset}"

    @classmethod
    def parse(cls, event_id: str) -> StreamPlace | None:
        """The place an id names; None for anything this server did not write."""
        conversation_id, tag, offset = (["", "", ""] + event_id.strip().rsplit(":", 2))[-3:]
        if not (conversation_id and tag and (offset == END or offset.isascii() and offset.isdigit())):
            return None
        return cls(conversation_id, tag, None if offset == END else int(offset))


def _event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
