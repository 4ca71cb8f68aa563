"""An OpenAI-compatible API on the same server: `GET /v1/models` and `POST /v1/chat/completions`.

Any `openai` client (and Open WebUI, LibreChat, Continue, ...) can use the app's agent as a model:
base URL `http://host:port/v1`, any key of your own. The bearer key is the caller's identity, kept only
as a hash (`key:<sha256>`): two keys never share anything, and no page visitor or `X-Chat-Owner` token
can be it (those never contain a colon). Errors are shaped as OpenAI's; limits answer 429 with
Retry-After, as on every other route. The run itself is chat/completions.py.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chat.completions import BadCompletionRequest, ChatMessageIn, Completions, CompletionUpdate
from chat.errors import (
    ConversationBusy,
    ServerClosing,
    StorageFull,
    TooManyRunning,
    TooManyStarts,
    describe_failure,
)
from chat.identity import client_address
from chat.models import ModelNotOffered
from chat.runs import RunStatus

MAX_KEY_LENGTH = 512


class TextContent(BaseModel):
    type: Literal["text"]
    text: str


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContent] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # top_p, user, ...: accepted and not used
    model: str
    messages: list[MessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)


def openai_error(
    status: int, message: str, *, kind: str, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def caller_of(request: Request) -> str | None:
    """The caller's owner scope from `Authorization: Bearer <key>`, or None without a usable key."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > MAX_KEY_LENGTH:
        return None
    return "key:" + hashlib.sha256(key.encode()).hexdigest()


class OpenAICompatibleAPI:
    def __init__(self, completions: Completions, default_model: str) -> None:
        self.completions = completions
        self.default_model = default_model

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/v1/models", self.list_models, methods=["GET"], response_model=None)
        router.add_api_route("/v1/chat/completions", self.chat_completions, methods=["POST"], response_model=None)
        return router

    async def list_models(self, request: Request) -> JSONResponse:
        if caller_of(request) is None:
            return _no_key()
        names = self.completions.models.offered()
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": n, "object": "model", "created": 0, "owned_by": "pydantic-ai-chat"} for n in names],
            }
        )

    async def chat_completions(self, request: Request) -> JSONResponse | StreamingResponse:
        owner = caller_of(request)
        if owner is None:
            return _no_key()
        try:
            body = ChatCompletionRequest.model_validate(await request.json())
        except (ValidationError, ValueError) as invalid:
            return openai_error(400, _first_problem(invalid), kind="invalid_request_error")
        try:
            self.completions.models.check_offered(body.model)
        except ModelNotOffered as not_offered:
            return openai_error(
                404, describe_failure(not_offered, body.model), kind="invalid_request_error", code="model_not_found"
            )
        address = client_address(request)
        refusal = await self._refusal(owner, address)
        if refusal is not None:
            return refusal
        try:
            updates = self.completions.complete(
                owner,
                body.model,
                [ChatMessageIn(m.role, m.text()) for m in body.messages],
                max_tokens=body.max_completion_tokens or body.max_tokens,
                temperature=body.temperature,
                address=address,
            )
        except BadCompletionRequest as bad:
            return openai_error(400, str(bad), kind="invalid_request_error")
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            chunks = _chunks(updates, completion_id, created, body.model, include_usage)
            return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        last = CompletionUpdate("")
        async for last in updates:
            pass
        if last.status is RunStatus.FAILED:
            return openai_error(502, last.error or "The model failed.", kind="api_error")
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": body.model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": last.text}, "finish_reason": "stop"}
                ],
                "usage": _usage(last),
            }
        )

    async def _refusal(self, owner: str, address: str | None) -> JSONResponse | None:
        """A limit reached, answered as OpenAI does (429 with Retry-After); None when the run may start."""
        try:
            await self.completions.active.check_can_start(owner, f"check-{uuid.uuid4().hex}", address)
        except ServerClosing as closing:
            return openai_error(503, str(closing), kind="server_error", headers={"Retry-After": "10"})
        except (TooManyRunning, TooManyStarts) as too_many:
            headers = {"Retry-After": str(too_many.retry_after_seconds)}
            return openai_error(
                429, str(too_many), kind="rate_limit_error", code="rate_limit_exceeded", headers=headers
            )
        except (ConversationBusy, StorageFull) as refused:
            return openai_error(429, str(refused), kind="rate_limit_error", code="rate_limit_exceeded")
        return None


async def _chunks(
    updates: AsyncIterator[CompletionUpdate], completion_id: str, created: int, model: str, include_usage: bool
) -> AsyncIterator[str]:
    """OpenAI's stream: a role chunk, content deltas, a finish chunk, the usage chunk if asked, [DONE]."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        return f"data: {json.dumps({**body, 'choices': choices, **extra})}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    sent = 0
    async for update in updates:
        if len(update.text) > sent:
            yield chunk({"content": update.text[sent:]})
            sent = len(update.text)
        if update.status is RunStatus.FAILED:
            error = {"message": update.error or "The model failed.", "type": "api_error", "param": None, "code": None}
            yield f"data: {json.dumps({'error': error})}\n\n"
            return
        if update.final:
            yield chunk({}, "stop")
            if include_usage:
                body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
                yield f"data: {json.dumps({**body, 'choices': [], 'usage': _usage(update)})}\n\n"
    yield "data: [DONE]\n\n"


def _usage(update: CompletionUpdate) -> dict[str, int]:
    usage = update.usage
    prompt, completion = (usage.input_tokens, usage.output_tokens) if usage else (0, 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _no_key() -> JSONResponse:
    return openai_error(
        401,
        "Send an API key of your own as 'Authorization: Bearer <key>': it is your identity on this server.",
        kind="invalid_request_error",
        code="invalid_api_key",
    )


def _first_problem(invalid: Exception) -> str:
    if isinstance(invalid, ValidationError):
        first = invalid.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"Invalid request: {where}: {first['msg']}."
    return "Send a JSON body with 'model' and 'messages'."
