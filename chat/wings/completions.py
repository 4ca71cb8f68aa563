"""OpenAI-style chat completions on the app's agent (issue 18, first slice): what `/v1/chat/completions`
runs, with nothing of HTTP in it (web/openai_api.py speaks the protocol).

The request's messages become pydantic-ai messages (system, user, assistant and tool messages as
`ModelRequest`s and `ModelResponse`s with their tool calls and returns), never one prompt glued together;
the last user message is the prompt. The run is
one of the app's runs: the same limits per caller (`ActiveTurns`), the same time-out, and a client that
goes away stops it. Nothing is stored, and the agent is the chat agent without the app's tools (their
results would need steps the protocol cannot show).

Tools the client declares are its own: the model may call them, and a call ends the answer with the calls
for the client to run (pydantic-ai's `ExternalToolset`, whose calls end the run as `DeferredToolRequests`).
The client's next request carries the results as `tool` messages after those calls, and the run goes on
from them (`DeferredToolResults`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import (
    Agent,
    CancellationToken,
    DeferredToolRequests,
    DeferredToolResults,
    NativeOutput,
    StructuredDict,
)
from pydantic_ai.capabilities import AbstractCapability
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
from pydantic_ai.settings import ToolChoice
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import ExternalToolset
from pydantic_ai.usage import RunUsage

from chat.errors import FailureStatus, describe_failure, failure_status
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
class ClientTool:
    """A tool the client declares and runs itself."""

    name: str
    description: str | None
    parameters: dict[str, object]
    """Its arguments' JSON schema."""


@dataclass(frozen=True)
class CompletionUpdate:
    text: str
    """The whole answer so far."""
    status: RunStatus | None = None
    usage: RunUsage | None = None
    error: str | None = None
    tool_calls: tuple[ToolCallIn, ...] = ()
    """The client's tools the model called: the answer ends here, for the client to run them."""
    failure: FailureStatus | None = None
    """How a client should take a failure (`error`): its HTTP status, and whether and when to retry."""

    @property
    def final(self) -> bool:
        return self.status is not None

    @property
    def spent_tokens(self) -> int:
        return self.usage.input_tokens + self.usage.output_tokens if self.usage else 0


@dataclass(frozen=True)
class CompletionInput:
    history: list[ModelMessage]
    prompt: str | None
    """The last message, the user's; None when the request ends with the results of the client's tools."""
    tool_results: DeferredToolResults | None = None
    """Those results, for the calls that ended the history."""


def to_model_messages(messages: Sequence[ChatMessageIn]) -> CompletionInput:
    """The history as pydantic-ai messages, and what to run on: the last message, the user's, or the results
    of the client's tools the last assistant message called (`tool` messages after it).

    An assistant message's tool calls become `ToolCallPart`s and each tool message the `ToolReturnPart` of
    the call it names, so the model sees the client's tool round trips as they happened."""
    results_from = len(messages)
    while results_from and messages[results_from - 1].role == "tool":
        results_from -= 1
    if results_from == len(messages):
        if not messages or messages[-1].role != "user":
            raise BadCompletionRequest("The last message must have the role 'user', or 'tool' after tool calls.")
        return CompletionInput(_history(messages[:-1]), messages[-1].text)
    called = messages[results_from - 1] if results_from else None
    if called is None or called.role != "assistant" or not called.tool_calls:
        raise BadCompletionRequest("Tool messages at the end must follow the assistant message that called them.")
    calls = {call.id for call in called.tool_calls}
    results = {message.tool_call_id: message.text for message in messages[results_from:]}
    if set(results) != calls:
        raise BadCompletionRequest("Send one tool message for each tool call of the last assistant message.")
    return CompletionInput(_history(messages[:results_from]), None, DeferredToolResults(calls=dict(results)))


def _history(messages: Sequence[ChatMessageIn]) -> list[ModelMessage]:
    history: list[ModelMessage] = []
    request_parts: list[ModelRequestPart] = []
    tool_names: dict[str, str] = {}
    for message in messages:
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
    return history


@dataclass
class ClientToolChoice(AbstractCapability[object]):
    """The client's `tool_choice` for its tools. Given per step (a callable), as pydantic-ai asks for a choice
    that forces a call: a forced call of a client's tool ends the run, so it never forces a second step."""

    choice: ToolChoice

    def get_model_settings(self) -> Any:
        return lambda _: {"tool_choice": self.choice}


@dataclass(frozen=True)
class CompletionOptions:
    """What a request asks of its answer beside the messages."""

    model_settings: dict[str, Any] = field(default_factory=dict)
    """Passed to the model as pydantic-ai's `ModelSettings`: max_tokens, temperature, top_p, seed, penalties."""
    stop: tuple[str, ...] = ()
    """The answer ends before the first of these."""
    tools: tuple[ClientTool, ...] = ()
    tool_choice: ToolChoice = None
    json_schema: dict[str, Any] | None = None
    """`response_format`: the answer is JSON of this schema, through pydantic-ai's native structured output."""
    json_name: str = "response"
    json_strict: bool | None = None


