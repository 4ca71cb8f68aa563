"""One chat turn: stream the answer, stop it on request, save it through a `ConversationStore`.

The idea is examples/minimal_chat.py's; what this adds is armour. The pydantic-ai run lives in a task of
its own (`chat.runs.stream_from_own_task`): its reader can leave (a reloaded or closed page, a dropped SSE
client) and the answer goes on to its end and is saved; a new reader picks it up (`live_turn`, `follow`).
Stop ends it in its own task: the partial answer is saved `interrupted`, the provider's HTTP stream closed.
Optional features (tools, approvals, context, the journal) join through `TurnHooks`, chosen in `server.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import Agent, AgentRunResult, CancellationToken
from pydantic_ai.conversation import Conversation
from pydantic_ai.exceptions import RunCancelled, RunTimedOut
from pydantic_ai.messages import AgentStreamEvent, ModelMessage
from pydantic_ai.usage import RunUsage, UsageLimits

from chat.conversation_edits import ConversationEdits, last_prompt, required_owner
from chat.endings import LENGTH_LIMIT, answered_messages, stopped_messages
from chat.errors import ConversationUnavailable, PromptRejected, describe_failure, failure_status
from chat.models import ModelNotOffered, ModelResolver, ModelUnavailable
from chat.runs import ActiveTurns, Report, RunStatus, stream_from_own_task
from chat.services import RunService
from chat.steps import StepLog
from chat.text import VisibleText, answer_text, checked_prompt, title_from_prompt, visible_prefix
from chat.turn_hooks import HooksOfTurn, Turn, TurnHooks, TurnUpdate
from chat.turn_stats import TurnStats, this_turn_usage, turn_stats
from storage.catalogue import CataloguedStore, CorruptConversation, StoreUnavailable, TurnEnd

log = logging.getLogger(__name__)

MAX_REQUESTS_PER_TURN = 20
_REFUSED = (PromptRejected, ConversationUnavailable, CorruptConversation, ModelNotOffered, StoreUnavailable)


@dataclass
class _Progress:
    """One turn's run as it goes: the hooks following it, and the answer so far."""

    turn: Turn
    started: float
    hooks: HooksOfTurn = field(default_factory=HooksOfTurn)
    streamed: VisibleText = field(default_factory=VisibleText)
    first_token_at: float | None = None
    too_long: bool = False
    ended: bool = False

    def update(self) -> TurnUpdate:
        return TurnUpdate(self.turn.conversation_id, self.streamed.text, steps=self.turn.steps.steps)


