"""An OpenAI-compatible API on the same server: `GET /v1/models` and `POST /v1/chat/completions`.

Any `openai` client (and Open WebUI, LibreChat, Continue, ...) can use the app's agent as a model:
base URL `http://host:port/v1`, any key of your own. The bearer key is the caller's identity, kept only
as a hash (`key:<sha256>`): two keys never share anything, and no page visitor or `X-Chat-Owner` token
can be it (those never contain a colon). Errors are shaped as OpenAI's; limits answer 429 with
Retry-After, as on every other route. The run itself is chat/wings/completions.py.

With an `X-Conversation-Id` header the turn is the page's own instead (`ChatService.run_turn`, with the
app's tools): stored in that conversation (new or the caller's own; anyone else's is a 404), with its
title, so it goes on over any route. The stored conversation is then the history: the request's earlier
user messages only say what the client shows (an edited or regenerated message branches the stored chat
back to them); a request with the new message alone goes on from the stored conversation. An `X-Chat-Owner` header, when sent, is the caller instead of the key: the same visitor as
on `/api/chat`, `/api/vercel-ai` and `/api/ag-ui`, so one conversation continues across all of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_ai.settings import ToolChoice
from pydantic_ai.usage import RunUsage

from chat.errors import FailureStatus, describe_failure
from chat.identity import MalformedOwner, checked_owner, client_address
from chat.models import ModelNotOffered
from chat.runs import RunStatus
from chat.turns import ChatService, TurnUpdate
from chat.wings.completions import (
    BadCompletionRequest,
    ChatMessageIn,
    ClientTool,
    CompletionOptions,
    Completions,
    CompletionUpdate,
    ToolCallIn,
)
from web.request_json import UnreadableJSON, read_json
from web.turn_start import OWNER_HEADER, Refusal, limits_refusal, start_shown

MAX_KEY_LENGTH = 512
MAX_STOP_SEQUENCES = 4
"""As OpenAI allows."""
CONVERSATION_HEADER = "x-conversation-id"
SEND_JSON = "Send a JSON body with 'model' and 'messages'."


class TextContent(BaseModel):
    type: Literal["text"]
    text: str


class OpenAIFunctionCall(BaseModel):
    name: str
    arguments: str = ""


class OpenAIToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    type: Literal["function"] = "function"
    function: OpenAIFunctionCall


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContent] | None = None
    tool_calls: list[OpenAIToolCall] | None = None
    tool_call_id: str | None = None

    def to_chat_message(self) -> ChatMessageIn:
        calls = tuple(ToolCallIn(c.id, c.function.name, c.function.arguments) for c in self.tool_calls or ())
        return ChatMessageIn(self.role, self.text(), calls, self.tool_call_id)

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class OpenAIFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class OpenAITool(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: OpenAIFunction


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: OpenAIFunctionCall


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = Field("response", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


ANY_JSON_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


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
    tools: list[OpenAITool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    response_format: ResponseFormat | None = None

    def completion_options(self) -> CompletionOptions:
        """What the request asks of its answer; `BadCompletionRequest` for what this server cannot give."""
        if self.n is not None and self.n > 1:
            raise BadCompletionRequest("n above 1 is not supported here: send the request n times.")
        if self.logprobs:
            raise BadCompletionRequest("logprobs are not available from this server.")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        if len(stop) > MAX_STOP_SEQUENCES or not all(stop):
            raise BadCompletionRequest(f"stop is 1 to {MAX_STOP_SEQUENCES} sequences, none empty.")
        passed = {
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
        }
        tools, tool_choice = self.client_tools()
        return CompletionOptions(
            model_settings={name: value for name, value in passed.items() if value is not None},
            stop=stop,
            tools=tuple(tools),
            tool_choice=tool_choice,
            **self._json_output(),
        )

    def _json_output(self) -> dict[str, Any]:
        asked = self.response_format
        if asked is None or asked.type == "text":
            return {}
        if asked.type == "json_object":
            return {"json_schema": ANY_JSON_OBJECT}
        if asked.json_schema is None or asked.json_schema.json_schema.get("type", "object") != "object":
            raise BadCompletionRequest("response_format json_schema needs a 'json_schema' whose 'schema' is an object.")
        shape = asked.json_schema
        return {"json_schema": shape.json_schema, "json_name": shape.name, "json_strict": shape.strict}

    def client_tools(self) -> tuple[list[ClientTool], ToolChoice]:
        """The tools the client runs itself, and its `tool_choice` as pydantic-ai takes it;
        `BadCompletionRequest` for a choice the tools cannot meet."""
        tools = [ClientTool(t.function.name, t.function.description, t.function.parameters) for t in self.tools or ()]
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            if choice.function.name not in {tool.name for tool in tools}:
                raise BadCompletionRequest(f"tool_choice names {choice.function.name!r}, which is not in 'tools'.")
            return tools, [choice.function.name]
        if choice == "required" and not tools:
            raise BadCompletionRequest("tool_choice 'required' needs at least one tool in 'tools'.")
        return tools, choice


def openai_error(
    status: int, message: str, *, kind: str, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def caller_of(request: Request) -> str | None:
    """The caller's owner scope: their `X-Chat-Owner` token when sent, else from `Authorization: Bearer
    <key>`; None without a usable key (a key is asked for either way, as every OpenAI client sends one).

    `MalformedOwner` for an `X-Chat-Owner` that cannot be one."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > MAX_KEY_LENGTH:
        return None
    return checked_owner(request.headers.get(OWNER_HEADER)) or "key:" + hashlib.sha256(key.encode()).hexdigest()


class OpenAICompatibleAPI:
    def __init__(self, completions: Completions, default_model: str, chat: ChatService | None = None) -> None:
        self.completions = completions
        self.default_model = default_model
        self.chat = chat
        """The page's turns, for requests that name a conversation; None: those are refused."""

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/v1/models", self.list_models, methods=["GET"], response_model=None)
        router.add_api_route("/v1/chat/completions", self.chat_completions, methods=["POST"], response_model=None)
        return router

    async def list_models(self, request: Request) -> JSONResponse:
        try:
            if caller_of(request) is None:
                return _no_key()
        except MalformedOwner as malformed:
            return openai_error(400, str(malformed), kind="invalid_request_error")
        models = self.completions.models
        names = [name for name in models.offered() if models.visitor_problem(name) is None]  # only what runs here
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": n, "object": "model", "created": 0, "owned_by": "pydantic-ai-chat"} for n in names],
            }
        )

    async def chat_completions(self, request: Request) -> JSONResponse | StreamingResponse:
        try:
            owner = caller_of(request)
        except MalformedOwner as malformed:
            return openai_error(400, str(malformed), kind="invalid_request_error")
        if owner is None:
            return _no_key()
        try:
            body = ChatCompletionRequest.model_validate(read_json(await request.body()))
        except UnreadableJSON as unreadable:
            return openai_error(400, f"{unreadable} {SEND_JSON}", kind="invalid_request_error")
        except ValidationError as invalid:
            return openai_error(400, _first_problem(invalid), kind="invalid_request_error")
        try:
            self.completions.models.check_offered(body.model)
        except ModelNotOffered as not_offered:
            return openai_error(
                404, describe_failure(not_offered, body.model), kind="invalid_request_error", code="model_not_found"
            )
        try:
            asked_for = body.completion_options()
        except BadCompletionRequest as bad:
            return openai_error(400, str(bad), kind="invalid_request_error")
        conversation_id = request.headers.get(CONVERSATION_HEADER)
        if conversation_id is not None and body.tools:
            return openai_error(
                400,
                f"Tools of your own are run without {CONVERSATION_HEADER}: send the conversation in 'messages'.",
                kind="invalid_request_error",
                code="unsupported_parameter",
            )
        if conversation_id is not None:
            stored = await self._stored_turn(request, owner, conversation_id, body)
            if isinstance(stored, JSONResponse):
                return stored
            return await self._respond(body, stored)
        address = client_address(request)
        paid = self.completions.models.costs_money(body.model)
        refusal = await limits_refusal(self.completions.active, owner, f"check-{uuid.uuid4().hex}", address, paid=paid)
        if refusal is not None:
            return _refused(refusal)
        try:
            messages = [m.to_chat_message() for m in body.messages]
            updates = self.completions.complete(owner, body.model, messages, asked_for, address=address)
        except BadCompletionRequest as bad:
            return openai_error(400, str(bad), kind="invalid_request_error")
        return await self._respond(body, updates)

    async def _stored_turn(
        self, request: Request, owner: str, conversation_id: str, body: ChatCompletionRequest
    ) -> AsyncIterator[CompletionUpdate] | JSONResponse:
        """The page's turn in this conversation, as completion updates; or the error to send."""
        if self.chat is None:
            return openai_error(
                400,
                f"This server does not store conversations from {CONVERSATION_HEADER}.",
                kind="invalid_request_error",
            )
        shown = [(message.role, message.text()) for message in body.messages]
        options = {"model": body.model}
        started = await start_shown(
            self.chat, request, owner, conversation_id, shown, options, self.default_model, alone_continues=True
        )
        if isinstance(started, Refusal):
            return _refused(started)
        return _as_completion(started[1])

    async def _respond(
        self, body: ChatCompletionRequest, updates: AsyncIterator[CompletionUpdate]
    ) -> JSONResponse | StreamingResponse:
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            chunks = _chunks(updates, completion_id, created, body.model, include_usage)
            return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        last = CompletionUpdate("")
        async for last in updates:
            pass
        if last.status is RunStatus.FAILED:
            return _failed(last)
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": body.model,
                "choices": [{"index": 0, "message": _message(last), "finish_reason": _finish_reason(last)}],
                "usage": _usage(last),
            }
        )


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
            if update.tool_calls:
                yield chunk({"tool_calls": _tool_calls(update, indexed=True)})
            yield chunk({}, _finish_reason(update))
            if include_usage:
                body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
                yield f"data: {json.dumps({**body, 'choices': [], 'usage': _usage(update)})}\n\n"
    yield "data: [DONE]\n\n"


def _finish_reason(update: CompletionUpdate) -> str:
    if update.tool_calls:
        return "tool_calls"
    return "length" if update.status is RunStatus.CUT else "stop"


def _message(update: CompletionUpdate) -> dict[str, Any]:
    if not update.tool_calls:
        return {"role": "assistant", "content": update.text}
    return {"role": "assistant", "content": update.text or None, "tool_calls": _tool_calls(update)}


def _tool_calls(update: CompletionUpdate, *, indexed: bool = False) -> list[dict[str, Any]]:
    """The calls of the client's tools, as OpenAI writes them (with their `index` in a stream's delta)."""
    return [
        {
            **({"index": index} if indexed else {}),
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for index, call in enumerate(update.tool_calls)
    ]


async def _as_completion(updates: AsyncIterator[TurnUpdate]) -> AsyncIterator[CompletionUpdate]:
    async with contextlib.aclosing(updates):  # a client that leaves closes the turn's stream: it stops
        async for update in updates:
            stats = update.stats
            usage = RunUsage(input_tokens=stats.input_tokens, output_tokens=stats.output_tokens) if stats else None
            status = update.status if update.final else None
            yield CompletionUpdate(update.text, status, usage, update.error, failure=update.failure)


_REFUSAL_KINDS = {
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", None),
    507: ("insufficient_quota", "insufficient_quota"),
}


def _refused(refusal: Refusal) -> JSONResponse:
    """A refusal with the status every route gives it, in OpenAI's error shape."""
    kind, code = _REFUSAL_KINDS.get(refusal.status, ("invalid_request_error", None))
    if refusal.status == 404:
        code = "conversation_not_found"
    headers = dict(refusal.headers or {})
    if refusal.status == 507:
        # OpenAI's clients retry any status from 500 up, with back-off, unless told not to: waiting does not
        # free storage (the visitor deletes some conversations first).
        headers["x-should-retry"] = "false"
    return openai_error(refusal.status, refusal.message, kind=kind, code=code, headers=headers or None)


def _failed(update: CompletionUpdate) -> JSONResponse:
    """A failed answer with a status an OpenAI client acts on: a provider's rate limit is a 429 with its
    Retry-After, and what retrying cannot fix says so (`x-should-retry: false`, which OpenAI's clients obey)."""
    failure = update.failure or FailureStatus(502)
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
    if not failure.retry:
        headers["x-should-retry"] = "false"
    kind, code = ("rate_limit_error", "rate_limit_exceeded") if failure.status == 429 else ("api_error", None)
    return openai_error(failure.status, update.error or "The model failed.", kind=kind, code=code, headers=headers)


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


def _first_problem(invalid: ValidationError) -> str:
    first = invalid.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"Invalid request: {where}: {first['msg']}."
