"""The agents. The model is chosen per turn, so none is fixed here and nothing is checked at import."""

from __future__ import annotations

from pydantic_ai import Agent, DeferredToolRequests

from chat.tools import ChatDeps, chat_tools

CHAT_INSTRUCTIONS = (
    "You are a helpful, concise assistant in a chat app. Answer in the language of the user's "
    "latest message, in Markdown."
)


def build_chat_agent(*, tools: bool = True) -> Agent[ChatDeps, str | DeferredToolRequests]:
    """The chat's agent, with its tools (chat/tools.py); each turn passes whose turn it is as `deps`.

    `tools=False`: the same agent with text only (the stream inspector shows text deltas, with no visitor)."""
    # `instructions` (unlike `system_prompt`) are sent with every request, whatever the history holds.
    return Agent(
        None,
        # A run that reaches a tool needing approval ends with DeferredToolRequests (chat/approvals.py).
        output_type=[str, DeferredToolRequests],
        instructions=CHAT_INSTRUCTIONS,
        name="chat",
        deps_type=ChatDeps,
        toolsets=[chat_tools()] if tools else [],
        defer_model_check=True,
    )