class ChatService(RunService):
    """Runs turns for many visitors at once; every call is scoped to the visitor who owns the conversation."""

    kind = "chat"
    """What `ActiveTurns.live` knows a chat turn's run by (recipes and hand-offs run beside them)."""

    def __init__(
        self,
        agent: Agent[Any, Any],
        store: CataloguedStore,
        models: ModelResolver,
        *,
        wings: Sequence[TurnHooks] = (),
        max_prompt_chars: int = 20_000,
        max_answer_chars: int | None = None,
        request_timeout: float = 60.0,
        min_update_interval: float = 0.05,
        active: ActiveTurns | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(store, models, request_timeout=request_timeout, active=active, clock=clock)
        self.min_update_interval = min_update_interval
        self.agent = agent
        self.wings = tuple(wings)
        """The optional features every turn runs with, in order (server.py chooses them)."""
        self.edits = ConversationEdits(store, self.active)
        self.max_prompt_chars = max_prompt_chars
        self.max_answer_chars = max_answer_chars
        """The longest answer streamed and kept; the run is stopped there, whatever the model."""

    def check_prompt(self, prompt: str | None) -> str:
        """The prompt to send, or `PromptRejected` saying why it cannot be sent."""
        return checked_prompt(prompt, self.max_prompt_chars)

    def check_options(self, turn: Turn) -> None:
        """`PromptRejected` when a wing refuses what the client asked for (a context policy not offered)."""
        for wing in self.wings:
            wing.check(turn)

    async def open_conversation(self, owner: str, conversation_id: str) -> None:
        """Before a turn reads this conversation, or the caller is told whether it is there: each wing brings
        it up to date (`TurnHooks.opening`)."""
        for wing in self.wings:
            await wing.opening(owner, conversation_id)

    async def run_turn(
        self,
        owner: str | None,
        conversation_id: str,
        prompt: str,
        model_name: str,
        policy: str | None = None,
        *,
        shown_prompts: Sequence[str] | None = None,
        address: str | None = None,
        tag: str | None = None,
        time_zone: str | None = None,
        keep_running_when_left: bool = True,
    ) -> AsyncIterator[TurnUpdate]:
        """Stream one turn's updates, coalesced to at most one per `min_update_interval`; the last is final.

        `shown_prompts`: the prompts the page shows before this one (the store is cut back to them: edit, retry
        and undo). `address`: for the per-address limit. `tag`: names the run to its client before the first
        update (`LiveRun.tag`). `keep_running_when_left`: a reader who leaves does not stop the answer, which
        is saved whole for the reader who comes back (`follow`); off for clients whose only Stop is leaving.
        """
        try:
            owner = required_owner(owner)
            turn = Turn(owner, conversation_id, self.check_prompt(prompt), model_name, policy, time_zone)
            self.check_options(turn)
            self.models.check_offered(model_name)
            paid = self.models.costs_money(model_name)
            await self.active.settle(owner, conversation_id)  # a stopped answer still saving: wait for it
            # `admit` checks again; this is before `keep_shown` writes.
            await self.active.check_can_start(owner, conversation_id, address, paid=paid)
            await self.open_conversation(owner, conversation_id)
            if shown_prompts is not None:
                await self.edits.keep_shown(owner, conversation_id, shown_prompts)
        except _REFUSED as error:  # before anything is stored or any model asked
            yield TurnUpdate(conversation_id, "", RunStatus.FAILED, error=describe_failure(error, model_name))
            return

        async def produce(token: CancellationToken, report: Report[TurnUpdate]) -> None:
            await self._run(turn, token, report)

        def crashed(error: BaseException) -> TurnUpdate:
            return self._failure(conversation_id, "", error, model_name)

        # aclosing: a consumer that stops early must close the inner stream now, not at garbage collection,
        # so the run is stopped and its partial saved before this generator is done closing.
        updates = stream_from_own_task(
            self.active,
            owner,
            conversation_id,
            produce,
            crashed,
            kind=self.kind,
            subject=turn.prompt,
            tag=tag,
            address=address,
            paid=paid,
            keep_running_when_left=keep_running_when_left,
            min_update_interval=self.update_interval,
            clock=self._clock,
        )
        async with contextlib.aclosing(updates):
            async for update in updates:
                yield update

    async def _run(self, turn: Turn, token: CancellationToken, report: Report[TurnUpdate]) -> None:
        turn.steps = StepLog(self._clock)
        progress = _Progress(turn, started=self._clock())

        async def finish(last: TurnUpdate) -> None:
            # Out of the journal (or whatever a hook keeps) before the last update goes out, so a reader who
            # sends again at once finds the turn ended.
            await self._ended(progress)
            report(last)

        try:
            await progress.hooks.join(self.wings, turn)
            model = self.models.resolve(turn.model_name)
            turn.conversation = await self.edits.load_or_start(turn.owner, turn.conversation_id)
            await progress.hooks.prepare(turn)
            result = await self._stream(progress, model, token, report)
            await finish(await self._save_answered(progress, result))
        except RunTimedOut as error:
            await finish(self._failure(turn.conversation_id, progress.streamed.raw, error, turn.model_name))
        except RunCancelled as stopped:
            await finish(await self._save_stopped(progress, stopped))
        except asyncio.CancelledError as cancelled:
            stopped = RunCancelled.from_cancellation(cancelled)
            if stopped is not None:
                await asyncio.shield(self._save_stopped(progress, stopped))
            raise
        except Exception as error:
            if not isinstance(error, (ModelUnavailable, ConversationUnavailable, CorruptConversation)):
                log.exception("turn failed in conversation %s", turn.conversation_id)
            await finish(self._failure(turn.conversation_id, progress.streamed.raw, error, turn.model_name))
        finally:
            if not progress.ended:  # cancelled while saving: nothing to put back after a restart
                await asyncio.shield(self._ended(progress))

    async def _stream(
        self, progress: _Progress, model: Any, token: CancellationToken, report: Report[TurnUpdate]
    ) -> AgentRunResult[Any]:
        """The run itself: `run_stream` + `stream_text(delta=True)`, each delta shown as the answer so far."""
        turn, streamed = progress.turn, progress.streamed

        async def show_steps(_: object, events: AsyncIterator[AgentStreamEvent]) -> None:
            async for event in events:
                if turn.steps.see(event):
                    report(progress.update())

        assert turn.conversation is not None
        async with self.agent.run_stream(
            turn.user_prompt,
            deferred_tool_results=turn.deferred_tool_results,
            toolsets=turn.toolsets,
            model=model,
            conversation=turn.conversation,
            capabilities=turn.capabilities,
            deps=turn.deps,
            event_stream_handler=show_steps,
            # pydantic-ai checks usage limits against the whole conversation's usage (50 requests by
            # default), which would end every chat at turn 50: bound this turn's requests instead.
            usage_limits=UsageLimits(request_limit=turn.conversation.usage.requests + MAX_REQUESTS_PER_TURN),
            **self.run_options(token),
        ) as run:
            async for delta in run.stream_text(delta=True, debounce_by=None):
                if progress.too_long:
                    continue  # the run ends at its next await; nothing more is shown or kept
                streamed.append(delta)
                if self.max_answer_chars is not None and len(streamed.raw) >= self.max_answer_chars:
                    progress.too_long = True
                    token.cancel()
                report(progress.update())
                progress.hooks.streamed(turn, streamed.raw)
                if progress.first_token_at is None:
                    progress.first_token_at = self._clock()
                    await report.first_delivered()
        assert run.result is not None
        return run.result

    async def _save_answered(self, progress: _Progress, result: AgentRunResult[Any]) -> TurnUpdate:
        """Save a turn the model answered to its end; its final update."""
        turn, conversation = progress.turn, progress.turn.conversation
        assert conversation is not None
        new_messages, cut_off = answered_messages(result.new_messages())
        status = RunStatus.CONNECTION_LOST if cut_off else RunStatus.COMPLETED
        progress.hooks.answered(turn, new_messages, result.output)
        earlier_usage = conversation.usage
        # Save the loaded conversation extended by the new messages as marked here (labels, repaired text,
        # approvals), not `result.conversation`, which holds them unmarked. (pydantic-ai 2.78 keeps the loaded
        # revision and the untrimmed history in it; 2.68 lost both.) The loaded object knows what is stored.
        conversation.messages.extend(new_messages)
        conversation.usage = result.conversation.usage
        end = TurnEnd(title=title_from_prompt(turn.prompt), model=turn.model_name)
        await self._save(progress, conversation, new_messages, end)
        text = visible_prefix(answer_text(new_messages) or progress.streamed.raw)
        turn.steps.end()
        stats = self._stats(progress, this_turn_usage(result.usage, earlier_usage), new_messages, text)
        return TurnUpdate(turn.conversation_id, text, status, stats, context=turn.context, steps=turn.steps.steps)

    async def _save_stopped(self, progress: _Progress, stopped: RunCancelled) -> TurnUpdate:
        """Save what a stopped run had (labelled with why it stopped); its final update."""
        turn, loaded = progress.turn, progress.turn.conversation
        usage = this_turn_usage(stopped.usage, loaded.usage if loaded else None)
        if loaded is not None:
            # new_messages(), not all_messages(): the history the run was sent may have been trimmed.
            reason = LENGTH_LIMIT if progress.too_long else self.active.stop_reason
            new_messages = stopped_messages(stopped.new_messages(), turn.prompt, reason, turn.model_name)
            loaded.messages.extend(new_messages)
            loaded.usage = stopped.usage
            # A title from the prompt also when its answer was stopped: the prompt names the chat.
            end = TurnEnd(title=title_from_prompt(last_prompt(new_messages) or ""))
            await self._save(progress, loaded, new_messages, end)
        text = progress.streamed.text
        turn.steps.end()
        status = RunStatus.CUT if progress.too_long else RunStatus.STOPPED
        stats = self._stats(progress, usage, stopped.all_messages(), text)
        return TurnUpdate(turn.conversation_id, text, status, stats, context=turn.context, steps=turn.steps.steps)

    async def _save(
        self, progress: _Progress, conversation: Conversation, new_messages: Sequence[ModelMessage], end: TurnEnd
    ) -> None:
        """Save the turn's messages, and `end` (with what the hooks add) with them; if another tab saved this
        conversation meanwhile, append after its messages."""
        turn = progress.turn
        await self.edits.save_turn(turn.owner, conversation, new_messages, progress.hooks.ending(turn, end))
        progress.hooks.saved(turn)

    async def _ended(self, progress: _Progress) -> None:
        progress.ended = True
        await progress.hooks.ended(progress.turn)

    def _stats(self, progress: _Progress, usage: RunUsage, messages: Sequence[ModelMessage], text: str) -> TurnStats:
        turn = progress.turn
        return turn_stats(
            turn.model_name, usage, messages, text, progress.started, progress.first_token_at, self._clock()
        )

    def _failure(self, conversation_id: str, text: str, error: BaseException, model_name: str) -> TurnUpdate:
        return TurnUpdate(
            conversation_id,
            visible_prefix(text),
            RunStatus.FAILED,
            error=describe_failure(error, model_name, mid_stream=bool(text)),
            failure=failure_status(error),
        )
