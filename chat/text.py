"""Text repairs for what providers stream."""

from __future__ import annotations

import re

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart


def join_surrogates(text: str) -> str:
    """Pair UTF-16 surrogates that arrived in separate chunks (an emoji split in two) into one character.

    A surrogate still unpaired (its other half not yet streamed) becomes U+FFFD, so the text can always
    be encoded as UTF-8 and stored.
    """
    if not any("\ud800" <= char <= "\udfff" for char in text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def visible_prefix(text: str) -> str:
    """The part of an accumulated stream that is safe to show: a trailing high surrogate waits for its pair."""
    if text and "\ud800" <= text[-1] <= "\udbff":
        text = text[:-1]
    return join_surrogates(text)


def repair_responses(messages: list[ModelMessage]) -> None:
    """Join split surrogates in place in the responses' text, so `all_messages_json()` cannot crash on them."""
    for message in messages:
        if isinstance(message, ModelResponse):
            for part in message.parts:
                if isinstance(part, TextPart):
                    part.content = join_surrogates(part.content)


def title_from_prompt(prompt: str, limit: int = 48) -> str:
    """A conversation title: the first prompt on one line, shortened on a word boundary."""
    line = " ".join(prompt.strip().split())
    if len(line) <= limit:
        return line or "New chat"
    cut = line[:limit]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return re.sub(r"[\s,.;:!?,。]+$", "", cut) + "…"
