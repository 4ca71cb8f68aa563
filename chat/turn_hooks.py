"""How an optional feature joins a chat turn without the turn knowing it.

The turn (chat/turns.py) calls these hooks and never names a feature. A wing (tools, MCP servers,
approvals, context policies, the crash journal: `server.py` picks them) subclasses `TurnHooks` and
overrides what it needs; every hook does nothing by default, so a turn with no wings is the plain
`run_stream` + `stream_text(delta=True)` + save of examples/minimal_chat.py.

pydantic-ai's own extension points come first: in `prepare` a wing adds toolsets, capabilities (such as
`ProcessHistory`), `deps` or `DeferredToolResults` to the run. The other hooks are for what pydantic-ai has
no place for: a turn's text as it streams, and its save.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import DeferredToolResults
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.conversation import Conversation
from pydantic_ai.messages import ModelMessage
from pydantic_ai.toolsets import AbstractToolset

from chat.errors import FailureStatus
from chat.runs import RunStatus, RunUpdate
from chat.steps import Step, StepLog
from chat.turn_stats import TurnStats
from storage.catalogue import TurnEnd


@dataclass
class ContextReport:
    """What the last request of a turn was sent, for the context inspector."""

    policy: str = "full history"
    total_messages: int = 0
    sent_messages: int = 0
    cut_at: int = 0
    summary: str | None = None
    approx_tokens: int = 0
    notice: str | None = None
    summarized_now: bool = False


@dataclass
class Turn:
    """One chat turn as the hooks see it: who asks what, and what the run is given."""

    owner: str
    conversation_id: str
    prompt: str
    model_name: str
    policy: str | None = None
    """The context policy the client asked for, by name (None: the conversation's own or the default)."""
    time_zone: str | None = None
    """The visitor's, as their browser names it (unchecked)."""
    steps: StepLog = field(default_factory=StepLog)
    conversation: Conversation | None = None
    """As loaded from the store, before the run; a hook may append to its messages in `prepare`."""
    # What the run is given; hooks add to these in `prepare`.
    user_prompt: str | None = None
    """The prompt sent to the model: `prompt`, or None when the run goes on from `deferred_tool_results`."""
    deferred_tool_results: DeferredToolResults | None = None
    toolsets: list[AbstractToolset[Any]] = field(default_factory=list)
    capabilities: list[AbstractCapability[Any]] = field(default_factory=list)
    deps: Any = None
    context: ContextReport | None = None
    """What the model was sent, when a hook kept track (shown with the final update)."""

    def __post_init__(self) -> None:
        if self.user_prompt is None:
            self.user_prompt = self.prompt


@dataclass(frozen=True)
class TurnUpdate(RunUpdate):
    conversation_id: str
    text: str
    """The whole answer so far, safe to display."""
    status: RunStatus = RunStatus.STREAMING
    stats: TurnStats | None = None
    error: str | None = None
    failure: FailureStatus | None = None
    """With `error`: the status an HTTP client that retries on its own should get."""
    context: ContextReport | None = None
    """On the final update: what the model was sent (when a hook kept track)."""
    steps: tuple[Step, ...] = ()
    """What the agent did before this answer (thinking, tool calls), as far as it got."""

    @property
    def spent_tokens(self) -> int:
        return self.stats.input_tokens + self.stats.output_tokens if self.stats else 0


class TurnHooks:
    """A wing's part in every chat turn. `for_turn` gives what follows one turn: itself, if it keeps no
    state of the turn, or an object of its own (the journal's checkpoints, a turn's history compactor)."""

    def check(self, turn: Turn) -> None:
        """Refuse the turn before it starts (raise `chat.errors.PromptRejected`); nothing is stored then."""

    async def opening(self, owner: str, conversation_id: str) -> None:
        """A turn is about to read this conversation, or a client asks whether it is there: bring it up to date
        first (the journal puts back a turn a server that died left in it)."""

    async def for_turn(self, turn: Turn) -> TurnHooks:
        """The turn starts (admitted, before its conversation is loaded)."""
        return self

    async def prepare(self, turn: Turn) -> None:
        """The conversation is loaded: add to what the run is given."""

    def streamed(self, turn: Turn, text: str) -> None:
        """The whole answer so far, after each delta. Called for every delta: keep it cheap."""

    def answered(self, turn: Turn, new_messages: list[ModelMessage], output: object) -> None:
        """The run ended by itself with `output`; its `new_messages` are about to be saved (mark them here)."""

    def ending(self, turn: Turn, end: TurnEnd) -> TurnEnd:
        """What is saved with the turn's messages, answered or stopped (in the same transaction)."""
        return end

    def saved(self, turn: Turn) -> None:
        """The turn's messages are stored."""

    async def ended(self, turn: Turn) -> None:
        """Saved, or failed as the visitor was told; called once, before the last update goes out."""


@dataclass
class HooksOfTurn(TurnHooks):
    """Every wing's hooks for one turn, each called in the order the wings were given."""

    hooks: list[TurnHooks] = field(default_factory=list)

    async def join(self, wings: Sequence[TurnHooks], turn: Turn) -> None:
        for wing in wings:  # one at a time: a wing that fails leaves those before it to be ended
            self.hooks.append(await wing.for_turn(turn))

    async def prepare(self, turn: Turn) -> None:
        for hook in self.hooks:
            await hook.prepare(turn)

    def streamed(self, turn: Turn, text: str) -> None:
        for hook in self.hooks:
            hook.streamed(turn, text)

    def answered(self, turn: Turn, new_messages: list[ModelMessage], output: object) -> None:
        for hook in self.hooks:
            hook.answered(turn, new_messages, output)

    def ending(self, turn: Turn, end: TurnEnd) -> TurnEnd:
        for hook in self.hooks:
            end = hook.ending(turn, end)
        return end

    def saved(self, turn: Turn) -> None:
        for hook in self.hooks:
            hook.saved(turn)

    async def ended(self, turn: Turn) -> None:
        for hook in self.hooks:
            await hook.ended(turn)
