"""The chat's Stop: a request to the app's own `POST /api/chat/stop`, with Gradio's event as the fallback.

Through Gradio's `/run/predict`, a Stop costs the server about 3 ms of CPU before the handler starts;
the app's route costs about 0.5 ms. With hundreds of answers stopped together that is most of the wait
(benchmarks/ANALYSIS.md, "Stop under load"). So each answer's first update hands the page the exact
request that stops that run (its conversation and the run's own tag) and Stop sends it. The route stops
only the run of that tag: a request left over from an earlier answer stops nothing and starts no
waiting Stop. When it stops nothing (a signed-in visitor, whose owner is not the cookie's; a browser
without the cookie; an answer still waiting for a slot; the route unreachable), the page presses
Gradio's own Stop event, which reads the conversation from the page's session on the server.
"""

from __future__ import annotations

import json
from abc import ABCMeta
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.component_meta import ComponentMeta

FALLBACK_ID = "stop-fallback"


class _NoStubFile(ComponentMeta):
    """Gradio writes a `.pyi` beside the source of every component class it sees defined (for its own
    components' events); a subclass that adds no events needs none, and an app must not write into its
    own source folder."""

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> type:
        return ABCMeta.__new__(mcs, name, bases, attrs)


class PageOnlyText(gr.Textbox, metaclass=_NoStubFile):
    """Hidden text the page's scripts read and API clients never receive: Gradio leaves it out of an
    endpoint's values as it does a State's (a State's value never reaches the page at all)."""

    is_template = True  # drawn as the Textbox it is

    @property
    def skip_api(self) -> bool:
        return True


def stop_request(conversation_id: str, run_tag: str) -> str:
    """The body of `POST /api/chat/stop` that stops this run and no other."""
    return json.dumps({"conversation_id": conversation_id, "run": run_tag})


STOP_BY_ROUTE = f"""async (request) => {{
    if (request) {{
        try {{
            const response = await fetch('api/chat/stop', {{
                method: 'POST',
                headers: {{'Content-Type': 'application/json'}},
                credentials: 'same-origin',
                body: request,
            }});
            if (response.ok && (await response.json()).stopped) return;
        }} catch (error) {{
            // unreachable: Gradio's event below
        }}
    }}
    const fallback = document.getElementById('{FALLBACK_ID}');
    (fallback && fallback.tagName !== 'BUTTON' ? fallback.querySelector('button') : fallback)?.click();
}}"""


@dataclass
class StopWiring:
    """What the chat's Stop needs: Gradio's handler with its inputs (the fallback), and where the
    answering run's stop request is kept in the page."""

    handler: Callable[..., Any]
    inputs: list[Any]
    request: PageOnlyText
    fallback: gr.Button

    @classmethod
    def build(cls, handler: Callable[..., Any], inputs: list[Any]) -> StopWiring:
        """Its two hidden components go where this is called (inside the page, before the chat)."""
        return cls(
            handler,
            inputs,
            PageOnlyText(visible="hidden", elem_id="stop-request", label="stop request"),
            gr.Button("Stop", visible="hidden", elem_id=FALLBACK_ID),
        )

    def wire(self, stop_trigger: Any, **options: Any) -> None:
        stop_trigger(None, [self.request], None, js=STOP_BY_ROUTE, **options)
        self.fallback.click(self.handler, self.inputs, None, api_name="stop", **options)
