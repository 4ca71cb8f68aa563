"""The chat agent's tools: arithmetic, the date and time, unit conversion, and a search of your own chats.

Plain functions with docstrings: pydantic-ai builds each tool's JSON schema from the signature and
the docstring, the model decides when to call one, and the run sends the result back in its next
request. A tool that cannot do what it was asked raises `ModelRetry`: the model sees the reason and
can try again, and the chat shows the failed step.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic_ai import FunctionToolset, ModelRetry, RunContext, Tool
from pydantic_ai.toolsets import AbstractToolset

from chat.turn_hooks import Turn, TurnHooks
from storage.catalogue import CataloguedStore

MAX_EXPRESSION_CHARS = 200
MAX_POWER_BITS = 100_000
"""The largest power `calculate` works out, in bits: `9**9**9` would take the server's CPU for minutes."""
MAX_SEARCH_HITS = 5


@dataclass(frozen=True)
class ChatDeps:
    """What a turn's tools may know: whose turn it is (their search sees only their chats), and where."""

    owner: str
    store: CataloguedStore
    conversation_id: str | None = None
    """The chat this turn answers in (a tool must not delete it from under its own answer)."""
    time_zone: str | None = None
    """The visitor's IANA time zone, when the page told it."""


class ChatTools(TurnHooks):
    """A wing: the chat's own tools (`chat_tools`) join every turn's run, told whose turn it is (`deps`)."""

    def __init__(
        self, store: CataloguedStore, toolset: FunctionToolset[ChatDeps] | None = None, *, ask_approval: bool = True
    ) -> None:
        self.store = store
        self.toolset: AbstractToolset[ChatDeps] = toolset or chat_tools()
        if not ask_approval:  # without the approvals wing, a call waiting for one would block the chat for good
            self.toolset = self.toolset.filtered(lambda _, tool: tool.kind != "unapproved")

    async def prepare(self, turn: Turn) -> None:
        turn.toolsets.append(self.toolset)
        turn.deps = ChatDeps(turn.owner, self.store, turn.conversation_id, known_zone(turn.time_zone))


_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "sin": math.sin, "cos": math.cos, "tan": math.tan}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_WRITTEN = str.maketrans({"×": "*", "·": "*", "÷": "/", "^": "**", "−": "-"})


def calculate(expression: str) -> str:
    """Work out an arithmetic expression exactly, for example `(17 + 4) * 3.5` or `sqrt(2) ^ 10`.

    Args:
        expression: numbers, + - * / // % ^ (power), parentheses, sqrt, abs, round, sin, cos, tan, pi, e.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ModelRetry(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters: split it up.")
    try:
        tree = ast.parse(expression.translate(_WRITTEN).strip(), mode="eval")
        value = _evaluate(tree.body)
    except ZeroDivisionError:
        raise ModelRetry("That divides by zero.") from None
    except (SyntaxError, ValueError, TypeError, OverflowError) as problem:
        raise ModelRetry(f"Cannot calculate {expression!r}: {problem or 'not arithmetic'}.") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value) if isinstance(value, int) else f"{value:.10g}"


def _evaluate(node: ast.AST) -> float | int:
    """Only numbers, the operators above and the listed functions: never `eval`, never a name lookup."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) * max(abs(int(left)).bit_length(), 1) > MAX_POWER_BITS:
            raise ValueError("the result would be too large to work out here")
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and len(node.args) == 1
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](_evaluate(node.args[0]))
    raise ValueError("only numbers, + - * / // % ^, parentheses and " + ", ".join([*_FUNCTIONS, *_CONSTANTS]))


def known_zone(name: str | None) -> str | None:
    """`name` if it is an IANA time zone this server knows, else None (a browser's, a header's: untrusted)."""
    if not name or len(name) > 64:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def current_time(ctx: RunContext[ChatDeps], time_zone: str | None = None) -> str:
    """Today's date, the weekday and the time now.

    Args:
        time_zone: an IANA time zone such as `Europe/Berlin`; by default the visitor's own, else UTC.
    """
    name = time_zone or ctx.deps.time_zone or "UTC"
    if known_zone(name) is None:
        raise ModelRetry(f"{name!r} is not a time zone name; use one like Asia/Tokyo or America/Lima.")
    now = datetime.now(UTC).astimezone(ZoneInfo(name))
    return f"{now:%A %Y-%m-%d %H:%M} ({name})"


