"""The Analyst -> writer tab: both streams visible, one Stop for whichever is running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from chat.identity import client_address
from chat.runs import RunStatus
from chat.wings.handoff import HandoffService
from ui.events import PRIVATE
from ui.visitors import RunHandlers, Visitors, new_conversation_id


class HandoffHandlers(RunHandlers):
    def __init__(self, handoff: HandoffService, visitors: Visitors) -> None:
        super().__init__(handoff, visitors)
        self.handoff = handoff

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
        run_id = run_id or new_conversation_id()
        async for update in self.handoff.run(owner or "", run_id, data, model_name, address=client_address(request)):
            note = {
                RunStatus.STREAMING: f"**{update.stage.value}** is writing…",
                RunStatus.COMPLETED: "Done: both agents' messages are stored as one conversation.",
                RunStatus.STOPPED: f"⏹ Stopped during the **{update.stage.value}** stage; the partial text is kept.",
                RunStatus.FAILED: f"⚠️ {update.error}",
            }[update.status]
            yield update.analysis or "*…*", update.article or "*The writer starts when the analysis is done.*", note


def handoff_tab(
    handlers: HandoffHandlers,
    *,
    model: gr.Component,
    owner: gr.Component,
    concurrency_limit: int,
    after_run: tuple[Any, ...],
) -> None:
    """The tab's content and events; call inside its `gr.Tab`. `after_run`: the event (fn, inputs, outputs)
    that follows each run, since the run is a conversation of its own in the sidebar."""
    gr.Markdown(
        "Two agents, one conversation: the **analyst** (its own instructions) streams an analysis of "
        "your data; the **writer** (other instructions) continues from the analyst's `new_messages()` "
        "and streams a short article."
    )
    with gr.Row(equal_height=True):
        handoff_data = gr.Textbox(
            placeholder="Data or a question, e.g. Monthly sales: 120, 135, 128, 160, 190",
            show_label=False,
            lines=2,
            scale=6,
            elem_id="handoff-data",
        )
        handoff_go = gr.Button("Analyse and write", variant="primary", scale=1, elem_id="handoff-go")
        handoff_stop = gr.Button("Stop", variant="stop", scale=1, elem_id="handoff-stop")
    handoff_note = gr.Markdown(elem_id="handoff-note")
    with gr.Row():
        analysis = gr.Markdown("*The analysis appears here.*", elem_id="analysis", label="Analyst")
        article = gr.Markdown("*The article appears here.*", elem_id="article", label="Writer")
    handoff_run = gr.State(None)

    # The run is named first, so Stop reaches it from its first moment; bad input fails in the run itself.
    gr.on([handoff_go.click, handoff_data.submit], new_conversation_id, None, handoff_run, **PRIVATE).success(
        handlers.run,
        [handoff_data, model, owner, handoff_run],
        [analysis, article, handoff_note],
        concurrency_limit=concurrency_limit,
        **PRIVATE,
    ).then(*after_run, **PRIVATE)
    handoff_stop.click(handlers.stop, [owner, handoff_run], None, **PRIVATE)
