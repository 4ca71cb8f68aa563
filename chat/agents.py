"""The chat's agent. The model is chosen per turn, so none is fixed here and nothing is checked at import;
its tools join per turn (chat/wings/tools.py, the MCP servers), as the wings `server.py` picks."""

from __future__ import annotations

from typing import Any

from pydantic_ai import Agent, DeferredToolRequests

CHAT_INSTRUCTIONS = (
    "You are a helpful, concise assistant in a chat app. Answer in the language of the user's "
    "latest message, in Markdown."
)


def build_chat_agent() -> Agent[Any, str | DeferredToolRequests]:
    """The chat's agent: instructions, and text as its output (or the tool calls waiting for the visitor)."""
    # `instructions` (unlike `system_prompt`) are sent with every request, whatever the history holds.
    return Agent(
        None,
        # A run that reaches a tool needing approval ends with DeferredToolRequests (chat/wings/approvals.py).
        output_type=[str, DeferredToolRequests],
        instructions=CHAT_INSTRUCTIONS,
        name="chat",
        defer_model_check=True,
    )
