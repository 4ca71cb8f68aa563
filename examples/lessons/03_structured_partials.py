"""Lesson 3: stream structured output, a `Recipe`, as partial validated snapshots with `stream_output()`.

What to notice: each line is a validated `Recipe` built from the JSON received so far. The name grows
word by word ('Fluffy', then 'Fluffy pancakes'), then servings, ingredients and steps fill in.
`Recipe` (chat/recipes.py) gives every field a default on purpose: pydantic-ai skips, silently, any
snapshot that fails validation, and one missing a required field fails. The `StrictRecipe` run below
has required fields: its first snapshot only arrives once `steps` has started, far into the stream.

Run it from the repo root:

    python examples/lessons/03_structured_partials.py
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `chat` can be imported

from pydantic import BaseModel
from pydantic_ai import Agent

from chat.demo_model import DemoModel, DemoPace
from chat.recipes import Recipe


class StrictRecipe(BaseModel):  # no defaults: a snapshot without all three fields is not valid yet
    name: str
    servings: int
    steps: list[str]


async def snapshots(output_type: type[BaseModel]) -> list[BaseModel]:
    agent = Agent(DemoModel(DemoPace.instant()), output_type=output_type)
    async with agent.run_stream("How do I make pancakes?") as result:
        return [snapshot async for snapshot in result.stream_output(debounce_by=None)]


async def main() -> None:
    recipes = await snapshots(Recipe)
    last_shape = None
    for number, recipe in enumerate(recipes, start=1):
        shape = (recipe.name, recipe.servings, recipe.total_minutes, len(recipe.ingredients), len(recipe.steps))
        if shape != last_shape:  # print only visible changes: the name grows, a field or a list item appears
            print(
                f"#{number:3} name={recipe.name!r} servings={recipe.servings} minutes={recipe.total_minutes} "
                f"ingredients={len(recipe.ingredients)} steps={len(recipe.steps)}"
            )
        last_shape = shape
    print(f"Recipe (defaults): {len(recipes)} snapshots; the last one is the final validated output")
    strict = await snapshots(StrictRecipe)
    print(f"StrictRecipe (required fields): {len(strict)} snapshots; the first: {strict[0]!r}")


asyncio.run(main())
