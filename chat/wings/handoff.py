"""Analyst -> writer: two agents with their own instructions share one conversation.

The analyst streams an analysis of the user's data; the writer continues from the analyst's
`new_messages()` (so the analysis is in its history) and streams a short article. Both are stored
together as one conversation of the owner's.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic_ai import Agent, CancellationToken
from pydantic_ai.conversation import Conversation
from pydantic_ai.exceptions import RunCancelled
from pydantic_ai.messages import ModelMessage

from chat.endings import mark_ended
from chat.errors import PromptRejected, describe_failure
from chat.runs import Report, RunStatus, RunUpdate, refused, stream_from_own_task
from chat.services import RunService
from chat.text import join_surrogates, title_from_prompt, visible_prefix
from storage.catalogue import TurnEnd

log = logging.getLogger(__name__)

ANALYST_INSTRUCTIONS = (
    "You are the ANALYST. Analyse the data or question the user gives: the key numbers, the trend, "
    "anything unusual, and the caveats. Answer as a short Markdown bullet list; no prose article."
)
WRITER_INSTRUCTIONS = (
    "You are the WRITER. Using the analysis earlier in this conversation, write a short article for a "
    "general audience: a headline and two short paragraphs. Do not invent numbers the analysis lacks."
)
WRITER_PROMPT = "Write the short article from the analysis above."
HANDOFF_KIND = "handoff"
"""What `ActiveTurns.live` knows a hand-off's run by."""


class Stage(enum.StrEnum):
    ANALYST = "analyst"
    WRITER = "writer"


@dataclass(frozen=True)
class HandoffUpdate(RunUpdate):
    stage: Stage
    analysis: str
    article: str
    status: RunStatus = RunStatus.STREAMING
    error: str | None = None


class HandoffService(RunService):
    # Agents hold no state of a run: one pair serves every visitor (the model is given per run).
    analyst = Agent(None, output_type=str, instructions=ANALYST_INSTRUCTIONS, name="analyst", defer_model_check=True)
    writer = Agent(None, output_type=str, instructions=WRITER_INSTRUCTIONS, name="writer", defer_model_check=True)

    def run(
        self, owner: str, run_id: str, data: str, model_name: str, *, address: str | None = None
    ) -> AsyncIterator[HandoffUpdate]:
        if not owner or not (data or "").strip():
            message = "Give the analyst some data or a question first." if owner else "Reload the page."
            return refused(HandoffUpdate(Stage.ANALYST, "", "", RunStatus.FAILED, message))

        async def produce(token: CancellationToken, report: Report[HandoffUpdate]) -> None:
            await self._produce(owner, run_id, join_surrogates(data.strip()), model_name, token, report)

        def crashed(error: BaseException) -> HandoffUpdate:
            return HandoffUpdate(Stage.ANALYST, "", "", RunStatus.FAILED, describe_failure(error, model_name))

        paid = self.models.costs_money(model_name)
        return stream_from_own_task(
            self.active, owner, run_id, produce, crashed, kind=HANDOFF_KIND, address=address, paid=paid
        )

    async def _produce(
        self,
        owner: str,
        run_id: str,
        data: str,
        model_name: str,
        token: CancellationToken,
        report: Report[HandoffUpdate],
    ) -> None:
        texts = {Stage.ANALYST: "", Stage.WRITER: ""}
        stored: list[ModelMessage] = []
        stage = Stage.ANALYST

        def update(status: RunStatus = RunStatus.STREAMING, error: str | None = None) -> HandoffUpdate:
            analysis, article = visible_prefix(texts[Stage.ANALYST]), visible_prefix(texts[Stage.WRITER])
            return HandoffUpdate(stage, analysis, article, status, error)

        try:
            model = self.models.resolve(model_name)
            history: list[ModelMessage] = []
            for stage, agent, prompt in (
                (Stage.ANALYST, self.analyst, data),
                (Stage.WRITER, self.writer, WRITER_PROMPT),
            ):
                async with agent.run_stream(
                    prompt,
                    model=model,
                    message_history=history,
                    **self.run_options(token),
                ) as run:
                    async for delta in run.stream_text(delta=True, debounce_by=None):
                        texts[stage] += delta
                        report(update())
                history = [*history, *run.new_messages()]
                stored = history
            await self._store(owner, run_id, data, stored)
            report(update(RunStatus.COMPLETED))
        except RunCancelled as stopped:
            partial = [*stored, *stopped.new_messages()] if stage is Stage.WRITER else list(stopped.new_messages())
            if partial:
                mark_ended(partial, self.active.stop_reason, model_name)
            await self._store(owner, run_id, data, partial)
            report(update(RunStatus.STOPPED))
        except PromptRejected as error:
            report(update(RunStatus.FAILED, str(error)))
        except Exception as error:
            log.exception("hand-off %s failed", run_id)
            report(update(RunStatus.FAILED, describe_failure(error, model_name)))

    async def _store(self, owner: str, run_id: str, data: str, messages: list[ModelMessage]) -> None:
        if not messages:
            return
        # An ordinary chat: listed and searchable in the sidebar, and it can be continued there.
        analysis = Conversation(messages=messages, conversation_id=run_id)
        title = "Analysis: " + title_from_prompt(data, limit=40)
        await self.store.save_turn(analysis, scope=owner, end=TurnEnd(title=title))
