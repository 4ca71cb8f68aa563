"""Tools that wait for the visitor: a run that reaches one ends with pydantic-ai's `DeferredToolRequests`,
the chat asks Approve or Deny, and the answer runs on with `DeferredToolResults` as the next turn.

Which calls wait is stored with the response that made them (`ModelResponse.metadata[APPROVAL_KEY]`,
never sent to the model), so a reloaded page, another tab or the SSE API all find the same question.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pydantic_ai import DeferredToolRequests, DeferredToolResults, ToolDenied
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart

APPROVAL_KEY = "awaiting_approval"
APPROVE = "Approve"
DENY = "Deny"
DENIED = "The visitor denied this; do not try it again unless they ask."
PASSED_OVER = "The visitor wrote something else instead of answering; this was not run."


def mark_awaiting(messages: list[ModelMessage], requests: DeferredToolRequests) -> None:
    """Store which of the last response's tool calls wait for the visitor."""
    last = messages[-1] if messages else None
    if isinstance(last, ModelResponse) and requests.approvals:
        waiting = [call.tool_call_id for call in requests.approvals]
        messages[-1] = dataclasses.replace(last, metadata={**(last.metadata or {}), APPROVAL_KEY: waiting})


def pending_approvals(messages: Sequence[ModelMessage]) -> list[ToolCallPart]:
    """The calls still waiting for the visitor: those of the conversation's last message, if it asked."""
    last = messages[-1] if messages else None
    if not isinstance(last, ModelResponse):
        return []
    waiting = set((last.metadata or {}).get(APPROVAL_KEY) or ())
    return [part for part in last.parts if isinstance(part, ToolCallPart) and part.tool_call_id in waiting]


def decision(prompt: str, pending: Sequence[ToolCallPart]) -> DeferredToolResults | None:
    """The visitor's answer to the waiting calls, if `prompt` is one (the page's Approve and Deny buttons
    send these words); None: an ordinary message, and the waiting calls are left unanswered."""
    said = prompt.strip().casefold()
    if not pending or said not in (APPROVE.casefold(), DENY.casefold()):
        return None
    verdict: bool | ToolDenied = True if said == APPROVE.casefold() else ToolDenied(DENIED)
    return DeferredToolResults(approvals={call.tool_call_id: verdict for call in pending})


def passed_over(pending: Sequence[ToolCallPart]) -> ModelRequest:
    """The waiting calls' returns when the visitor writes something else: not run, and the history stays
    one a model accepts (no call without its return before a new prompt)."""
    return ModelRequest(
        parts=[ToolReturnPart(call.tool_name, PASSED_OVER, call.tool_call_id, outcome="denied") for call in pending]
    )
