"""Analyst -> writer tab handlers: both streams visible, one Stop for whichever is running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from chat.handoff import HandoffService, HandoffStatus
from ui.visitors import Visitors, new_conversation_id


class HandoffHandlers:
    def __init__(self, handoff: HandoffService, visitors: Visitors) -> None:
        self.handoff = handoff
        self.visitors = visitors

    def prepare(self, data: str) -> str:
        if not (data or "").strip():
            raise gr.Error("Give the analyst some data or a question first.", title="Not sent")
        return new_conversation_id()

    async def run(
        self,
        data: str,
        model_name: str,
        owner: str | None,
        run_id: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[tuple[Any, ...]]:
        owner = self.visitors.owner(owner, request, profile)
        async for update in self.handoff.run(owner or "", run_id or new_conversation_id(), data, model_name):
            note = {
                HandoffStatus.STREAMING: f"**{update.stage.value}** is writing…",
                HandoffStatus.COMPLETED: "Done: both agents' messages are stored as one conversation.",
                HandoffStatus.STOPPED: f"⏹ Stopped during the **{update.stage.value}** stage; the partial text is kept.",
                HandoffStatus.FAILED: f"⚠️ {update.error}",
            }[update.status]
            yield update.analysis or "*…*", update.article or "*The writer starts when the analysis is done.*", note

    def stop(
        self, owner: str | None, run_id: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> None:
        owner = self.visitors.owner(owner, request, profile)
        if owner and run_id:
            self.handoff.stop(owner, run_id)
