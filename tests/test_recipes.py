"""The structured recipe tab's domain: partial recipes in order, debounce, stop, failures, storage."""

from __future__ import annotations

import asyncio
import itertools
import json
import re

import pytest
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from chat.demo_model import DemoPace
from chat.recipe_runs import RecipeService
from chat.recipes import Recipe, recipe_from_messages, render_card
from chat.runs import RunStatus
from tests.scripted import ScriptedResolver

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(any_store):
    """chat/ is written against `CataloguedStore`: every test here runs on SQLite and in memory."""
    return any_store


def service(store, pace: DemoPace | None = None, **models: FunctionModel) -> RecipeService:
    return RecipeService(store, ScriptedResolver(pace or DemoPace(0, 2000), **models))


async def run(recipes: RecipeService, dish: str, *, run_id="r1", owner="alice", model="demo", **options):
    return [u async for u in recipes.run(owner, run_id, dish, model, **options)]


async def test_partials_arrive_in_order_and_the_final_is_the_last_partial_validated(store):
    updates = await run(service(store), "麻婆豆腐", debounce=None)
    partials = [u.recipe for u in updates if u.recipe is not None]
    assert updates[-1].status is RunStatus.COMPLETED
    first_with_name = next(i for i, r in enumerate(partials) if r.name)
    first_with_ingredient = next(i for i, r in enumerate(partials) if r.ingredients)
    first_with_step = next(i for i, r in enumerate(partials) if r.steps)
    assert first_with_name < first_with_ingredient < first_with_step
    counts = [(len(r.ingredients), len(r.steps)) for r in partials]
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(counts))  # lists only grow
    final = partials[-1]
    assert final == Recipe.model_validate(final.model_dump()) and final.name == "麻婆豆腐"
    assert len(final.ingredients) == 9 and final.steps[0].startswith("豆腐")
    assert len({(len(r.ingredients), len(r.steps), r.name) for r in partials}) >= 3  # it visibly grows


@pytest.mark.parametrize("mode", ["tool", "native", "prompted"])
async def test_every_output_mode_gives_the_same_recipe(store, mode):
    updates = await run(service(store), "pancakes", run_id=f"r-{mode}", mode=mode)
    assert updates[-1].status is RunStatus.COMPLETED
    assert updates[-1].recipe.name == "Fluffy pancakes"


async def test_debounce_merges_snapshots(store):
    pace = DemoPace(first_token_delay=0, tokens_per_second=400)
    undebounced = await run(service(store, pace), "麻婆豆腐", run_id="a", debounce=None)
    debounced = await run(service(store, pace), "麻婆豆腐", run_id="b", debounce=0.05)
    assert debounced[-1].recipe == undebounced[-1].recipe
    assert debounced[-1].snapshots < undebounced[-1].snapshots / 3


async def test_stop_mid_list_keeps_an_incomplete_recipe_that_can_be_reopened(store):
    recipes = service(store, DemoPace(0, 100))
    seen = []
    async for update in recipes.run("alice", "r1", "麻婆豆腐", "demo", debounce=None):
        seen.append(update)
        if update.recipe and len(update.recipe.ingredients) >= 2:
            recipes.stop("alice", "r1")
    final = seen[-1]
    assert final.status is RunStatus.STOPPED
    assert final.recipe.name == "麻婆豆腐" and 2 <= len(final.recipe.ingredients) < 9 and not final.recipe.steps
    stored = await recipes.open("alice", "r1")
    assert stored.incomplete and stored.recipe.name == "麻婆豆腐"
    assert "incomplete" in render_card(stored.recipe, incomplete=True)
    assert [s.title for s in await recipes.list("alice")] == ["麻婆豆腐"]
    assert await store.list_sessions("alice") == []  # recipes stay out of the chat sidebar


async def test_a_recipe_belongs_to_its_owner(store):
    recipes = service(store)
    await run(recipes, "pancakes")
    assert await recipes.list("mallory") == []
    with pytest.raises(Exception, match="does not exist"):
        await recipes.open("mallory", "r1")


async def test_empty_request_and_non_recipe_request(store):
    recipes = service(store)
    empty = await run(recipes, "   ")
    assert empty[-1].status is RunStatus.FAILED and "Name a dish" in empty[-1].error
    refusal = await run(recipes, "what is 2+2", run_id="r2")
    assert refusal[-1].status is RunStatus.COMPLETED and refusal[-1].recipe.name == "Not a recipe"


async def test_malformed_tool_call_json_fails_clearly_beside_the_last_good_partial(store):
    async def broken(messages, info: AgentInfo):
        yield {0: DeltaToolCall(name=info.output_tools[0].name, json_args="", tool_call_id="c1")}
        for piece in ['{"name": "Soup", ', '"ingredients": [{"item": "leek"}], ', '"steps": "not a list"}']:
            await asyncio.sleep(0)
            yield {0: DeltaToolCall(json_args=piece)}

    recipes = service(store, broken=FunctionModel(stream_function=broken))
    updates = await run(recipes, "soup", model="broken", debounce=None)
    final = updates[-1]
    assert final.status is RunStatus.FAILED
    assert "did not validate" in final.error
    assert final.recipe is not None and final.recipe.name == "Soup"
    assert await recipes.list("alice") == []  # nothing half-written


def test_cards_render_model_text_inert():
    card = render_card(Recipe(name="<img src=x onerror=alert(1)> *bold*", steps=["[link](javascript:x)"]))
    assert re.search(r"(?<!\\)<img", card) is None and "\\<img" in card
    assert "\\*bold\\*" in card and "\\[link\\]" in card


def test_a_stopped_tool_call_is_read_back_partially():
    from pydantic_ai.messages import ModelResponse, ToolCallPart

    partial = '{"name": "Mapo", "ingredients": [{"item": "tofu", "amount": "400'
    recipe = recipe_from_messages([ModelResponse(parts=[ToolCallPart("final_result", partial)])])
    assert recipe.name == "Mapo" and recipe.ingredients[0].item == "tofu"
    assert json.loads(json.dumps(recipe.model_dump()))["name"] == "Mapo"


async def test_a_failure_while_saving_a_stopped_recipe_still_ends_the_run(store, monkeypatch, caplog):
    recipes = service(store, DemoPace(0, 100))

    async def disk_full(*args, **kwargs):
        raise OSError("disk full")

    updates = []

    async def consume() -> None:
        async for update in recipes.run("alice", "r1", "麻婆豆腐", "demo", debounce=None):
            updates.append(update)
            if update.recipe and update.recipe.name and not update.final:
                monkeypatch.setattr(store, "save", disk_full)
                recipes.stop("alice", "r1")

    await asyncio.wait_for(consume(), timeout=30)  # a lost final update would hang here
    assert updates[-1].status is RunStatus.FAILED and "send it again" in updates[-1].error
    assert "disk full" not in updates[-1].error  # the internal error stays in the server's log
    assert "disk full" in caplog.text


def test_the_status_line_says_in_words_how_far_the_recipe_is():
    from chat.recipes import progress_line, reopened_line

    assert progress_line("streaming", 12, 12, 0.42) == "Writing… 12 partial recipes so far · 0.4 s"
    assert (
        progress_line("completed", 59, 40, 1.234)
        == "✅ Completed in 1.2 s, after 59 partial recipes, 40 of them drawn."
    )
    assert progress_line("stopped", 1, 1, 0.3) == "⏹ Stopped after 0.3 s, at 1 partial recipe: the card is incomplete."
    assert reopened_line(True).startswith("Reopened: stopped") and reopened_line(False) == "Reopened: completed."
