"""One chat turn: stream the answer, stop it on request, save it through a `ConversationStore`.

The pydantic-ai run lives in a task of its own (`chat.runs.stream_from_own_task`). Its reader can
leave (a reloaded or closed page, a dropped SSE client) and the answer goes on to its end and is saved;
a new reader picks it up (`ChatService.live_turn`, `follow`). Stop ends it in its own task: the partial
answer is saved as an `interrupted` response, and the HTTP stream to the provider is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from pydantic_ai import Agent, AgentRunResult, CancellationToken, DeferredToolRequests, DeferredToolResults
from pydantic_ai.capabilities import ProcessHistory
from pydantic_ai.conversation import Conversation
from pydantic_ai.conversation_store import ConversationConflict
from pydantic_ai.exceptions import RunCancelled, RunTimedOut
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.usage import RunUsage, UsageLimits

from chat.approvals import decision, mark_awaiting, passed_over, pending_approvals
from chat.config import POLICY_KINDS, policy_kind
from chat.endings import CONNECTION_LOST, LENGTH_LIMIT, mark_ended
from chat.errors import ConversationUnavailable, NoSuchConversation, PromptRejected, VisitorMissing, describe_failure
from chat.history import Compactor, ContextPolicy, ContextReport, StoredSummary
from chat.journal import Checkpoints
from chat.mcp_servers import McpServers
from chat.models import ModelNotOffered, ModelResolver, ModelUnavailable
from chat.runs import ActiveTurns, LiveRun, Report, RunStatus, RunUpdate, stream_from_own_task
from chat.services import RunService
from chat.steps import Step, StepLog
from chat.summaries import Summarizer
from chat.text import VisibleText, join_surrogates, repair_responses, title_from_prompt, visible_prefix
from chat.tools import ChatDeps, chat_tool_descriptions, known_zone
from chat.turn_stats import TurnStats, this_turn_usage, turn_stats
from storage.catalogue import CataloguedStore, CorruptConversation, StoreUnavailable, TurnEnd
from storage.turn_journal import TurnJournal

log = logging.getLogger(__name__)

MAX_REQUESTS_PER_TURN = 20
TURN_KIND = "chat"
"""What `ActiveTurns.live` knows a chat turn's run by (recipes and hand-offs run beside them)."""
MAX_UPDATES_PER_SECOND = 200
"""What the server sends in total to all streaming chats; see `ChatService.update_interval`."""


@dataclass(frozen=True)
class TurnUpdate(RunUpdate):
    conversation_id: str
    text: str
    """The whole answer so far, safe to display."""
    status: RunStatus = RunStatus.STREAMING
    stats: TurnStats | None = None
    error: str | None = None
    context: ContextReport | None = None
    """On the final update: what the model was sent."""
    steps: tuple[Step, ...] = ()
    """What the agent did before this answer (thinking, tool calls), as far as it got."""


