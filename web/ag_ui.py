"""`POST /api/ag-ui`: the chat turn as AG-UI events, for CopilotKit and other agent front ends.

As on the Vercel AI route (web/vercel_ai.py), the request is read as pydantic-ai's `AGUIAdapter` reads it and the
events are the `ag-ui-protocol` types, but the turn is the page's own (`ChatService.run_turn`): the thread
is the conversation (in the visitor's sidebar, continued from any route), the messages the client sends
are what it shows (the last, the user's, is the prompt; the user messages before it cut the stored chat
back to them), and a client that aborts the request stops the answer, which is kept and labelled.
`forwardedProps` may carry `model` and `context`, as the SSE API's body does.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    Message,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    StateDeltaEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic_ai.ui.ag_ui import AGUIAdapter

from chat.recipe_runs import RecipeUpdate
from chat.runs import RunStatus
from chat.steps import Step
from chat.turns import TurnUpdate
from web.json_patch import json_patch
from web.route_base import ChatRoutes
from web.turn_events import step_changes, usage_summary, with_keep_alive
from web.turn_start import Refusal, json_refusal

KEEP_ALIVE_SECONDS = 5.0
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def read_run_input(data: Any) -> RunAgentInput:
    """AG-UI's `RunAgentInput` from the JSON values the routes' reader gives (web/request_json.py). Read by
    `AGUIAdapter.build_run_input`, which takes bytes (so they are written again): it skips message kinds newer
    than the installed `ag-ui-protocol` where validating `RunAgentInput` alone would refuse the request."""
    return AGUIAdapter.build_run_input(json.dumps(data).encode())


def text_of(message: Message) -> str:
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return content
    return "".join(getattr(part, "text", "") for part in content or [])


def shown(messages: list[Message]) -> list[tuple[str, str]]:
    return [(message.role, text_of(message)) for message in messages]


class AGUIChatAPI(ChatRoutes):
    MALFORMED = "Send AG-UI's RunAgentInput: a threadId, a runId and the messages."

    def router(self) -> APIRouter:
        return self.routes(("POST", "/api/ag-ui", self.run), ("POST", "/api/ag-ui/recipe", self.recipe))

    def refused(self, refusal: Refusal) -> Response:
        return json_refusal(refusal)

    async def recipe(self, request: Request) -> Response:
        """The recipe tab's run: the last user message names the dish; the agent's state is
        `{"recipe": ..., "status": ...}`, a `STATE_SNAPSHOT` first, then a `STATE_DELTA` (JSON Patch) as
        the recipe grows."""
        owner, recipes = self.recipe_caller(request)
        run_input = await self.body(request, read_run_input)
        props = run_input.forwarded_props
        model = props.get("model") if isinstance(props, dict) else None
        recipe_id, updates = await self.start_recipe(request, owner, recipes, shown(run_input.messages), model)
        events = recipe_events(updates, run_input.thread_id, run_input.run_id, recipe_id)
        return StreamingResponse(
            _encoded(events, EventEncoder()), media_type="text/event-stream", headers=STREAM_HEADERS
        )

    async def run(self, request: Request) -> Response:
        owner = self.caller(request)
        run_input = await self.body(request, read_run_input)
        _, updates = await self.start_shown(
            request,
            owner,
            run_input.thread_id,
            shown(run_input.messages),
            run_input.forwarded_props,
            tag=secrets.token_hex(4),
        )
        encoder = EventEncoder(accept=request.headers.get("accept"))
        events = ag_ui_events(updates, run_input.thread_id, run_input.run_id)
        return StreamingResponse(
            _encoded(events, encoder), media_type=encoder.get_content_type(), headers=STREAM_HEADERS
        )


async def ag_ui_events(
    updates: AsyncIterator[TurnUpdate], thread_id: str, run_id: str
) -> AsyncIterator[BaseEvent | None]:
    """The turn as AG-UI events (None: nothing new for a while, keep the connection alive).

    Thinking becomes a reasoning message, each tool call a tool call with its result, an approval the
    agent waits for a custom `approval` event (answered by sending "Approve" or "Deny"), a failure a
    `RUN_ERROR`. `RUN_FINISHED` says how the answer ended (`result.status`, a stopped one `cancelled`)."""
    message_id, offset, reasoning_open = f"answer-{run_id}", 0, set[str]()
    steps_sent: dict[str, Step] = {}
    async with contextlib.aclosing(with_keep_alive(updates, KEEP_ALIVE_SECONDS)) as paced:
        yield RunStartedEvent(thread_id=thread_id, run_id=run_id)
        async for update in paced:
            if update is None:
                yield None
                continue
            for name, data in step_changes(update.steps, steps_sent):
                for event in _step_events(name, data, reasoning_open):
                    yield event
            fresh = update.text[offset:]
            if fresh:
                for event in _end_reasoning(reasoning_open):
                    yield event
                if offset == 0:
                    yield TextMessageStartEvent(message_id=message_id, role="assistant")
                offset += len(fresh)
                yield TextMessageContentEvent(message_id=message_id, delta=fresh)
            if not update.final:
                continue
            for event in _end_reasoning(reasoning_open):
                yield event
            if offset:
                yield TextMessageEndEvent(message_id=message_id)
            if update.status is RunStatus.FAILED:
                yield RunErrorEvent(message=update.error or "The answer failed.", code="turn_failed")
                return
            outcome = {"type": "cancelled" if update.status is RunStatus.STOPPED else "success"}
            result = {"status": update.status.value, "usage": usage_summary(update)}
            yield RunFinishedEvent(thread_id=thread_id, run_id=run_id, result=result, outcome=outcome)
            return


async def recipe_events(
    updates: AsyncIterator[RecipeUpdate], thread_id: str, run_id: str, recipe_id: str
) -> AsyncIterator[BaseEvent | None]:
    """A recipe run as AG-UI state: a snapshot, then JSON Patch deltas as the recipe grows and ends."""
    state: dict[str, Any] | None = None
    async with contextlib.aclosing(with_keep_alive(updates, KEEP_ALIVE_SECONDS)) as paced:
        yield RunStartedEvent(thread_id=thread_id, run_id=run_id)
        async for update in paced:
            if update is None:
                yield None
                continue
            recipe = update.recipe.model_dump(mode="json") if update.recipe is not None else None
            new_state = {"recipeId": recipe_id, "recipe": recipe, "status": update.status.value}
            if state is None:
                yield StateSnapshotEvent(snapshot=new_state)
            elif delta := json_patch(state, new_state):
                yield StateDeltaEvent(delta=delta)
            state = new_state
            if not update.final:
                continue
            if update.status is RunStatus.FAILED:
                yield RunErrorEvent(message=update.error or "The recipe failed.", code="recipe_failed")
                return
            outcome = {"type": "cancelled" if update.status is RunStatus.STOPPED else "success"}
            result = {"recipeId": recipe_id, "status": update.status.value}
            yield RunFinishedEvent(thread_id=thread_id, run_id=run_id, result=result, outcome=outcome)
            return


def _step_events(name: str, data: dict[str, Any], reasoning_open: set[str]) -> list[BaseEvent]:
    step_id = data["id"]
    if name == "thinking":
        opened: list[BaseEvent] = []
        if step_id not in reasoning_open:
            reasoning_open.add(step_id)
            opened = [ReasoningStartEvent(message_id=step_id), ReasoningMessageStartEvent(message_id=step_id)]
        return [*opened, ReasoningMessageContentEvent(message_id=step_id, delta=data["delta"])]
    if name == "tool_call":
        arguments = data["arguments"] if isinstance(data["arguments"], str) else json.dumps(data["arguments"])
        # Each call in an assistant message of its own, before its result: an in-order client shows the
        # call, its result, then the answer (a call inside the answer's message showed the answer first).
        return [
            ToolCallStartEvent(tool_call_id=step_id, tool_call_name=data["tool"], parent_message_id=f"call-{step_id}"),
            *([ToolCallArgsEvent(tool_call_id=step_id, delta=arguments)] if arguments else []),
            ToolCallEndEvent(tool_call_id=step_id),
        ]
    if name == "approval":
        return [
            CustomEvent(
                name="approval", value={"toolCallId": step_id, "tool": data["tool"], "options": data["options"]}
            )
        ]
    content = data["error"] or data["result"] or ""
    return [ToolCallResultEvent(message_id=f"result-{step_id}", tool_call_id=step_id, content=content, role="tool")]


def _end_reasoning(reasoning_open: set[str]) -> list[BaseEvent]:
    ended = [
        event
        for step_id in sorted(reasoning_open)
        for event in (ReasoningMessageEndEvent(message_id=step_id), ReasoningEndEvent(message_id=step_id))
    ]
    reasoning_open.clear()
    return ended


async def _encoded(events: AsyncIterator[BaseEvent | None], encoder: EventEncoder) -> AsyncIterator[str]:
    async with contextlib.aclosing(events):
        async for event in events:
            yield ": keep-alive\n\n" if event is None else encoder.encode(event)
