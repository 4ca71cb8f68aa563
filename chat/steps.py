"""What an agent did before its answer, as steps a chat can show: its thinking and each tool call.

One `StepLog` serves both ways a chat meets steps: live, fed the parts of pydantic-ai's event stream
as a turn runs (`run_stream(event_stream_handler=...)`), and from the store, fed the parts of the saved
messages. Either way a call and its return pair up by `tool_call_id`, so a reloaded chat shows the same
steps the live one did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    RetryPromptPart,
    ThinkingPart,
    ThinkingPartDelta,
    ToolCallPart,
    ToolReturnPart,
)

THINKING = "thinking"
TOOL = "tool"
APPROVAL_KEY = "awaiting_approval"
"""In a response's metadata (never sent to the model): which of its tool calls wait for the visitor."""
APPROVE = "Approve"
DENY = "Deny"
DENIED = "The visitor denied this; do not try it again unless they ask."
PASSED_OVER = "The visitor wrote something else instead of answering; this was not run."
APPROVED, DENIED_VERDICT, PASSED_OVER_VERDICT = "Approved", "Denied", "Passed over"
"""How a call that asked the visitor was settled (`Step.verdict`)."""


@dataclass(frozen=True)
class Step:
    id: str
    kind: str
    """`THINKING` or `TOOL`."""
    text: str
    """What the model thought, or the tool call's arguments (JSON, or as the model sent them if broken)."""
    tool: str = ""
    result: str | None = None
    error: str | None = None
    """Why the tool gave no result (the model was told); None when it worked or is still running."""
    done: bool = False
    awaiting_approval: bool = False
    """A call that waits for the visitor's Approve or Deny (chat/wings/approvals.py)."""
    asked: bool = False
    """A call that waited for the visitor and was answered since (`verdict` says how)."""
    seconds: float | None = None
    """How long a tool ran, once it is done (not stored: None for steps shown from the store)."""

    @property
    def verdict(self) -> str | None:
        """`APPROVED`, `DENIED_VERDICT` or `PASSED_OVER_VERDICT` for a call the visitor was asked about and
        answered; None for any other step (one that still waits included)."""
        if not self.asked or self.awaiting_approval:
            return None
        if self.error == DENIED:
            return DENIED_VERDICT
        return PASSED_OVER_VERDICT if self.error == PASSED_OVER else APPROVED


@dataclass
class StepLog:
    clock: Callable[[], float] | None = time.perf_counter
    """Times each tool call; None for steps read back from the store, whose durations were not kept."""
    _steps: dict[str, Step] = field(default_factory=dict)
    _started: dict[str, float] = field(default_factory=dict)
    _thinking: dict[int, tuple[str, str]] = field(default_factory=dict)
    """The thinking part being streamed at each index of the current response: (its key, its text)."""

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(self._steps.values())

    def see(self, event: AgentStreamEvent) -> bool:
        """Take one event of a running agent into the log; True when the steps changed."""
        if isinstance(event, PartStartEvent) and isinstance(event.part, ThinkingPart):
            self._thinking[event.index] = (f"thinking-live-{len(self._steps)}", event.part.content)
        elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, ThinkingPartDelta):
            key, text = self._thinking.get(event.index, (f"thinking-live-{len(self._steps)}", ""))
            self._thinking[event.index] = (key, text + (event.delta.content_delta or ""))
        elif isinstance(event, FunctionToolCallEvent):
            self.call(event.part)
            return True
        elif isinstance(event, FunctionToolResultEvent):
            self.result(event.part)
            return True
        else:
            return False
        self.think(*self._thinking[event.index])
        return True

    def think(self, key: str, text: str) -> None:
        """The thinking part `key` reads `text` so far (it grows as the model streams it)."""
        if text.strip():
            self._steps[key] = Step(key, THINKING, text, done=True)

    def call(self, part: ToolCallPart, *, asked: bool = False) -> None:
        """A tool call starts; `asked`: one the visitor was asked about and has answered (it runs now, or
        its refusal comes as its result)."""
        if self.clock is not None:
            self._started.setdefault(part.tool_call_id, self.clock())
        earlier = self._steps.get(part.tool_call_id)
        asked = asked or (earlier is not None and earlier.asked)  # the run's own event for it comes next
        step = Step(part.tool_call_id, TOOL, _arguments(part), tool=part.tool_name, asked=asked)
        self._steps[part.tool_call_id] = step

    def result(self, part: ToolReturnPart | RetryPromptPart) -> None:
        step = self._steps.get(part.tool_call_id)
        if step is None:
            return
        started = self._started.get(part.tool_call_id)
        seconds = None if started is None or self.clock is None else self.clock() - started
        problem = tool_problem(part)
        result = None if problem is not None else part.model_response_str()
        self._steps[step.id] = replace(step, result=result, error=problem, done=True, seconds=seconds)

    def await_approval(self, calls: Sequence[ToolCallPart]) -> None:
        for call in calls:
            self.call(call)
            self._steps[call.tool_call_id] = replace(self._steps[call.tool_call_id], awaiting_approval=True)

    def end(self) -> None:
        """The run ended (stopped, failed): a call still waiting for its result will not get one."""
        for step in self.steps:
            if not step.done and not step.awaiting_approval:
                self._steps[step.id] = replace(step, error=NOT_FINISHED, done=True)


def pending_approvals(messages: Sequence[ModelMessage]) -> list[ToolCallPart]:
    """The calls still waiting for the visitor: those of the conversation's last message, if it asked."""
    last = messages[-1] if messages else None
    if not isinstance(last, ModelResponse):
        return []
    waiting = set((last.metadata or {}).get(APPROVAL_KEY) or ())
    return [part for part in last.parts if isinstance(part, ToolCallPart) and part.tool_call_id in waiting]


def tool_problem(part: ToolReturnPart | RetryPromptPart) -> str | None:
    """Why a tool call did not give a result (it raised `ModelRetry`, or its arguments failed
    validation), in words; None when it succeeded."""
    if isinstance(part, ToolReturnPart) and part.outcome == "success":
        return None
    content = part.content
    if isinstance(content, dict) and isinstance(content.get("error"), str):
        return content["error"]
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False, default=str)


def steps_of(messages: Sequence[ModelMessage]) -> tuple[Step, ...]:
    """The steps stored messages hold, as the live run showed them (durations are not stored)."""
    log = StepLog(clock=None)
    for index, message in enumerate(messages):
        asked = set((message.metadata or {}).get(APPROVAL_KEY) or ()) if isinstance(message, ModelResponse) else ()
        for part_index, part in enumerate(message.parts):
            if isinstance(message, ModelResponse) and isinstance(part, ThinkingPart):
                log.think(thinking_key(index, part_index), part.content)
            elif isinstance(message, ModelResponse) and isinstance(part, ToolCallPart):
                log.call(part, asked=part.tool_call_id in asked)
            elif isinstance(message, ModelRequest) and isinstance(part, (ToolReturnPart, RetryPromptPart)):
                log.result(part)
    log.await_approval(pending_approvals(messages))
    log.end()
    return log.steps


NOT_FINISHED = "The run ended before this tool returned."


def thinking_key(message_index: int, part_index: int) -> str:
    """The id of a stored thinking part's step: where it is in the conversation."""
    return f"thinking-{message_index}-{part_index}"


def _arguments(part: ToolCallPart) -> str:
    try:
        return json.dumps(part.args_as_dict(), ensure_ascii=False)
    except ValueError:  # arguments the model broke: shown as it sent them, not hidden
        return str(part.args)
