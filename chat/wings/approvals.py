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

from chat.steps import APPROVAL_KEY, APPROVE, DENIED, DENY, PASSED_OVER, pending_approvals
from chat.turn_hooks import Turn, TurnHooks

__all__ = ["APPROVE", "DENIED", "DENY", "Approvals", "decision", "mark_awaiting", "passed_over", "pending_approvals"]


def mark_awaiting(messages: list[ModelMessage], requests: DeferredToolRequests) -> None:
    """Store which of the last response's tool calls wait for the visitor."""
    last = messages[-1] if messages else None
    if isinstance(last, ModelResponse) and requests.approvals:
        waiting = [call.tool_call_id for call in requests.approvals]
        messages[-1] = dataclasses.replace(last, metadata={**(last.metadata or {}), APPROVAL_KEY: waiting})


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


class Approvals(TurnHooks):
    """A wing: a turn whose conversation waits for Approve or Deny runs on with the visitor's decision
    instead of a prompt; any other message passes the waiting calls over; a run that reaches a tool needing
    approval is stored as waiting."""

    async def prepare(self, turn: Turn) -> None:
        assert turn.conversation is not None
        waiting = pending_approvals(turn.conversation.messages)
        decided = decision(turn.prompt, waiting)
        if decided is not None:
            turn.user_prompt, turn.deferred_tool_results = None, decided
            for call in waiting:
                turn.steps.call(call, asked=True)
        elif waiting:
            turn.conversation.messages.append(passed_over(waiting))  # saved with this turn

    def answered(self, turn: Turn, new_messages: list[ModelMessage], output: object) -> None:
        if isinstance(output, DeferredToolRequests):
            mark_awaiting(new_messages, output)
            turn.steps.await_approval(output.approvals)
