"""`POST /api/vercel-ai`: the chat turn as the Vercel AI SDK's UI message stream, for `useChat` and its
`DefaultChatTransport`; `GET /api/vercel-ai/{id}` gives a stored conversation back as the SDK's messages.

The request is read as pydantic-ai's `VercelAIAdapter` reads it and the answer is written in its chunk types, but the
turn is the page's own (`ChatService.run_turn`), not the adapter's run: so a chat started here is in the
visitor's sidebar with its title, continues in the page or over any other route, keeps the context policy,
the limits and the journal, and a stopped answer is kept and labelled. The AI SDK's `stop()` aborts the
request, so here a client that leaves stops the turn (the adapter alone would save nothing).

The chat's `id` is the conversation id; the visitor is the same as on the SSE API (`X-Chat-Owner`, else
the browser's cookie). The messages the client sends are the conversation it shows: the last one, the
user's, is the prompt, and the user messages before it cut the stored conversation back to them (edit,
regenerate); a client that sends the new `message` alone goes on from the stored conversation. `model` and `context` may ride along in the body, as on the SSE API.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import TypeAdapter
from pydantic_ai.ui.vercel_ai import VercelAIAdapter
from pydantic_ai.ui.vercel_ai.request_types import RequestData, TextUIPart, UIMessage
from pydantic_ai.ui.vercel_ai.response_types import (
    BaseChunk,
    DataChunk,
    ErrorChunk,
    FinishChunk,
    FinishReason,
    FinishStepChunk,
    ReasoningDeltaChunk,
    ReasoningEndChunk,
    ReasoningStartChunk,
    StartChunk,
    StartStepChunk,
    TextDeltaChunk,
    TextEndChunk,
    TextStartChunk,
    ToolInputAvailableChunk,
    ToolOutputAvailableChunk,
    ToolOutputErrorChunk,
)

from chat.errors import CorruptConversation, describe_failure
from chat.recipe_runs import RecipeUpdate
from chat.runs import RunStatus
from chat.steps import Step
from chat.turns import TurnUpdate
from web.route_base import ChatRoutes
from web.turn_events import step_changes, usage_summary, with_keep_alive
from web.turn_start import NO_SUCH_CONVERSATION, Refusal

UI_MESSAGE_STREAM_HEADERS = {
    "x-vercel-ai-ui-message-stream": "v1",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
KEEP_ALIVE_SECONDS = 5.0
EXAMPLE_PAGE = Path(__file__).resolve().parent.parent / "examples" / "ai-sdk" / "dist"
"""examples/ai-sdk once built (`npm run build` there): served at /examples/ai-sdk/, on the app's own origin so its
requests carry the visitor's cookie; until then that address answers 404."""
FINISH_REASONS: dict[RunStatus, FinishReason] = {
    RunStatus.COMPLETED: "stop",
    RunStatus.CUT: "length",
    RunStatus.STOPPED: "other",
    RunStatus.FAILED: "error",
}


REQUEST_DATA = TypeAdapter(RequestData)
"""The AI SDK's request as `VercelAIAdapter.build_run_input` validates it, here from the JSON values the routes'
reader gives (web/request_json.py)."""


def read_chat_request(data: Any) -> tuple[RequestData, bool]:
    """The AI SDK's request, and whether it carries the new message alone: `{id, message}`, as the SDK's
    message-persistence guide sends it (`prepareSendMessagesRequest`). The stored chat then goes on from
    where it is, instead of being cut back to what the client shows."""
    if isinstance(data, dict) and "messages" not in data and isinstance(data.get("message"), dict):
        rest = {key: value for key, value in data.items() if key != "message"}
        return REQUEST_DATA.validate_python({"trigger": "submit-message", **rest, "messages": [data["message"]]}), True
    return REQUEST_DATA.validate_python(data), False


def text_of(message: UIMessage) -> str:
    return "".join(part.text for part in message.parts if isinstance(part, TextUIPart))


def shown(messages: list[UIMessage]) -> list[tuple[str, str]]:
    return [(message.role, text_of(message)) for message in messages]


class VercelAIChatAPI(ChatRoutes):
    MALFORMED = "Send the AI SDK's chat request: an `id` and its `messages`."

    def router(self) -> APIRouter:
        router = self.routes(
            ("POST", "/api/vercel-ai", self.chat),
            ("POST", "/api/vercel-ai/recipe", self.recipe),
            ("GET", "/api/vercel-ai/{conversation_id}", self.messages),
        )
        router.mount("/examples/ai-sdk", StaticFiles(directory=EXAMPLE_PAGE, html=True, check_dir=False))
        return router

    def refused(self, refusal: Refusal) -> Response:
        # The AI SDK shows a failed response's body as the error's message: plain text reads best there.
        return PlainTextResponse(refusal.message, status_code=refusal.status, headers=refusal.headers)

    async def chat(self, request: Request) -> Response:
        owner = self.caller(request)
        body, lone = await self.body(request, read_chat_request)
        tag = secrets.token_hex(4)
        conversation_id, updates = await self.start_shown(
            request, owner, body.id, shown(body.messages), body.model_extra, tag=tag, alone_continues=lone
        )
        chunks = ui_message_chunks(updates, conversation_id, f"msg-{tag}")
        return StreamingResponse(_encoded(chunks), media_type="text/event-stream", headers=UI_MESSAGE_STREAM_HEADERS)

    async def recipe(self, request: Request) -> Response:
        """The recipe tab's run: the last user message names the dish; the recipe arrives as one `data-recipe`
        part, updated in place as it grows (the SDK replaces a data part sent again with the same id)."""
        owner, recipes = self.recipe_caller(request)
        body = await self.body(request, REQUEST_DATA.validate_python)
        model = (body.model_extra or {}).get("model")
        run_id, updates = await self.start_recipe(request, owner, recipes, shown(body.messages), model)
        chunks = recipe_chunks(updates, run_id)
        return StreamingResponse(_encoded(chunks), media_type="text/event-stream", headers=UI_MESSAGE_STREAM_HEADERS)

    async def messages(self, request: Request, conversation_id: str) -> Response:
        """The stored conversation as the AI SDK's `UIMessage`s, to open it in `useChat({id, messages})`."""
        owner = self.caller(request)
        conversation_id = await self.service.edits.named_by_client(owner, conversation_id)
        if not await self.service.edits.has_conversation(owner, conversation_id):
            return self.refused(Refusal(404, NO_SUCH_CONVERSATION))
        try:
            stored = await self.service.edits.load_messages(owner, conversation_id)
        except CorruptConversation as damaged:
            return self.refused(Refusal(409, describe_failure(damaged, self.default_model)))
        dumped = VercelAIAdapter.dump_messages(stored)
        return JSONResponse([message.model_dump(mode="json", by_alias=True, exclude_none=True) for message in dumped])


