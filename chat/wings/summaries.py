"""The summarizer behind summary compaction: a small agent that folds older messages into a summary."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart

from chat.models import ModelResolver

SUMMARY_INSTRUCTIONS = (
    "Summarize the conversation transcript you are given for the assistant's own memory. Keep every "
    "fact the user stated about themselves (name, age, preferences), decisions made and open questions. "
    "Write at most 120 words, in the conversation's language."
)


def transcript(previous: str | None, messages: Sequence[ModelMessage]) -> str:
    lines = [f"Earlier summary: {previous}"] if previous else []
    for message in messages:
        if isinstance(message, ModelRequest):
            lines += [
                f"User: {p.content}"
                for p in message.parts
                if isinstance(p, UserPromptPart) and isinstance(p.content, str)
            ]
        elif isinstance(message, ModelResponse):
            text = "".join(p.content for p in message.parts if isinstance(p, TextPart))
            if text:
                lines.append(f"Assistant: {text}")
    return "\n".join(lines)


class Summarizer:
    """Calls the summarizer agent on the turn's own model; counts its calls (they cost a request each)."""

    def __init__(self, models: ModelResolver) -> None:
        self.models = models
        self.agent = Agent(
            None, output_type=str, instructions=SUMMARY_INSTRUCTIONS, name="summarizer", defer_model_check=True
        )
        self.calls = 0

    async def summarize(self, model_name: str, previous: str | None, messages: Sequence[ModelMessage]) -> str:
        self.calls += 1
        result = await self.agent.run(transcript(previous, messages), model=self.models.resolve(model_name))
        return result.output
