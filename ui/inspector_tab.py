"""The Stream inspector tab: each `stream_text(delta=True)` delta as it arrives, in a table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from chat.models import ModelUnavailable
from chat.wings.stream_inspector import StreamInspector
from ui.events import PRIVATE

COLUMNS = ["#", "time (ms)", "chars", "delta (delta=True)", "cumulative (delta=False)"]


class InspectorHandlers:
    def __init__(self, inspector: StreamInspector) -> None:
        self.inspector = inspector

    async def inspect(self, prompt: str, model_name: str, debounce: float) -> AsyncIterator[tuple[Any, str]]:
        if not (prompt or "").strip():
            yield [], "⚠️ Type a prompt first."
            return
        rows: list[list[Any]] = []
        try:
            async for event in self.inspector.events(prompt, model_name, debounce):
                rows.append([event.number, round(event.offset_ms), event.size, event.delta, event.cumulative])
                yield rows, f"{len(rows)} deltas so far"
        except ModelUnavailable as problem:
            yield rows, f"⚠️ {problem}"
            return
        merged = f" (debounce {debounce:g} s merges chunks)" if debounce else " (no debounce: one per chunk)"
        yield rows, f"{len(rows)} deltas{merged}"


def inspector_tab(handlers: InspectorHandlers, *, model: gr.Component) -> None:
    """The tab's content and events; call inside its `gr.Tab`."""
    gr.Markdown(
        "Each `stream_text(delta=True)` delta as it arrives, with its time offset and size, beside the "
        "cumulative text `delta=False` yields at that moment. Raise the debounce to see chunks merge."
    )
    with gr.Row(equal_height=True):
        probe = gr.Textbox(value="count to 40", show_label=False, scale=5, elem_id="probe", placeholder="A prompt")
        probe_debounce = gr.Slider(0, 0.5, value=0, step=0.01, label="debounce_by (s)", scale=3)
        probe_go = gr.Button("Stream", variant="primary", scale=1, elem_id="probe-go")
    probe_note = gr.Markdown(elem_id="probe-note")
    probe_table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, elem_id="probe-table", max_height=480)
    gr.on(
        [probe_go.click, probe.submit],
        handlers.inspect,
        [probe, model, probe_debounce],
        [probe_table, probe_note],
        **PRIVATE,
    )
