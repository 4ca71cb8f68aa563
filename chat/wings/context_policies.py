"""A wing: the context policy of each conversation (whole history, a window, or a summary), as a turn hook.

Which policy a turn uses: the one its client asked for, else the one the conversation was last sent
with, else the server's default; only those the server offers. Each turn's `Compactor` (chat/wings/history.py)
shapes what is sent through pydantic-ai's `ProcessHistory` capability, and is kept with the turn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pydantic_ai.capabilities import ProcessHistory
from pydantic_ai.messages import ModelMessage

from chat.config import POLICY_KINDS, policy_kind
from chat.errors import PromptRejected
from chat.turn_hooks import Turn, TurnHooks
from chat.wings.history import Compactor, ContextPolicy, StoredSummary
from chat.wings.summaries import Summarizer
from storage.catalogue import CataloguedStore, TurnEnd


class ContextPolicies(TurnHooks):
    def __init__(
        self,
        store: CataloguedStore,
        summarizer: Summarizer,
        default: ContextPolicy | None = None,
        choices: Sequence[str] = POLICY_KINDS,
    ) -> None:
        self.store = store
        self.summarizer = summarizer
        self.default = default or ContextPolicy()
        self.choices = tuple(dict.fromkeys([*choices, self.default.kind]))
        """The policies a client may pick; anything else (an old stored `full`, say) sends the default."""

    def check(self, turn: Turn) -> None:
        """`PromptRejected` when a client asks for a policy this server does not offer."""
        if turn.policy and turn.policy not in self.choices:
            raise PromptRejected(
                f"This server does not offer that context policy. Pick one of: {', '.join(self.choices)}."
            )

    async def policy_for(
        self, owner: str, conversation_id: str | None, kind: str | None = None, *, stored: str | None = None
    ) -> ContextPolicy:
        """The policy for this conversation: the one asked for, else the one it was last sent with, else the
        default. `stored`: the conversation's own, when the caller has read it already ("" for none)."""
        if stored is None and conversation_id and owner:
            stored = await self.store.context_policy(conversation_id, owner)
        chosen = policy_kind(kind or stored)
        if chosen is not None and chosen in self.choices:
            return dataclasses.replace(self.default, kind=chosen)
        return self.default

    async def remember(self, owner: str, conversation_id: str, kind: str) -> None:
        """Keep the policy picked for a conversation (a new one takes it with its first turn); others are ignored."""
        if owner and conversation_id and kind in self.choices:
            await self.store.set_context_policy(conversation_id, owner, kind)

    async def for_turn(self, turn: Turn) -> TurnHooks:
        # The turn's one read of the app's metadata: its policy and its summary so far.
        settings = await self.store.turn_settings(turn.conversation_id, turn.owner)
        policy = await self.policy_for(
            turn.owner, turn.conversation_id, turn.policy, stored=settings.context_policy or ""
        )

        async def summarize(previous: str | None, messages: Sequence[ModelMessage]) -> str:
            return await self.summarizer.summarize(turn.model_name, previous, messages)

        async def save_summary(summary: StoredSummary) -> None:
            await self.store.save_summary(turn.conversation_id, turn.owner, summary.text, summary.covered)

        stored = StoredSummary(*settings.summary) if settings.summary else None
        return _TurnContext(Compactor(policy, summarize, stored=stored, save_summary=save_summary))


@dataclasses.dataclass
class _TurnContext(TurnHooks):
    compactor: Compactor

    async def prepare(self, turn: Turn) -> None:
        async def shape_history(messages: list[ModelMessage]) -> list[ModelMessage]:
            return await self.compactor(messages)

        turn.capabilities.append(ProcessHistory(shape_history))

    def ending(self, turn: Turn, end: TurnEnd) -> TurnEnd:
        turn.context = self.compactor.report
        return dataclasses.replace(end, context_policy=self.compactor.policy.kind)
