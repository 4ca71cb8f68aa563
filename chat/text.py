"""Text repairs for what providers stream."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart

from chat.errors import PromptRejected
from chat.untrusted import plain_line

_SURROGATE = re.compile("[\ud800-\udfff]")


def join_surrogates(text: str) -> str:
    """Pair UTF-16 surrogates that arrived in separate chunks (an emoji split in two) into one character.

    A surrogate still unpaired (its other half not yet streamed) becomes U+FFFD, so the text can always
    be encoded as UTF-8 and stored.
    """
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def visible_prefix(text: str) -> str:
    """The part of an accumulated stream that is safe to show: a trailing high surrogate waits for its pair."""
    if text and "\ud800" <= text[-1] <= "\udbff":
        text = text[:-1]
    return join_surrogates(text)


class VisibleText:
    """A streamed answer accumulated delta by delta, and the part of it that is safe to show.

    Appending costs O(delta) while no surrogate has arrived (always, with a well-behaved provider):
    re-scanning the whole answer on every delta made a 20,000-token answer quadratic (benchmarks/).
    """

    def __init__(self) -> None:
        self.raw = ""
        self._surrogates = False

    def append(self, delta: str) -> None:
        self.raw += delta
        self._surrogates = self._surrogates or _SURROGATE.search(delta) is not None

    @property
    def text(self) -> str:
        return visible_prefix(self.raw) if self._surrogates else self.raw


def repair_responses(messages: list[ModelMessage]) -> None:
    """Join split surrogates in place in the responses' text, so `all_messages_json()` cannot crash on them."""
    for message in messages:
        if isinstance(message, ModelResponse):
            for part in message.parts:
                if isinstance(part, TextPart):
                    part.content = join_surrogates(part.content)


def title_from_prompt(prompt: str, limit: int = 48) -> str:
    """A conversation title: the first prompt on one line, shortened on a word boundary."""
    line = plain_line(prompt)
    if len(line) <= limit:
        return line or "New chat"
    cut = line[:limit]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return re.sub(r"[\s,.;:!?,。]+$", "", cut) + "…"


def answer_text(messages: Sequence[ModelMessage]) -> str:
    last = messages[-1] if messages else None
    if not isinstance(last, ModelResponse):
        return ""
    return "".join(part.content for part in last.parts if isinstance(part, TextPart))


def checked_prompt(prompt: str | None, max_chars: int) -> str:
    """The prompt to send, or `PromptRejected` saying why it cannot be sent."""
    if prompt is None or not prompt.strip():
        raise PromptRejected("Type a message first.")
    if len(prompt) > max_chars:
        raise PromptRejected(
            f"Your message is {len(prompt):,} characters; the limit here is {max_chars:,}. "
            "Shorten it: it is still in the box."
        )
    return join_surrogates(prompt)  # a lone surrogate (broken emoji) cannot be stored or sent