class ChatService(RunService):
    """Runs turns for many visitors at once; every call is scoped to the visitor who owns the conversation."""

    def __init__(
        self,
        agent: Agent[ChatDeps, str | DeferredToolRequests],
        store: CataloguedStore,
        models: ModelResolver,
        *,
        max_prompt_chars: int = 20_000,
        max_answer_chars: int | None = None,
        request_timeout: float = 60.0,
        min_update_interval: float = 0.05,
        default_policy: ContextPolicy | None = None,
        context_choices: Sequence[str] = POLICY_KINDS,
        summarizer: Summarizer | None = None,
        journal: TurnJournal | None = None,
        mcp_servers: McpServers | None = None,
        active: ActiveTurns | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(store, models, request_timeout=request_timeout, active=active, clock=clock)
        self.agent = agent
        self.default_policy = default_policy or ContextPolicy()
        self.context_choices = tuple(dict.fromkeys([*context_choices, self.default_policy.kind]))
        """The policies a client may pick; anything else (an old stored `full`, say) sends the default."""
        self.summarizer = summarizer or Summarizer(models)
        self.max_prompt_chars = max_prompt_chars
        self.max_answer_chars = max_answer_chars
        """The longest answer streamed and kept; the run is stopped there, whatever the model."""
        self.min_update_interval = min_update_interval
        self.journal = journal
        """Keeps each turn's prompt and partial answer on disk until the turn is saved (chat/journal.py)."""
        self.mcp_servers = mcp_servers or McpServers()
        """Their tools join the agent's on every turn; each server starts with the first turn that needs it."""

    def check_prompt(self, prompt: str | None) -> str:
        """The prompt to send, or `PromptRejected` saying why it cannot be sent."""
        if prompt is None or not prompt.strip():
            raise PromptRejected("Type a message first.")
        if len(prompt) > self.max_prompt_chars:
            raise PromptRejected(
                f"Your message is {len(prompt):,} characters; the limit here is {self.max_prompt_chars:,}. "
                "Shorten it: it is still in the box."
            )
        return join_surrogates(prompt)  # a lone surrogate (broken emoji) cannot be stored or sent

    async def load_messages(self, owner: str, conversation_id: str) -> list[ModelMessage]:
        conversation = await self.store.load(conversation_id, scope=_required(owner))
        return [] if conversation is None else list(conversation.messages)

    def update_interval(self) -> float:
        """At least `min_update_interval` between a turn's updates, longer as more turns stream at once.

        Each update costs the server a fixed amount (Gradio post-processes and diffs the whole chat),
        so the server as a whole sends at most about `MAX_UPDATES_PER_SECOND`; with 200 turns
        streaming, each shows new text about once a second instead of the server falling behind.
        """
        streams = len(self.active)
        if streams <= 1:
            return self.min_update_interval  # alone, a turn keeps the pace it was configured for
        return max(self.min_update_interval, streams / MAX_UPDATES_PER_SECOND)

    def check_idle(self, owner: str | None, conversation_id: str | None) -> None:
        """`PromptRejected` while this conversation is still streaming an answer for this visitor."""
        if owner and conversation_id and self.active.is_running(owner, conversation_id):
            raise PromptRejected("Still answering your last message: wait for it, or press Stop.")

    async def context_policy(
        self, owner: str, conversation_id: str | None, kind: str | None = None, *, stored: str | None = None
    ) -> ContextPolicy:
        """The policy for this conversation: the one asked for, else the one it was last sent with, else the
        default. `stored`: the conversation's own, when the caller has read it already ("" for none)."""
        if stored is None and conversation_id and owner:
            stored = await self.store.context_policy(conversation_id, owner)
        chosen = policy_kind(kind or stored)
        if chosen is not None and chosen in self.context_choices:
            return dataclasses.replace(self.default_policy, kind=chosen)
        return self.default_policy

    async def remember_context_policy(self, owner: str, conversation_id: str, kind: str) -> None:
        """Keep the policy picked for a conversation (a new one takes it with its first turn); others are ignored."""
        if owner and conversation_id and kind in self.context_choices:
            await self.store.set_context_policy(conversation_id, owner, kind)

    async def has_conversation(self, owner: str, conversation_id: str) -> bool:
        """Whether this owner has a chat of this id; anyone else's is exactly like one that does not exist."""
        return bool(owner) and await self.store.session(conversation_id, owner) is not None

    async def is_unused_id(self, conversation_id: str) -> bool:
        """Whether no one has a conversation of this id, for clients that name their new chats themselves."""
        return await self.store.read_record(conversation_id) is None

    async def available_tools(self) -> list[tuple[str, str]]:
        """The tools a turn offers the model, each with what it does: the chat's own and the MCP servers'."""
        mcp = [(name, "from an MCP server") for name in await self.mcp_servers.tool_names()]
        return [*chat_tool_descriptions(), *mcp]

    def check_context(self, kind: str | None) -> None:
        """`PromptRejected` when a client asks for a policy this server does not offer."""
        if kind and kind not in self.context_choices:
            raise PromptRejected(
                f"This server does not offer that context policy. Pick one of: {', '.join(self.context_choices)}."
            )

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

        `shown_prompts`: the prompts the page shows before this one; the stored conversation is first cut
        back to them (`keep_shown`), which is how editing any message, retry and undo reach the store.
        `address`: the client's network address, for the per-address limit. `tag`: the run's `LiveRun.tag`,
        for a caller that names the run to its client before the first update (the SSE API's event ids).
        `time_zone`: the visitor's, as their browser names it, for the tools (an unknown name is ignored).
        `keep_running_when_left`: a reader who leaves (a reloaded page, a dropped SSE client) does not stop
        the answer: it goes on, is saved whole, and the reader who comes back picks it up (`follow`). Off
        for clients whose only Stop is leaving (the AI SDK's `stop()` aborts its request).
        """
        try:
            owner = _required(owner)
            prompt = self.check_prompt(prompt)
            self.check_context(policy)
            self.models.check_offered(model_name)
            await self.active.settle(owner, conversation_id)  # a stopped answer still saving: wait for it
            # `admit` checks again; this is before `keep_shown` writes.
            await self.active.check_can_start(owner, conversation_id, address)
            if shown_prompts is not None:
                await self.keep_shown(owner, conversation_id, shown_prompts)
        except (
            PromptRejected,
            ConversationUnavailable,
            CorruptConversation,
            ModelNotOffered,
            StoreUnavailable,
        ) as error:
            yield TurnUpdate(conversation_id, "", RunStatus.FAILED, error=describe_failure(error, model_name))
            return

        async def produce(token: CancellationToken, report: Report[TurnUpdate]) -> None:
            await self._run(owner, conversation_id, prompt, model_name, policy, token, report, known_zone(time_zone))

        def crashed(error: BaseException) -> TurnUpdate:
            return self._failure(conversation_id, "", error, model_name)

        # aclosing: a consumer that stops early must close the inner stream now, not at garbage collection,
        # so the run is stopped and its partial saved before this generator is done closing.
        async with contextlib.aclosing(
            stream_from_own_task(
                self.active,
                owner,
                conversation_id,
                produce,
                crashed,
                kind=TURN_KIND,
                subject=prompt,
                tag=tag,
                address=address,
                keep_running_when_left=keep_running_when_left,
                min_update_interval=self.update_interval,
                clock=self._clock,
            )
        ) as updates:
            async for update in updates:
                yield update

    def live_turn(self, owner: str | None, conversation_id: str) -> LiveRun[TurnUpdate] | None:
        """This owner's turn in this conversation that is answering, or that ended moments ago (for a
        client that lost the end of it); None for anyone else's."""
        run = self.active.live(owner, conversation_id) if owner else None
        return run if run is not None and run.kind == TURN_KIND else None

    def follow(self, run: LiveRun[TurnUpdate]) -> AsyncIterator[TurnUpdate]:
        """The run's updates from the latest on, paced like the turn's own (its final update ends them)."""
        return run.read(min_update_interval=self.update_interval, clock=self._clock)

    async def _run(
        self,
        owner: str,
        conversation_id: str,
        prompt: str,
        model_name: str,
        policy_kind: str | None,
        token: CancellationToken,
        report: Report[TurnUpdate],
        time_zone: str | None = None,
    ) -> None:
        started = self._clock()
        compactor = await self._compactor(owner, conversation_id, model_name, policy_kind)

        async def shape_history(messages: list[ModelMessage]) -> list[ModelMessage]:
            return await compactor(messages)

        first_token_at: float | None = None
        streamed = VisibleText()
        steps = StepLog(self._clock)

        async def show_steps(_: object, events: AsyncIterator[AgentStreamEvent]) -> None:
            async for event in events:
                if steps.see(event):
                    report(TurnUpdate(conversation_id, streamed.text, steps=steps.steps))

        conversation: Conversation | None = None
        too_long = False
        # The prompt is on disk before the model is asked, and the answer every few seconds after.
        checkpoints = await Checkpoints.begin(self.journal, owner, conversation_id, prompt, model_name)

        async def finish(last: TurnUpdate) -> None:
            # Saved, or failed as the visitor was told: nothing to put back after a restart. Out of the journal
            # before the last update goes out, so a reader who sends again at once finds the turn ended.
            await checkpoints.end()
            report(last)

        def stats(usage: RunUsage, messages: Sequence[ModelMessage], answer: str) -> TurnStats:
            return turn_stats(model_name, usage, messages, answer, started, first_token_at, self._clock())

        try:
            model = self.models.resolve(model_name)
            conversation = await self._load_or_start(owner, conversation_id)
            decided = _answer_waiting_calls(conversation, prompt, steps)
            async with self.agent.run_stream(
                None if decided is not None else prompt,
                deferred_tool_results=decided,
                toolsets=await self.mcp_servers.ready(),
                model=model,
                conversation=conversation,
                capabilities=[ProcessHistory(shape_history)],
                deps=ChatDeps(owner, self.store, conversation_id, time_zone),
                event_stream_handler=show_steps,
                # pydantic-ai checks usage limits against the whole conversation's usage (50 requests by
                # default), which would end every chat at turn 50: bound this turn's requests instead.
                usage_limits=UsageLimits(request_limit=conversation.usage.requests + MAX_REQUESTS_PER_TURN),
                **self.run_options(token),
            ) as run:
                async for delta in run.stream_text(delta=True, debounce_by=None):
                    if too_long:
                        continue  # the run ends at its next await; nothing more is shown or kept
                    streamed.append(delta)
                    if self.max_answer_chars is not None and len(streamed.raw) >= self.max_answer_chars:
                        too_long = True
                        token.cancel()
                    report(TurnUpdate(conversation_id, streamed.text, steps=steps.steps))
                    checkpoints.saw(streamed.raw)
                    if first_token_at is None:
                        first_token_at = self._clock()
                        await report.first_delivered()
            result = run.result
            assert result is not None
            new_messages, status, this_turn = await self._save_answered(
                result, conversation, owner, prompt, model_name, compactor.policy.kind, checkpoints
            )
            final_text = visible_prefix(_answer_text(new_messages) or streamed.raw)
            if isinstance(result.output, DeferredToolRequests):
                steps.await_approval(result.output.approvals)
            steps.end()
            await finish(
                TurnUpdate(
                    conversation_id,
                    final_text,
                    status,
                    stats(this_turn, new_messages, final_text),
                    context=compactor.report,
                    steps=steps.steps,
                )
            )
        except RunTimedOut as error:
            await finish(self._failure(conversation_id, streamed.raw, error, model_name))
        except RunCancelled as stopped:
            usage = this_turn_usage(stopped.usage, conversation.usage if conversation else None)
            reason = LENGTH_LIMIT if too_long else self.active.stop_reason
            await self._save_stopped(stopped, conversation, owner, prompt, model_name, reason, checkpoints)
            answer = streamed.text
            steps.end()
            await finish(
                TurnUpdate(
                    conversation_id,
                    answer,
                    RunStatus.CUT if too_long else RunStatus.STOPPED,
                    stats(usage, stopped.all_messages(), answer),
                    context=compactor.report,
                    steps=steps.steps,
                )
            )
        except asyncio.CancelledError as cancelled:
            stopped = RunCancelled.from_cancellation(cancelled)
            if stopped is not None:
                reason = self.active.stop_reason
                saving = self._save_stopped(stopped, conversation, owner, prompt, model_name, reason, checkpoints)
                await _shielded(saving)
            raise
        except Exception as error:
            if not isinstance(error, (ModelUnavailable, ConversationUnavailable, CorruptConversation)):
                log.exception("turn failed in conversation %s", conversation_id)
            await finish(self._failure(conversation_id, streamed.raw, error, model_name))
        finally:
            if checkpoints.turn_id is not None:  # cancelled while saving: nothing to put back after a restart
                await _shielded(checkpoints.end())

    async def _save_answered(
        self,
        result: AgentRunResult[str | DeferredToolRequests],
        conversation: Conversation,
        owner: str,
        prompt: str,
        model_name: str,
        policy: str,
        checkpoints: Checkpoints,
    ) -> tuple[list[ModelMessage], RunStatus, RunUsage]:
        """Save a turn the model answered to its end; its new messages, how it ended, and what it cost."""
        new_messages = list(result.new_messages())
        status = RunStatus.COMPLETED
        if new_messages and _connection_was_lost(new_messages[-1]):
            status = RunStatus.CONNECTION_LOST
            mark_ended(new_messages, CONNECTION_LOST)
        repair_responses(new_messages)
        if isinstance(result.output, DeferredToolRequests):
            mark_awaiting(new_messages, result.output)
        earlier_usage = conversation.usage
        # Extend the loaded conversation rather than saving `result.conversation`: in pydantic-ai 2.68
        # a streamed result forgets the loaded revision (the save would conflict from turn 2 on), and
        # it holds the history as trimmed by the context policy (the save would branch off it).
        # The loaded object still knows which messages the store has, so the save appends only these.
        conversation.messages.extend(new_messages)
        conversation.usage = result.conversation.usage
        # The model and context policy of this turn, and a title from the first prompt, with the messages.
        end = TurnEnd(
            title=title_from_prompt(prompt),
            model=model_name,
            context_policy=policy,
            journal_turn_id=checkpoints.turn_id,
        )
        await self._save(conversation, owner, new_messages, end)
        checkpoints.saved()
        return new_messages, status, this_turn_usage(result.usage, earlier_usage)

    def _failure(self, conversation_id: str, text: str, error: BaseException, model_name: str) -> TurnUpdate:
        return TurnUpdate(
            conversation_id,
            visible_prefix(text),
            RunStatus.FAILED,
            error=describe_failure(error, model_name, mid_stream=bool(text)),
        )

    async def _load_or_start(self, owner: str, conversation_id: str) -> Conversation:
        conversation = await self.store.load(conversation_id, scope=owner)
        if conversation is not None:
            return conversation
        if await self.store.read_record(conversation_id) is not None:
            # Same answer as for a conversation that never existed: an id alone reveals nothing.
            raise NoSuchConversation("Start a new chat.")
        return Conversation(conversation_id=conversation_id)

    async def _save_stopped(
        self,
        stopped: RunCancelled,
        loaded: Conversation | None,
        owner: str,
        prompt: str,
        model_name: str,
        reason: str,
        checkpoints: Checkpoints,
    ) -> None:
        if loaded is None:
            return
        # new_messages(), not all_messages(): the history the run was sent may have been trimmed.
        # Stopped before the model was asked (Stop pressed while the turn waited to start): the prompt
        # is kept all the same, with an empty answer labelled stopped.
        new_messages = list(stopped.new_messages()) or [ModelRequest(parts=[UserPromptPart(prompt)])]
        mark_ended(new_messages, reason, model_name)
        repair_responses(new_messages)
        loaded.messages.extend(new_messages)
        loaded.usage = stopped.usage
        # A title from the prompt also when its answer was stopped: the prompt names the chat.
        title = title_from_prompt(_last_prompt(new_messages) or "")
        await self._save(loaded, owner, new_messages, TurnEnd(title=title, journal_turn_id=checkpoints.turn_id))
        checkpoints.saved()

    async def keep_shown(self, owner: str, conversation_id: str, shown_prompts: Sequence[str]) -> bool:
        """Cut the stored conversation back to the prompts the page still shows; True when something was cut.

        Editing any message, retrying or undoing in the chat leaves the page showing fewer prompts than
        the store holds: the conversation branches before the first stored prompt no longer shown, and the
        replaced messages stay stored as a branch. Prompts are matched in order, so a failed turn the page
        shows but the store never saved does not confuse the count.
        """
        owner = _required(owner)
        conversation = await self.store.load(conversation_id, scope=owner)
        if conversation is None:
            return False
        remaining = iter(_comparable(prompt) for prompt in shown_prompts)
        for index, message in enumerate(conversation.messages):
            prompt = _prompt_of(message)
            # `any` consumes the shown prompts up to the match: an in-order (subsequence) match.
            if prompt is not None and not any(shown == _comparable(prompt) for shown in remaining):
                self.check_idle(owner, conversation_id)
                await self.store.branch(conversation_id, at=index, expected_revision=conversation.revision, scope=owner)
                return True
        return False

    async def rewind_to_last_prompt(self, owner: str, conversation_id: str) -> str:
        """Branch the conversation back to just before its last prompt, and return that prompt.

        Regenerate and edit start here: the answer they replace stays stored, as a branch.
        """
        owner = _required(owner)
        self.check_idle(owner, conversation_id)
        conversation = await self.store.load(conversation_id, scope=owner)
        if conversation is None:
            raise NoSuchConversation()
        for index in range(len(conversation.messages) - 1, -1, -1):
            prompt = _prompt_of(conversation.messages[index])
            if prompt is not None:
                await self.store.branch(conversation_id, at=index, expected_revision=conversation.revision, scope=owner)
                return prompt
        raise ConversationUnavailable("There is no message to answer again yet.")

    async def _compactor(self, owner: str, conversation_id: str, model_name: str, kind: str | None) -> Compactor:
        settings = await self.store.turn_settings(conversation_id, owner)  # the turn's one read of the app's metadata

        async def summarize(previous: str | None, messages: Sequence[ModelMessage]) -> str:
            return await self.summarizer.summarize(model_name, previous, messages)

        async def save_summary(summary: StoredSummary) -> None:
            await self.store.save_summary(conversation_id, owner, summary.text, summary.covered)

        return Compactor(
            await self.context_policy(owner, conversation_id, kind, stored=settings.context_policy or ""),
            summarize,
            stored=StoredSummary(*settings.summary) if settings.summary else None,
            save_summary=save_summary,
        )

    async def _save(
        self, conversation: Conversation, owner: str, new_messages: Sequence[ModelMessage], end: TurnEnd
    ) -> None:
        """Save the turn's messages, and `end` with them; if another tab saved this conversation meanwhile,
        append after its messages."""
        try:
            await self.store.save_turn(conversation, scope=owner, end=end)
            return
        except ConversationConflict:
            pass
        latest = await self.store.load(conversation.conversation_id, scope=owner)
        if latest is None:
            raise ConversationUnavailable("This conversation was deleted while the answer was streaming.")
        latest.messages.extend(new_messages)
        await self.store.save_turn(latest, scope=owner, end=end)


def _required(owner: str | None) -> str:
    if not owner:
        raise VisitorMissing()
    return owner


def _prompt_of(message: ModelMessage) -> str | None:
    if isinstance(message, ModelRequest):
        for part in message.parts:
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                return part.content
    return None


def _comparable(prompt: str) -> str:
    # The page shows a prompt with its common indentation stripped (Gradio's `inspect.cleandoc`).
    return " ".join(prompt.split())


def _last_prompt(messages: Sequence[ModelMessage]) -> str | None:
    for message in reversed(messages):
        if (prompt := _prompt_of(message)) is not None:
            return prompt
    return None


def _answer_waiting_calls(conversation: Conversation, prompt: str, steps: StepLog) -> DeferredToolResults | None:
    """The visitor's Approve or Deny for the tool calls the conversation waits on (chat/approvals.py), to
    run on with instead of a prompt; any other message passes them over (saved with this turn)."""
    waiting = pending_approvals(conversation.messages)
    decided = decision(prompt, waiting)
    if decided is not None:
        for call in waiting:
            steps.call(call)
    elif waiting:
        conversation.messages.append(passed_over(waiting))
    return decided


def _answer_text(messages: Sequence[ModelMessage]) -> str:
    last = messages[-1] if messages else None
    if not isinstance(last, ModelResponse):
        return ""
    return "".join(part.content for part in last.parts if isinstance(part, TextPart))


def _connection_was_lost(message: ModelMessage) -> bool:
    # pydantic-ai 2.68 records a stream the server cut off as complete, with a made-up finish reason.
    # What gives it away: the provider never sent its own finish reason, nor the usage that comes with it.
    if not isinstance(message, ModelResponse) or message.provider_name is None or message.state != "complete":
        return False
    sent_finish_reason = (message.provider_details or {}).get("finish_reason") is not None
    return not sent_finish_reason and message.usage.unmeasured_requests > 0


async def _shielded(operation: Awaitable[None]) -> None:
    await asyncio.shield(operation)
