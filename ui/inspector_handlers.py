"""Stream inspector tab: a table of deltas as they arrive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from chat.models import ModelUnavailable
from chat.stream_inspector import StreamInspector

COLUMNS = ["#", "time (ms)", "chars", "delta (delta=True)", "cumulative (delta=False)"]


class InspectorHandlers:
    def __init__(self, inspector: StreamInspector) -> None:
        self.inspector = inspector

    async def inspect(self, prompt: str, model_name: str, debounce: float) -> AsyncIterator[tuple[Any, str]]:
        if not (prompt or "").strip():
            raise gr.Error("Type a prompt first.", title="Not sent")
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
