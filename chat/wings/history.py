"""What a turn sends: the whole history, a window of recent messages, or a summary plus the recent part.

The stored conversation always keeps every message; these policies only shape the request, through
pydantic-ai's `ProcessHistory` capability. Every cut falls at the start of a user turn, so a tool
call is never separated from its return, and system-prompt parts of the first message are carried
over to the first message sent (the agent's `instructions` are sent with every request anyway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    SystemPromptPart,
    ToolReturnPart,
    UserPromptPart,
)

from chat.config import PolicyKind
from chat.tokens import estimate_message_tokens
from chat.turn_hooks import ContextReport

SUMMARY_PREFIX = "Summary of the earlier part of this conversation (older messages are not repeated):\n"


@dataclass(frozen=True)
class ContextPolicy:
    kind: PolicyKind = "window"
    window: int = 20
    """`window`: send at most this many recent messages."""
    summary_threshold: int = 30
    """`summary`: summarize once the history is longer than this..."""
    keep_recent: int = 10
    """...keeping about this many recent messages verbatim..."""
    resummarize_after: int = 20
    """...and summarize again only when this many more messages have piled up since."""

    def describe(self) -> str:
        return {
            "full": "full history",
            "window": f"last {self.window} messages",
            "summary": f"summary past {self.summary_threshold} messages, last {self.keep_recent} verbatim",
        }[self.kind]


@dataclass(frozen=True)
class StoredSummary:
    text: str
    covered: int
    """How many of the conversation's first messages the summary stands for."""


def starts_user_turn(message: ModelMessage) -> bool:
    """A request carrying a user prompt and no tool return: the only safe place to cut."""
    return (
        isinstance(message, ModelRequest)
        and any(isinstance(part, UserPromptPart) for part in message.parts)
        and not any(isinstance(part, ToolReturnPart) for part in message.parts)
    )


def cut_index(messages: Sequence[ModelMessage], keep: int) -> int:
    """Where to cut so that about `keep` recent messages remain: the first user turn that fits, else the last one."""
    earliest = max(len(messages) - keep, 0)
    turn_starts = [index for index, message in enumerate(messages) if starts_user_turn(message)]
    fitting = [index for index in turn_starts if index >= earliest]
    if fitting:
        return fitting[0]
    return turn_starts[-1] if turn_starts else 0


def _system_parts(messages: Sequence[ModelMessage]) -> list[SystemPromptPart]:
    if messages and isinstance(messages[0], ModelRequest):
        return [part for part in messages[0].parts if isinstance(part, SystemPromptPart)]
    return []


def _with_leading_parts(kept: list[ModelMessage], parts: list[SystemPromptPart]) -> list[ModelMessage]:
    """`parts` sent before the kept messages, in a request of their own. Merged into the first kept message they
    were saved with it whenever that message was the turn's own prompt: pydantic-ai's `new_messages()` hands
    back the processed copy, and the stored conversation gained a summary in every such request."""
    if not parts or not kept:
        return kept
    first = kept[0]
    already = (
        [part for part in first.parts if isinstance(part, SystemPromptPart)] if isinstance(first, ModelRequest) else []
    )
    missing = [part for part in parts if part not in already]
    return [ModelRequest(parts=missing), *kept] if missing else kept


def keep_from(messages: Sequence[ModelMessage], cut: int, summary: str | None = None) -> list[ModelMessage]:
    """`messages[cut:]`, with the first message's system prompt (and a summary) carried to the front."""
    kept = list(messages[cut:])
    if cut == 0 and summary is None:
        return kept
    carried = _system_parts(messages) if cut else []
    if summary is not None:
        carried = [*carried, SystemPromptPart(SUMMARY_PREFIX + summary)]
    return _with_leading_parts(kept, carried)


def window(messages: Sequence[ModelMessage], keep: int) -> tuple[list[ModelMessage], int]:
    if len(messages) <= keep:
        return list(messages), 0
    cut = cut_index(messages, keep)
    return keep_from(messages, cut), cut


Summarize = Callable[[str | None, Sequence[ModelMessage]], Awaitable[str]]
"""(previous summary, messages to fold in) -> the new summary."""


@dataclass
class Compactor:
    """Applies a policy before each request of one turn and records what was sent."""

    policy: ContextPolicy
    summarize: Summarize
    stored: StoredSummary | None = None
    report: ContextReport = field(default_factory=ContextReport)
    save_summary: Callable[[StoredSummary], Awaitable[None]] | None = None

    async def __call__(self, messages: list[ModelMessage]) -> list[ModelMessage]:
        self.report = ContextReport(policy=self.policy.describe(), total_messages=len(messages))
        if self.policy.kind == "window":
            sent, cut = window(messages, self.policy.window)
        elif self.policy.kind == "summary":
            sent, cut = await self._summarized(messages)
        else:
            sent, cut = list(messages), 0
        self.report.sent_messages = len(sent)
        self.report.cut_at = cut
        self.report.approx_tokens = estimate_message_tokens(sent)
        return sent

    async def _summarized(self, messages: list[ModelMessage]) -> tuple[list[ModelMessage], int]:
        if len(messages) <= self.policy.summary_threshold:
            return list(messages), 0
        stored = self.stored if self.stored and 0 < self.stored.covered < len(messages) else None
        if stored is not None and not starts_user_turn(messages[stored.covered]):
            stored = None  # the history was rewritten (a branch) since: summarize afresh
        cut = cut_index(messages, self.policy.keep_recent)
        if stored is None or cut - stored.covered >= self.policy.resummarize_after:
            try:
                previous, start = (stored.text, stored.covered) if stored else (None, 0)
                text = await self.summarize(previous, messages[start:cut])
            except Exception as error:  # noqa: BLE001 (a summary is an optimisation: fall back, and say so)
                self.report.notice = f"The summarizer failed ({type(error).__name__}); sent a window instead."
                return window(messages, self.policy.keep_recent)
            stored = StoredSummary(text=text, covered=cut)
            self.stored = stored
            self.report.summarized_now = True
            if self.save_summary is not None:
                await self.save_summary(stored)
        self.report.summary = stored.text
        return keep_from(messages, stored.covered, stored.text), stored.covered