async def ui_message_chunks(
    updates: AsyncIterator[TurnUpdate], conversation_id: str, message_id: str
) -> AsyncIterator[BaseChunk | None]:
    """The turn as UI message stream chunks (None: nothing new for a while, keep the connection alive).

    Thinking becomes reasoning, tool calls and results become tool parts, an approval the agent waits for a
    `data-approval` part (answered by sending "Approve" or "Deny"), a failure an `error` chunk; the finish
    chunk's metadata says how the turn ended, in which conversation, with its usage.
    """
    text_id, offset, reasoning_open = f"text-{message_id}", 0, set[str]()
    steps_sent: dict[str, Step] = {}
    async with contextlib.aclosing(with_keep_alive(updates, KEEP_ALIVE_SECONDS)) as paced:
        yield StartChunk(message_id=message_id, message_metadata={"conversationId": conversation_id})
        yield StartStepChunk()
        async for update in paced:
            if update is None:
                yield None
                continue
            for name, data in step_changes(update.steps, steps_sent):
                for chunk in _step_chunks(name, data, reasoning_open):
                    yield chunk
            fresh = update.text[offset:]
            if fresh:
                for reasoning_id in reasoning_open:
                    yield ReasoningEndChunk(id=reasoning_id)
                reasoning_open.clear()
                if offset == 0:
                    yield TextStartChunk(id=text_id)
                offset += len(fresh)
                yield TextDeltaChunk(id=text_id, delta=fresh)
            if not update.final:
                continue
            for reasoning_id in reasoning_open:
                yield ReasoningEndChunk(id=reasoning_id)
            if offset:
                yield TextEndChunk(id=text_id)
            if update.status is RunStatus.FAILED:
                yield ErrorChunk(error_text=update.error or "The answer failed.")
            yield FinishStepChunk()
            metadata = {
                "conversationId": conversation_id,
                "status": update.status.value,
                "usage": usage_summary(update),
            }
            yield FinishChunk(finish_reason=FINISH_REASONS.get(update.status), message_metadata=metadata)
            return


async def recipe_chunks(updates: AsyncIterator[RecipeUpdate], run_id: str) -> AsyncIterator[BaseChunk | None]:
    """A recipe run as UI message stream chunks: the recipe as it grows, then how the run ended."""
    sent: dict[str, Any] | None = None
    async with contextlib.aclosing(with_keep_alive(updates, KEEP_ALIVE_SECONDS)) as paced:
        yield StartChunk(message_id=f"recipe-{run_id}", message_metadata={"recipeId": run_id})
        async for update in paced:
            if update is None:
                yield None
                continue
            recipe = update.recipe.model_dump(mode="json") if update.recipe is not None else None
            if recipe is not None and recipe != sent:
                sent = recipe
                yield DataChunk(type="data-recipe", id=run_id, data=recipe)
            if not update.final:
                continue
            if update.status is RunStatus.FAILED:
                yield ErrorChunk(error_text=update.error or "The recipe failed.")
            metadata = {"recipeId": run_id, "status": update.status.value}
            yield FinishChunk(finish_reason=FINISH_REASONS.get(update.status), message_metadata=metadata)
            return


def _step_chunks(name: str, data: dict[str, Any], reasoning_open: set[str]) -> list[BaseChunk]:
    step_id = data["id"]
    if name == "thinking":
        opened = [] if step_id in reasoning_open else [ReasoningStartChunk(id=step_id)]
        reasoning_open.add(step_id)
        return [*opened, ReasoningDeltaChunk(id=step_id, delta=data["delta"])]
    if name == "tool_call":
        return [ToolInputAvailableChunk(tool_call_id=step_id, tool_name=data["tool"], input=data["arguments"])]
    if name == "approval":
        return [DataChunk(type="data-approval", id=step_id, data={"tool": data["tool"], "options": data["options"]})]
    if data["error"]:
        return [ToolOutputErrorChunk(tool_call_id=step_id, error_text=data["error"])]
    return [ToolOutputAvailableChunk(tool_call_id=step_id, output=data["result"])]


async def _encoded(chunks: AsyncIterator[BaseChunk | None]) -> AsyncIterator[str]:
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            yield ": keep-alive\n\n" if chunk is None else f"data: {chunk.encode(5)}\n\n"
        yield "data: [DONE]\n\n"
