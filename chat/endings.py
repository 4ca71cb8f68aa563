"""Why an answer ended early, as stored in `ModelResponse.metadata[END_KEY]` (never sent to the model)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart

from chat.text import repair_responses

END_KEY = "ended"
STOPPED = "stopped"
"""The visitor pressed Stop, or left for another chat."""
LENGTH_LIMIT = "length_limit"
"""The answer reached the server's longest answer and was cut there."""
CONNECTION_LOST = "connection_lost"
"""The provider's stream was cut off."""
SERVER_RESTARTED = "server_restarted"
"""The server died mid-answer; the text is as far as its last checkpoint (chat/wings/journal.py)."""


def interrupted_answer(text: str, reason: str, model_name: str | None) -> ModelResponse:
    """The stored answer of a turn that ended early: as far as it got, marked with why."""
    return ModelResponse(parts=[TextPart(text)], model_name=model_name, state="interrupted", metadata={END_KEY: reason})


def mark_ended(messages: list[ModelMessage], reason: str, model_name: str | None = None) -> None:
    """Mark the turn's last answer as ended early, or give the turn one (stopped before any answer came)."""
    last = messages[-1] if messages else None
    if isinstance(last, ModelResponse):
        messages[-1] = dataclasses.replace(
            last, state="interrupted", metadata={**(last.metadata or {}), END_KEY: reason}
        )
    else:
        messages.append(interrupted_answer("", reason, model_name))


def connection_was_lost(message: ModelMessage) -> bool:
    # pydantic-ai (2.68 and 2.78) records a stream the server cut off as complete, with a made-up finish
    # reason. What gives it away: the provider never sent its own finish reason, nor the usage that comes with it.
    if not isinstance(message, ModelResponse) or message.provider_name is None or message.state != "complete":
        return False
    sent_finish_reason = (message.provider_details or {}).get("finish_reason") is not None
    return not sent_finish_reason and message.usage.unmeasured_requests > 0


def answered_messages(new_messages: Sequence[ModelMessage]) -> tuple[list[ModelMessage], bool]:
    """A run's new messages as they are saved, and whether its stream was cut off (then labelled so)."""
    messages = list(new_messages)
    cut_off = bool(messages) and connection_was_lost(messages[-1])
    if cut_off:
        mark_ended(messages, CONNECTION_LOST)
    repair_responses(messages)
    return messages, cut_off


def stopped_messages(new_messages: Sequence[ModelMessage], prompt: str, reason: str, model: str) -> list[ModelMessage]:
    """A stopped run's new messages as they are saved, the partial answer labelled with `reason`. Stopped before
    the model was asked (Stop pressed while the turn waited to start): the prompt is kept all the same."""
    messages = list(new_messages) or [ModelRequest(parts=[UserPromptPart(prompt)])]
    mark_ended(messages, reason, model)
    repair_responses(messages)
    return messages
