"""Structured recipe runs: partial `Recipe` objects streamed, validated as they grow, stopped, stored per owner."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

from pydantic_ai import Agent, CancellationToken
from pydantic_ai.conversation import Conversation
from pydantic_ai.exceptions import RunCancelled, RunTimedOut, UnexpectedModelBehavior
from pydantic_ai.messages import ModelResponse

from chat.endings import mark_ended
from chat.errors import ConversationUnavailable, PromptRejected, VisitorMissing, describe_failure
from chat.recipes import OUTPUT_MODES, OutputMode, Recipe, build_recipe_agent, output_mode, recipe_from_messages
from chat.runs import Report, RunStatus, RunUpdate, refused, stream_from_own_task
from chat.services import RunService
from chat.text import join_surrogates, title_from_prompt
from storage.catalogue import SessionSummary, TurnEnd

log = logging.getLogger(__name__)

RECIPE_KIND = "recipe"
MAX_REQUEST_CHARS = 2_000


@dataclass(frozen=True)
class RecipeUpdate(RunUpdate):
    run_id: str
    recipe: Recipe | None
    status: RunStatus = RunStatus.STREAMING
    snapshots: int = 0
    """Partial snapshots received from pydantic-ai so far (after its debounce)."""
    elapsed: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class StoredRecipe:
    run_id: str
    recipe: Recipe | None
    incomplete: bool


class RecipeService(RunService):
    agents: ClassVar[dict[OutputMode, Agent[None, Recipe]]] = {mode: build_recipe_agent(mode) for mode in OUTPUT_MODES}
    """One agent per output mode; agents hold no state of a run, so every visitor shares them."""

    def check_request(self, request: str | None) -> str:
        if request is None or not request.strip():
            raise PromptRejected("Name a dish first, for example 麻婆豆腐 or pancakes.")
        if len(request) > MAX_REQUEST_CHARS:
            raise PromptRejected(f"Keep the request under {MAX_REQUEST_CHARS:,} characters.")
        return join_surrogates(request.strip())

    async def list(self, owner: str, *, limit: int = 50) -> list[SessionSummary]:
        return await self.store.list_sessions(owner, kind=RECIPE_KIND, limit=limit) if owner else []

    async def open(self, owner: str, run_id: str) -> StoredRecipe:
        if not owner or await self.store.session(run_id, owner, kind=RECIPE_KIND) is None:
            raise ConversationUnavailable("This recipe does not exist (it may have been deleted).")
        conversation = await self.store.load(run_id, scope=owner)
        messages = conversation.messages if conversation else []
        responses = [m for m in messages if isinstance(m, ModelResponse)]
        incomplete = bool(responses) and responses[-1].state == "interrupted"
        return StoredRecipe(run_id, recipe_from_messages(messages), incomplete)

    def run(
        self,
        owner: str,
        run_id: str,
        request: str,
        model_name: str,
        *,
        debounce: float | None = 0.05,
        mode: str = "tool",
        address: str | None = None,
    ) -> AsyncIterator[RecipeUpdate]:
        """Stream partial recipes as pydantic-ai validates them; the last update is final."""
        try:
            if not owner:
                raise VisitorMissing()
            request = self.check_request(request)
            checked_mode = output_mode(mode)
            if checked_mode is None:
                raise PromptRejected(f"Unknown output mode {mode!r}: use one of {', '.join(OUTPUT_MODES)}.")
        except (PromptRejected, ConversationUnavailable) as error:
            return refused(RecipeUpdate(run_id, None, RunStatus.FAILED, error=str(error)))

        async def produce(token: CancellationToken, report: Report[RecipeUpdate]) -> None:
            await self._produce(owner, run_id, request, model_name, debounce or None, checked_mode, token, report)

        def crashed(error: BaseException) -> RecipeUpdate:
            return RecipeUpdate(run_id, None, RunStatus.FAILED, error=describe_failure(error, model_name))

        paid = self.models.costs_money(model_name)
        return stream_from_own_task(
            self.active, owner, run_id, produce, crashed, kind=RECIPE_KIND, address=address, paid=paid
        )

    async def _produce(
        self,
        owner: str,
        run_id: str,
        request: str,
        model_name: str,
        debounce: float | None,
        mode: OutputMode,
        token: CancellationToken,
        report: Report[RecipeUpdate],
    ) -> None:
        started = self._clock()
        last: Recipe | None = None
        snapshots = 0

        def update(status: RunStatus, error: str | None = None) -> RecipeUpdate:
            return RecipeUpdate(run_id, last, status, snapshots, self._clock() - started, error)

        conversation = Conversation(conversation_id=run_id)
        try:
            model = self.models.resolve(model_name)
            async with self.agents[mode].run_stream(
                request,
                model=model,
                conversation=conversation,
                **self.run_options(token),
            ) as run:
                async for partial in run.stream_output(debounce_by=debounce):
                    snapshots += 1
                    last = partial
                    report(update(RunStatus.STREAMING))
            result = run.result
            assert result is not None
            last = result.output
            await self.store.save_turn(
                result.conversation, scope=owner, end=self._described(last.name or request, model_name)
            )
            report(update(RunStatus.COMPLETED))
        except RunTimedOut as error:
            report(update(RunStatus.FAILED, describe_failure(error, model_name)))
        except RunCancelled as stopped:
            messages = list(stopped.all_messages())
            if messages:
                mark_ended(messages, self.active.stop_reason, model_name)
            last = recipe_from_messages(messages) or last
            stopped_run = Conversation(messages=messages, conversation_id=run_id)
            title = (last.name if last else "") or request
            await self.store.save_turn(stopped_run, scope=owner, end=self._described(title, model_name))
            report(update(RunStatus.STOPPED))
        except UnexpectedModelBehavior as error:
            message = (
                f"The model's recipe did not validate ({error.message}). Streaming runs are not retried: "
                "the last good partial is shown; generate again, or try another output mode."
            )
            report(update(RunStatus.FAILED, message))
        except Exception as error:
            log.exception("recipe run %s failed", run_id)
            report(update(RunStatus.FAILED, describe_failure(error, model_name)))

    @staticmethod
    def _described(title: str, model_name: str) -> TurnEnd:
        """Saved with the run's messages: a recipe is never listed among the chats, even after a crash."""
        return TurnEnd(title=title_from_prompt(title), model=model_name, kind=RECIPE_KIND)
