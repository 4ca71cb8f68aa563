"""Why an answer ended early, as stored in `ModelResponse.metadata[END_KEY]` (never sent to the model)."""

from __future__ import annotations

import dataclasses

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart

END_KEY = "ended"
STOPPED = "stopped"
"""The visitor pressed Stop, or left for another chat."""
LENGTH_LIMIT = "length_limit"
"""The answer reached the server's longest answer and was cut there."""
CONNECTION_LOST = "connection_lost"
"""The provider's stream was cut off."""
SERVER_RESTARTED = "server_restarted"
"""The server died mid-answer; the text is as far as its last checkpoint (chat/journal.py)."""


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