@dataclass(frozen=True)
class StopSequences:
    """OpenAI's `stop`, for every model: the answer ends before the first sequence it reaches, and while it
    streams, an end that may be the start of one is held back until the next text shows whether it is."""

    sequences: tuple[str, ...]

    def reached(self, text: str) -> bool:
        return any(sequence in text for sequence in self.sequences)

    def cut(self, text: str) -> str:
        ends = [text.find(sequence) for sequence in self.sequences if sequence in text]
        return text[: min(ends)] if ends else text

    def safe_to_show(self, text: str) -> str:
        held = max(
            (n for sequence in self.sequences for n in range(1, len(sequence)) if text.endswith(sequence[:n])),
            default=0,
        )
        return text[: len(text) - held]


class Completions(RunService):
    def __init__(self, agent: Agent[ChatDeps, object], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.agent = agent

    def complete(
        self,
        owner: str,
        model_name: str,
        messages: Sequence[ChatMessageIn],
        asked_for: CompletionOptions | None = None,
        *,
        address: str | None = None,
    ) -> AsyncIterator[CompletionUpdate]:
        """The answer's updates, the last one final; `BadCompletionRequest` at once for unusable messages."""
        asked = to_model_messages(messages)
        asked_for = asked_for or CompletionOptions()
        client_tools = _client_toolsets(asked_for.tools, asked_for.tool_choice)
        choice = asked_for.tool_choice
        choosing = [ClientToolChoice(choice)] if client_tools and choice not in (None, "auto") else []
        structured = _structured_output(asked_for)
        stops = StopSequences(() if structured else asked_for.stop)  # a JSON document is never cut short

        async def produce(token: CancellationToken, report: Report[CompletionUpdate]) -> None:
            text = ""
            options = self.run_options(token)
            # One request to the provider per request of the client's: OpenAI clients retry on their own (twice
            # by default), and the provider SDK's retries (`--provider-retries`, for the page) would multiply them.
            options["model_settings"] = {**options["model_settings"], **asked_for.model_settings, "max_retries": 0}
            if asked_for.stop:  # providers that can stop there save the tokens; every answer is cut here anyway
                options["model_settings"]["stop_sequences"] = list(asked_for.stop)
            try:
                model = self.models.resolve(model_name)
                async with self.agent.run_stream(
                    asked.prompt,
                    message_history=asked.history,
                    deferred_tool_results=asked.tool_results,
                    toolsets=client_tools,
                    capabilities=choosing,
                    model=model,
                    deps=ChatDeps(owner, self.store),
                    **({"output_type": structured} if structured else {}),
                    **options,
                ) as run:
                    if structured:  # one JSON document: partial ones are not prefixes of the whole
                        output = await run.get_output()
                        text = (
                            "" if isinstance(output, DeferredToolRequests) else json.dumps(output, ensure_ascii=False)
                        )
                    else:
                        async for delta in run.stream_text(delta=True, debounce_by=None):
                            text += delta
                            if stops.reached(text):
                                break  # leaving the stream ends the model's request
                            report(CompletionUpdate(stops.safe_to_show(text)))
                if stops.reached(text) or run.result is None:
                    report(CompletionUpdate(stops.cut(text), RunStatus.COMPLETED, run.usage))
                    return
                calls = _calls_for_the_client(run.result.output)
                report(CompletionUpdate(text, RunStatus.COMPLETED, run.usage, tool_calls=calls))
            except RunCancelled as stopped:
                report(CompletionUpdate(stops.cut(text), RunStatus.STOPPED, stopped.usage))
            except Exception as error:
                log.warning("completion failed", exc_info=True)
                failed = describe_failure(error, model_name)
                report(CompletionUpdate(text, RunStatus.FAILED, error=failed, failure=failure_status(error)))

        def crashed(error: BaseException) -> CompletionUpdate:
            return CompletionUpdate(
                "", RunStatus.FAILED, error=describe_failure(error, model_name), failure=failure_status(error)
            )

        return stream_from_own_task(
            self.active,
            owner,
            f"{COMPLETION_KIND}-{uuid.uuid4().hex}",
            produce,
            crashed,
            kind=COMPLETION_KIND,
            address=address,
            paid=self.models.costs_money(model_name),
        )


def _client_toolsets(tools: Sequence[ClientTool], tool_choice: ToolChoice) -> list[ExternalToolset[object]]:
    if not tools or tool_choice == "none":
        return []
    definitions = [
        ToolDefinition(name=tool.name, description=tool.description, parameters_json_schema=tool.parameters)
        for tool in tools
    ]
    return [ExternalToolset(definitions)]


def _calls_for_the_client(output: object) -> tuple[ToolCallIn, ...]:
    if not isinstance(output, DeferredToolRequests):
        return ()
    return tuple(ToolCallIn(call.tool_call_id, call.tool_name, call.args_as_json_str()) for call in output.calls)


def _structured_output(asked_for: CompletionOptions) -> Any:
    """The run's output type for a `response_format` (None: text), with the client's tool calls beside it."""
    if asked_for.json_schema is None:
        return None
    schema = StructuredDict(asked_for.json_schema, name=asked_for.json_name)
    return [NativeOutput(schema, strict=asked_for.json_strict), DeferredToolRequests]
