"""The agents. The model is chosen per turn, so none is fixed here and nothing is checked at import."""

from __future__ import annotations

from pydantic_ai import Agent

CHAT_INSTRUCTIONS = (
    "You are a helpful, concise assistant in a chat app. Answer in the language of the user's "
    "latest message, in Markdown."
)


def build_chat_agent() -> Agent[None, str]:
    # `instructions` (unlike `system_prompt`) are sent with every request, whatever the history holds.
    return Agent(None, output_type=str, instructions=CHAT_INSTRUCTIONS, name="chat", defer_model_check=True)
