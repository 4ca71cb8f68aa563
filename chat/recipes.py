"""The structured recipe tab's domain: the `Recipe` schema, its agent, and how a (partial) recipe renders.

Fields have defaults and flat fields come before lists, so pydantic-ai's partial validation accepts
a snapshot early (one missing a required field would be skipped) and the name shows up first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

import pydantic_core
from pydantic import BaseModel, Field, ValidationError
from pydantic_ai import Agent, NativeOutput, PromptedOutput
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart

from chat.untrusted import escape_markdown

OutputMode = Literal["tool", "native", "prompted"]
OUTPUT_MODES: tuple[OutputMode, ...] = ("tool", "native", "prompted")


def output_mode(name: str) -> OutputMode | None:
    """The output mode of this name, or None for a name that is not one (from a client, say)."""
    return next((mode for mode in OUTPUT_MODES if mode == name), None)


RECIPE_INSTRUCTIONS = (
    "You write recipes. For any dish the user names, return one recipe: its name (in the user's "
    "language), servings, total time in minutes, ingredients with amounts, and short numbered steps. "
    "If the request is not about food, return a recipe named 'Not a recipe' whose single step "
    "explains that you only write recipes."
)


class Ingredient(BaseModel):
    item: str = ""
    amount: str = ""


class Recipe(BaseModel):
    name: str = Field("", description="The dish, in the user's language")
    servings: int | None = None
    total_minutes: int | None = None
    ingredients: list[Ingredient] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)


def build_recipe_agent(mode: OutputMode = "tool") -> Agent[None, Recipe]:
    """Tool output (the default) works with any tool-calling model; native and prompted output serve the rest."""
    output = {"tool": Recipe, "native": NativeOutput(Recipe), "prompted": PromptedOutput(Recipe)}[mode]
    return Agent(None, output_type=output, instructions=RECIPE_INSTRUCTIONS, name="recipe", defer_model_check=True)


def recipe_from_messages(messages: Sequence[ModelMessage]) -> Recipe | None:
    """The last recipe a model wrote in these messages, finished or not (a stopped one validates partially)."""
    for message in reversed(messages):
        if not isinstance(message, ModelResponse):
            continue
        for part in reversed(message.parts):
            raw: str | dict | None = None
            if isinstance(part, ToolCallPart):
                raw = part.args
            elif isinstance(part, TextPart):
                raw = _json_in(part.content)
            if raw is None:
                continue
            try:
                data = raw if isinstance(raw, dict) else pydantic_core.from_json(raw, allow_partial=True)
                return Recipe.model_validate(data)
            except (ValueError, ValidationError):
                continue
    return None


def _json_in(text: str) -> str | None:
    start = text.find("{")
    return text[start:] if start >= 0 else None


def render_card(recipe: Recipe | None, *, incomplete: bool = False) -> str:
    """A recipe card in Markdown: heading, servings and time, ingredient list, numbered steps."""
    if recipe is None or recipe == Recipe():
        return "*Waiting for the recipe…*" if not incomplete else "*Stopped before anything arrived.*"
    lines = [f"## {escape_markdown(recipe.name) or '…'}"]
    facts = []
    if recipe.servings:
        facts.append(f"🍽 {recipe.servings} servings")
    if recipe.total_minutes:
        facts.append(f"⏱ {recipe.total_minutes} min")
    if facts:
        lines.append(" · ".join(facts))
    if recipe.ingredients:
        lines += ["", "**Ingredients**", ""]
        for ingredient in recipe.ingredients:
            amount = f" — {escape_markdown(ingredient.amount)}" if ingredient.amount else ""
            lines.append(f"- {escape_markdown(ingredient.item)}{amount}")
    if recipe.steps:
        lines += ["", "**Steps**", ""]
        lines += [f"{number}. {escape_markdown(step)}" for number, step in enumerate(recipe.steps, start=1)]
    if incomplete:
        lines += ["", "*⏹ incomplete: stopped before the recipe was finished*"]
    return "\n".join(lines)


def recipe_json(recipe: Recipe | None) -> str:
    return json.dumps(recipe.model_dump() if recipe else {}, ensure_ascii=False, indent=2)


def progress_line(status: str, snapshots: int, drawn: int, elapsed: float) -> str:
    """The recipe tab's status line in plain words: how far the run is, and how many of the partial recipes
    pydantic-ai validated on the way (`snapshots`) the card drew (`drawn`: fewer when updates were merged).

    `status` is a `RunStatus` value ("streaming", "completed", "stopped", ...)."""
    partials = f"{snapshots} partial recipe{'s' if snapshots != 1 else ''}"
    if drawn != snapshots:
        partials += f", {drawn} of them drawn"
    if status == "streaming":
        return f"Writing… {partials} so far · {elapsed:.1f} s"
    if status == "completed":
        return f"✅ Completed in {elapsed:.1f} s, after {partials}."
    if status == "stopped":
        return f"⏹ Stopped after {elapsed:.1f} s, at {partials}: the card is incomplete."
    return f"Ended ({status.replace('_', ' ')}) after {elapsed:.1f} s, at {partials}."


def reopened_line(incomplete: bool) -> str:
    """The status line of a recipe opened from *Your recipes*."""
    return "Reopened: stopped before the end, so the card is incomplete." if incomplete else "Reopened: completed."
