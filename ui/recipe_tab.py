"""The Recipe tab: start a run, stream the growing card, stop it, reopen earlier recipes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from chat.errors import ConversationUnavailable
from chat.identity import client_address
from chat.recipe_runs import RecipeService
from chat.recipes import progress_line, recipe_json, render_card, reopened_line
from chat.runs import RunStatus
from ui.events import PRIVATE
from ui.sidebar import session_label
from ui.visitors import RunHandlers, Visitors, new_conversation_id


class RecipeHandlers(RunHandlers):
    def __init__(self, recipes: RecipeService, visitors: Visitors) -> None:
        super().__init__(recipes, visitors)
        self.recipes = recipes

    async def generate(
        self,
        dish: str,
        model_name: str,
        mode: str,
        debounce: float,
        owner: str | None,
        run_id: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Stream the recipe card, its JSON and the counters; the last update is the validated recipe."""
        owner = self.visitors.owner(owner, request, profile)
        run_id = run_id or new_conversation_id()
        rendered = 0
        async for update in self.recipes.run(
            owner or "",
            run_id,
            dish,
            model_name,
            debounce=float(debounce or 0),
            mode=mode,
            address=client_address(request),
        ):
            if not update.final:  # the final update is the validated recipe, not one more snapshot
                rendered += 1
            card = render_card(update.recipe, incomplete=update.status is RunStatus.STOPPED)
            counters = progress_line(update.status.value, update.snapshots, rendered, update.elapsed)
            if update.error:  # like every tab: the reason, on the tab's status line
                counters = f"⚠️ {update.error}"
            yield card, recipe_json(update.recipe), counters

    async def choices(self, owner: str | None) -> Any:
        items = [(session_label(summary), summary.conversation_id) for summary in await self.recipes.list(owner or "")]
        return gr.update(choices=items, value=None)

    async def refresh(self, owner: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None) -> Any:
        return await self.choices(self.visitors.owner(owner, request, profile))

    async def reopen(
        self, owner: str | None, run_id: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, ...]:
        owner = self.visitors.owner(owner, request, profile)
        if not run_id:
            return gr.skip(), gr.skip(), gr.skip()
        try:
            stored = await self.recipes.open(owner or "", run_id)
        except ConversationUnavailable as problem:
            return gr.skip(), gr.skip(), f"⚠️ {problem}"
        return (
            render_card(stored.recipe, incomplete=stored.incomplete),
            recipe_json(stored.recipe),
            reopened_line(stored.incomplete),
        )


def recipe_tab(
    handlers: RecipeHandlers, *, page: gr.Blocks, model: gr.Component, owner: gr.Component, concurrency_limit: int
) -> None:
    """The tab's content and events; call inside its `gr.Tab`."""
    gr.Markdown(
        "Ask for a dish and watch a typed `Recipe` fill in: pydantic-ai validates each partial "
        "object as it streams (name first, then ingredients one by one, then steps)."
    )
    with gr.Row(equal_height=True):
        dish = gr.Textbox(
            placeholder="A dish, e.g. 麻婆豆腐 or pancakes", label="Dish", show_label=False, scale=6, elem_id="dish"
        )
        # One control, as in the chat: Generate while idle, Stop (in its place) while a recipe is written.
        generate = gr.Button("Generate", variant="primary", scale=1, elem_id="generate")
        stop_recipe = gr.Button("Stop", variant="stop", scale=1, visible=False, elem_id="stop-recipe")
    counters = gr.Markdown(elem_id="recipe-counters")
    with gr.Row():
        card = gr.Markdown("*Your recipe appears here as it streams.*", elem_id="recipe-card")
        # Wrapped: a box that scrolls sideways is a region a keyboard cannot reach (axe-core's scrollable-region-focusable).
        recipe_view = gr.Code("{}", language="json", label="Live JSON", wrap_lines=True, elem_id="recipe-json")
    with gr.Accordion("Advanced", open=False, elem_id="recipe-advanced"):
        output_mode = gr.Radio(
            ["tool", "native", "prompted"],
            value="tool",
            label="Output mode",
            info="tool calls (default); native JSON schema or a prompted JSON for models without tools",
        )
        debounce = gr.Slider(
            0, 0.5, value=0.05, step=0.01, label="Debounce (s)", info="how long pydantic-ai merges chunks"
        )
    saved_recipes = gr.Dropdown([], label="Your recipes", elem_id="saved-recipes")
    recipe_run = gr.State(None)

    # The run is named first, so Stop reaches it from its first moment; bad input fails in the run itself.
    # The list of recipes is refreshed once the recipe ends, not an output of its stream: Gradio builds an
    # output's component anew on every update that skips it (benchmarks/ANALYSIS.md).
    gr.on([dish.submit, generate.click], starting, None, [recipe_run, generate, stop_recipe], **PRIVATE).success(
        handlers.generate,
        [dish, model, output_mode, debounce, owner, recipe_run],
        [card, recipe_view, counters],
        api_name="recipe",
        concurrency_limit=concurrency_limit,
    ).then(idle, None, [generate, stop_recipe], **PRIVATE).then(handlers.refresh, owner, saved_recipes, **PRIVATE)
    stop_recipe.click(handlers.stop, [owner, recipe_run], None, **PRIVATE)
    saved_recipes.input(handlers.reopen, [owner, saved_recipes], [card, recipe_view, counters], **PRIVATE)
    page.load(handlers.refresh, owner, saved_recipes, **PRIVATE)


def starting() -> tuple[Any, ...]:
    """A recipe starts: its run's name, and Stop in Generate's place."""
    return new_conversation_id(), gr.update(visible=False), gr.update(visible=True)


def idle() -> tuple[Any, ...]:
    """The recipe ended (completed, stopped or failed): Generate again."""
    return gr.update(visible=True), gr.update(visible=False)
