"""What an imported conversation file may bring in: what was said and done, never something still to do.

A file is text anyone can write. Its author can end it on a response that "waits for approval" with
arguments of their choosing (one Approve from the visitor and the app would run them), on a tool call
left unanswered (a run given that history goes on to execute it), on a request marked as pydantic-ai's
own pause, or give it a system prompt that speaks in the system voice. None of that is the visitor's
model's doing, so none of it comes in. What does: the prompts and answers, and each tool call together
with the return it got; the conversation ends on the last answer the model gave in it.

pydantic-ai's `sanitize_messages` (what its UI adapters apply to a browser's history) does the part it
knows: system prompts, the framework's reserved metadata (a claimed pause), file URLs the provider would
fetch with the server's credentials. The rest is this app's: its own waiting mark (`APPROVAL_KEY`), and
calls and returns kept only in pairs.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
    sanitize_messages,
)

from chat.steps import APPROVAL_KEY

RUNS_NOTHING = "nothing from a file runs here"


@dataclass(frozen=True)
class InertHistory:
    messages: list[ModelMessage]
    left_out: tuple[str, ...] = ()
    """What the file held that was not imported, a sentence each, for the visitor."""


def inert_history(messages: Sequence[ModelMessage]) -> InertHistory:
    """The messages of an untrusted file as the visitor's chat may hold them, and what was left out."""
    waiting = {call_id for message in messages for call_id in _marked_waiting(message)}
    kept = list(messages)
    unanswered: list[ToolCallPart] = []
    orphans = unanswered_prompts = 0
    while True:
        while kept and isinstance(kept[-1], ModelRequest):  # the model never answered it
            unanswered_prompts += any(isinstance(part, UserPromptPart) for part in kept.pop().parts)
        kept, calls, returns = _paired(kept)
        unanswered += calls
        orphans += returns
        if not kept or isinstance(kept[-1], ModelResponse):
            break
    system_prompts = any(isinstance(part, SystemPromptPart) for message in kept for part in message.parts)
    with warnings.catch_warnings():  # pydantic-ai warns the server's log of what it strips; the visitor is told
        warnings.simplefilter("ignore", UserWarning)
        kept = sanitize_messages(kept)
    kept = [_not_waiting(message) for message in kept]
    return InertHistory(kept, _sentences(unanswered, waiting, orphans, unanswered_prompts, system_prompts))


def _paired(messages: list[ModelMessage]) -> tuple[list[ModelMessage], list[ToolCallPart], int]:
    """The messages with each tool call whose return follows it and each return whose call precedes it;
    the calls left out, and how many returns. A message left with no parts goes too."""
    open_calls: dict[tuple[str, str], tuple[int, int]] = {}
    answered: set[tuple[int, int]] = set()
    orphans: set[tuple[int, int]] = set()
    for index, message in enumerate(messages):
        for part_index, part in enumerate(message.parts):
            if isinstance(message, ModelResponse) and isinstance(part, ToolCallPart):
                open_calls[(part.tool_name, part.tool_call_id)] = (index, part_index)
            elif isinstance(message, ModelRequest) and _is_tool_result(part):
                call = open_calls.pop((part.tool_name or "", part.tool_call_id), None)
                if call is None:
                    orphans.add((index, part_index))
                else:
                    answered.add(call)
    dropped_calls: list[ToolCallPart] = []
    kept: list[ModelMessage] = []
    for index, message in enumerate(messages):
        parts = []
        for part_index, part in enumerate(message.parts):
            where = (index, part_index)
            if isinstance(message, ModelResponse) and isinstance(part, ToolCallPart) and where not in answered:
                dropped_calls.append(part)  # unanswered, or a call repeating an id whose return went to a later one
            elif where not in orphans:
                parts.append(part)
        if parts:
            kept.append(dataclasses.replace(message, parts=parts) if len(parts) != len(message.parts) else message)
    return kept, dropped_calls, len(orphans)


def _is_tool_result(part: object) -> bool:
    """A return answering a call, as pydantic-ai pairs them; a retry with no tool is about the whole answer."""
    return isinstance(part, ToolReturnPart) or (isinstance(part, RetryPromptPart) and bool(part.tool_name))


def _marked_waiting(message: ModelMessage) -> list[str]:
    marked = (message.metadata or {}).get(APPROVAL_KEY) if isinstance(message, ModelResponse) else None
    return [call_id for call_id in marked if isinstance(call_id, str)] if isinstance(marked, list) else []


def _not_waiting(message: ModelMessage) -> ModelMessage:
    if isinstance(message, ModelResponse) and APPROVAL_KEY in (message.metadata or {}):
        rest = {key: value for key, value in (message.metadata or {}).items() if key != APPROVAL_KEY}
        return dataclasses.replace(message, metadata=rest or None)
    return message


def _sentences(
    calls: Sequence[ToolCallPart], waiting: set[str], orphans: int, prompts: int, system_prompt: bool
) -> tuple[str, ...]:
    said = []
    if calls:
        names = ", ".join(dict.fromkeys(f"`{call.tool_name}`" for call in calls))
        count = "" if len(calls) == 1 else f"{len(calls)} "
        actions = "action" if len(calls) == 1 else "actions"
        if any(call.tool_call_id in waiting for call in calls):
            state = f"{count}{actions} waiting for your approval"
        else:
            state = f"{count}unfinished {actions}"
        said.append(f"Not imported, since {RUNS_NOTHING}: the file's {state} ({names}).")
    if prompts:
        said.append("Not imported: the file's last message, which had no answer.")
    if orphans:
        said.append(f"Not imported: {orphans} tool result{'s' if orphans != 1 else ''} with no call before it.")
    if system_prompt:
        said.append("Not imported: the file's system prompt (only this app sets one).")
    return tuple(said)
