"""OpenAI-style chat completions on the app's agent (issue 18, first slice): what `/v1/chat/completions`
runs, with nothing of HTTP in it (web/openai_api.py speaks the protocol).

The request's messages become pydantic-ai messages (system, user, assistant and tool messages as
`ModelRequest`s and `ModelResponse`s with their tool calls and returns), never one prompt glued together;
the last user message is the prompt. The run is
one of the app's runs: the same limits per caller (`ActiveTurns`), the same time-out, and a client that
goes away stops it. Nothing is stored yet, and the agent is the chat agent without its tools (their
results would need steps the protocol cannot show).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from pydantic_ai import Agent, CancellationToken
from pydantic_ai.exceptions import RunCancelled
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.usage import RunUsage

from chat.errors import describe_failure
from chat.runs import Report, RunStatus, stream_from_own_task
from chat.services import RunService
from chat.wings.tools import ChatDeps

log = logging.getLogger(__name__)

COMPLETION_KIND = "completion"


class BadCompletionRequest(ValueError):
    """A request whose messages cannot be a conversation; the text says what to change."""


@dataclass(frozen=True)
class ToolCallIn:
    id: str
    name: str
    arguments: str
    """As the model wrote them: JSON, usually."""


@dataclass(frozen=True)
class ChatMessageIn:
    role: str
    """system, developer, user, assistant or tool."""
    text: str
    tool_calls: tuple[ToolCallIn, ...] = ()
    """An assistant message's calls of the client's tools."""
    tool_call_id: str | None = None
    """A tool message: the call it answers."""


@dataclass(frozen=True)
class CompletionUpdate:
    text: str
    """The whole answer so far."""
    status: RunStatus | None = None
    usage: RunUsage | None = None
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.status is not None


def to_model_messages(messages: Sequence[ChatMessageIn]) -> tuple[list[ModelMessage], str]:
    """The history as pydantic-ai messages, and the prompt (the last message, which must be the user's).

    An assistant message's tool calls become `ToolCallPart`s and each tool message the `ToolReturnPart` of
    the call it names, so the model sees the client's tool round trips as they happened."""
    if not messages or messages[-1].role != "user":
        raise BadCompletionRequest("The last message must have the role 'user'.")
    history: list[ModelMessage] = []
    request_parts: list[ModelRequestPart] = []
    tool_names: dict[str, str] = {}
    for message in messages[:-1]:
        if message.role in ("system", "developer"):
            request_parts.append(SystemPromptPart(message.text))
        elif message.role == "user":
            request_parts.append(UserPromptPart(message.text))
        elif message.role == "tool":
            if message.tool_call_id not in tool_names:
                raise BadCompletionRequest("A tool message must answer a tool call of an earlier assistant message.")
            name = tool_names[message.tool_call_id]
            request_parts.append(ToolReturnPart(name, message.text, tool_call_id=message.tool_call_id))
        elif message.role == "assistant":
            if request_parts:
                history.append(ModelRequest(parts=request_parts))
                request_parts = []
            calls = [ToolCallPart(call.name, call.arguments, tool_call_id=call.id) for call in message.tool_calls]
            tool_names.update((call.id, call.name) for call in message.tool_calls)
            history.append(ModelResponse(parts=[*([TextPart(message.text)] if message.text else []), *calls]))
        else:
            raise BadCompletionRequest(f"Messages with the role {message.role!r} are not supported.")
    if request_parts:
        history.append(ModelRequest(parts=request_parts))
    return history, messages[-1].text


class Completions(RunService):
    def __init__(self, agent: Agent[ChatDeps, object], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.agent = agent

    def complete(
        self,
        owner: str,
        model_name: str,
        messages: Sequence[ChatMessageIn],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        address: str | None = None,
    ) -> AsyncIterator[CompletionUpdate]:
        """The answer's updates, the last one final; `BadCompletionRequest` at once for unusable messages."""
        history, prompt = to_model_messages(messages)
        settings: dict[str, object] = {}
        if max_tokens is not None:
            settings["max_tokens"] = max_tokens
        if temperature is not None:
            settings["temperature"] = temperature

        async def produce(token: CancellationToken, report: Report[CompletionUpdate]) -> None:
            text = ""
            options = self.run_options(token)
            options["model_settings"] = {**options["model_settings"], **settings}
            try:
                model = self.models.resolve(model_name)
                async with self.agent.run_stream(
                    prompt, message_history=history, model=model, deps=ChatDeps(owner, self.store), **options
                ) as run:
                    async for delta in run.stream_text(delta=True, debounce_by=None):
                        text += delta
                        report(CompletionUpdate(text))
                report(CompletionUpdate(text, RunStatus.COMPLETED, run.usage))
            except RunCancelled as stopped:
                report(CompletionUpdate(text, RunStatus.STOPPED, stopped.usage))
            except Exception as error:
                log.warning("completion failed", exc_info=True)
                report(CompletionUpdate(text, RunStatus.FAILED, error=describe_failure(error, model_name)))

        def crashed(error: BaseException) -> CompletionUpdate:
            return CompletionUpdate("", RunStatus.FAILED, error=describe_failure(error, model_name))

        return stream_from_own_task(
            self.active,
            owner,
            f"{COMPLETION_KIND}-{uuid.uuid4().hex}",
            produce,
            crashed,
            kind=COMPLETION_KIND,
            address=address,
        )