# Each unit: its dimension and its size in the dimension's base unit (metre, kilogram, litre, m/s).
_UNITS: dict[str, tuple[str, float]] = {
    "mm": ("length", 0.001),
    "cm": ("length", 0.01),
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "in": ("length", 0.0254),
    "ft": ("length", 0.3048),
    "yd": ("length", 0.9144),
    "mi": ("length", 1609.344),
    "g": ("mass", 0.001),
    "kg": ("mass", 1.0),
    "oz": ("mass", 0.028349523125),
    "lb": ("mass", 0.45359237),
    "ml": ("volume", 0.001),
    "l": ("volume", 1.0),
    "cup": ("volume", 0.2365882365),
    "gal": ("volume", 3.785411784),
    "m/s": ("speed", 1.0),
    "km/h": ("speed", 1 / 3.6),
    "mph": ("speed", 0.44704),
}
_ALIASES = {
    "metre": "m",
    "meter": "m",
    "metres": "m",
    "meters": "m",
    "kilometre": "km",
    "kilometer": "km",
    "kilometres": "km",
    "kilometers": "km",
    "mile": "mi",
    "miles": "mi",
    "foot": "ft",
    "feet": "ft",
    "inch": "in",
    "inches": "in",
    "pound": "lb",
    "pounds": "lb",
    "lbs": "lb",
    "ounce": "oz",
    "ounces": "oz",
    "gram": "g",
    "grams": "g",
    "kilogram": "kg",
    "kilograms": "kg",
    "litre": "l",
    "liter": "l",
    "litres": "l",
    "liters": "l",
    "gallon": "gal",
    "gallons": "gal",
    "cups": "cup",
    "kph": "km/h",
    "kmh": "km/h",
    "°c": "c",
    "celsius": "c",
    "°f": "f",
    "fahrenheit": "f",
    "kelvin": "k",
}
_TEMPERATURES = {"c": (1.0, 273.15), "f": (5 / 9, 255.3722222222222), "k": (1.0, 0.0)}
"""Kelvin = value * scale + offset."""


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units of length, mass, volume, speed or temperature.

    Args:
        value: the number to convert.
        from_unit: for example km, mi, ft, kg, lb, l, gal, cup, km/h, mph, °C, °F, K.
        to_unit: a unit of the same kind.
    """
    source, target = _unit(from_unit), _unit(to_unit)
    if source in _TEMPERATURES and target in _TEMPERATURES:
        scale, offset = _TEMPERATURES[source]
        kelvin = value * scale + offset
        to_scale, to_offset = _TEMPERATURES[target]
        result = (kelvin - to_offset) / to_scale
    else:
        (kind, size), (to_kind, to_size) = _UNITS[source], _UNITS[target]
        if kind != to_kind:
            raise ModelRetry(f"{from_unit} is a {kind} and {to_unit} a {to_kind}: they do not convert.")
        result = value * size / to_size
    return f"{value:g} {from_unit} = {result:.6g} {to_unit}"


def _unit(typed: str) -> str:
    key = typed.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _UNITS and key not in _TEMPERATURES:
        raise ModelRetry(f"Unknown unit {typed!r}; known: {', '.join([*_UNITS, '°C', '°F', 'K'])}.")
    return key


async def search_my_conversations(ctx: RunContext[ChatDeps], query: str) -> str:
    """Find the visitor's own earlier chats that mention something; only theirs are ever searched.

    Args:
        query: the words to look for.
    """
    hits = await ctx.deps.store.search(ctx.deps.owner, query, limit=MAX_SEARCH_HITS)
    if not hits:
        return f"No earlier chat mentions {query!r}."
    return "\n".join(f"- {hit.title}: {hit.snippet}" for hit in hits)


async def delete_my_conversation(ctx: RunContext[ChatDeps], title: str) -> str:
    """Delete one of the visitor's own earlier chats, found by its title. The visitor approves it first.

    Args:
        title: the chat's title as the sidebar shows it, or enough of it to name one chat.
    """
    wanted = title.strip().casefold()
    listed = await ctx.deps.store.list_sessions(ctx.deps.owner, limit=500)
    exact = [chat for chat in listed if chat.title.casefold() == wanted]
    matches = exact or [chat for chat in listed if wanted and wanted in chat.title.casefold()]
    matches = [chat for chat in matches if chat.conversation_id != ctx.deps.conversation_id]
    if len(matches) != 1:
        found = "no other chat" if not matches else f"{len(matches)} chats"
        raise ModelRetry(f"{found.capitalize()} of this visitor is titled like {title!r}; ask which one they mean.")
    await ctx.deps.store.delete(matches[0].conversation_id, scope=ctx.deps.owner)
    return f"Deleted the chat {matches[0].title!r}."


TOOL_TIMEOUT_SECONDS = 20.0
"""A tool that runs longer is cut off; the model is told so and can answer without it."""


def chat_tools(timeout: float = TOOL_TIMEOUT_SECONDS) -> FunctionToolset[ChatDeps]:
    """The chat agent's tools; deleting a chat waits for the visitor's approval (pydantic-ai deferred tools)."""
    return FunctionToolset(
        [
            calculate,
            current_time,
            convert_units,
            search_my_conversations,
            Tool(delete_my_conversation, requires_approval=True),
        ],
        timeout=timeout,
    )


@functools.cache
def chat_tool_descriptions() -> tuple[tuple[str, str], ...]:
    """Each of the chat's own tools with what it does, for the page: made once, since building the toolset
    reads every tool's signature and docstring (it was about 3% of the server's CPU, once per page load)."""
    return tuple((name, tool.description or "") for name, tool in chat_tools().tools.items())
