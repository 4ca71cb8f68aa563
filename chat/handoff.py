"""Analyst -> writer: two agents with their own instructions share one conversation.

The analyst streams an analysis of the user's data; the writer continues from the analyst's
`new_messages()` (so the analysis is in its history) and streams a short article. Both are stored
together as one conversation of the owner's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic_ai import Agent, CancellationToken
from pydantic_ai.conversation import Conversation
from pydantic_ai.exceptions import RunCancelled
from pydantic_ai.messages import ModelMessage, ModelResponse

from chat.endings import END_KEY
from chat.errors import PromptRejected, describe_failure
from chat.models import ModelResolver
from chat.runs import ActiveTurns, Report, stream_from_own_task
from chat.text import join_surrogates, title_from_prompt, visible_prefix
from storage.sqlite_store import SQLiteConversationStore

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


class Stage(enum.StrEnum):
    ANALYST = "analyst"
    WRITER = "writer"


class HandoffStatus(enum.StrEnum):
    STREAMING = "streaming"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class HandoffUpdate:
    stage: Stage
    analysis: str
    article: str
    status: HandoffStatus = HandoffStatus.STREAMING
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.status is not HandoffStatus.STREAMING


class HandoffService:
    def __init__(
        self,
        store: SQLiteConversationStore,
        models: ModelResolver,
        *,
        request_timeout: float = 60.0,
        active: ActiveTurns | None = None,
    ) -> None:
        self.store = store
        self.models = models
        self.request_timeout = request_timeout
        self.analyst = Agent(
            None, output_type=str, instructions=ANALYST_INSTRUCTIONS, name="analyst", defer_model_check=True
        )
        self.writer = Agent(
            None, output_type=str, instructions=WRITER_INSTRUCTIONS, name="writer", defer_model_check=True
        )
        self.active = active if active is not None else ActiveTurns()  # an idle one is empty, so falsy
        """Shared with the chat service in the app, so one shutdown drains every kind of run."""

    def stop(self, owner: str, run_id: str) -> bool:
        return bool(owner) and self.active.stop(owner, run_id)

    async def run(
        self, owner: str, run_id: str, data: str, model_name: str, *, address: str | None = None
    ) -> AsyncIterator[HandoffUpdate]:
        if not owner or not (data or "").strip():
            message = "Give the analyst some data or a question first." if owner else "Reload the page."
            yield HandoffUpdate(Stage.ANALYST, "", "", HandoffStatus.FAILED, message)
            return

        async def produce(token: CancellationToken, report: Report[HandoffUpdate]) -> None:
            await self._produce(owner, run_id, join_surrogates(data.strip()), model_name, token, report)

        def crashed(error: BaseException) -> HandoffUpdate:
            return HandoffUpdate(Stage.ANALYST, "", "", HandoffStatus.FAILED, describe_failure(error, model_name))

        running = stream_from_own_task(self.active, owner, run_id, produce, crashed, address=address)
        async with contextlib.aclosing(running) as updates:
            async for update in updates:
                yield update

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

        def update(status: HandoffStatus = HandoffStatus.STREAMING, error: str | None = None) -> HandoffUpdate:
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
                    cancellation_token=token,
                    model_settings={"timeout": self.request_timeout},
                ) as run:
                    async for delta in run.stream_text(delta=True, debounce_by=None):
                        texts[stage] += delta
                        report(update())
                history = [*history, *run.new_messages()]
                stored = history
            await self._store(owner, run_id, data, stored)
            report(update(HandoffStatus.COMPLETED))
        except RunCancelled as stopped:
            partial = [*stored, *stopped.new_messages()] if stage is Stage.WRITER else list(stopped.new_messages())
            if partial and isinstance(partial[-1], ModelResponse):
                ended = {**(partial[-1].metadata or {}), END_KEY: self.active.stop_reason}
                partial[-1] = dataclasses.replace(partial[-1], state="interrupted", metadata=ended)
            await self._store(owner, run_id, data, partial)
            report(update(HandoffStatus.STOPPED))
        except PromptRejected as error:
            report(update(HandoffStatus.FAILED, str(error)))
        except Exception as error:
            log.exception("hand-off %s failed", run_id)
            report(update(HandoffStatus.FAILED, describe_failure(error, model_name)))

    async def _store(self, owner: str, run_id: str, data: str, messages: list[ModelMessage]) -> None:
        if not messages:
            return
        # An ordinary chat: listed and searchable in the sidebar, and it can be continued there.
        await self.store.save(Conversation(messages=messages, conversation_id=run_id), scope=owner)
        self.store.set_title(run_id, owner, "Analysis: " + title_from_prompt(data, limit=40))
