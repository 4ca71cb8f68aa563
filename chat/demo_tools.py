"""How the offline demo model uses the chat's tools, as a real model would: it reads the prompt, calls
a tool in one request, and answers with the result in the next.

Only what a workshop needs to see the loop work: arithmetic written in the prompt, the date or time, a
"5 km to miles" conversion, and "search my chats for …". Anything else is answered without a tool.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolReturnPart,
    UserPromptPart,
)

from chat.steps import tool_problem

_EXPRESSION = re.compile(r"(?:sqrt|abs|round)?\(?[-+]?\d[\d\s.()+\-*/×÷^%]*(?:\d|\))")
_OPERATOR = re.compile(r"\d\s*(?:[+*/×÷^%]|\s-\s)\s*[\d(]|sqrt\(")
_ASKS_TO_CALCULATE = re.compile(
    r"\b(?:calculate|compute|what(?:'s| is| are| does)|how much|berechne|was (?:ist|sind|ergibt)|wie ?viel|calcula"
    r"|cu[aá]nto|combien|calcule|quanto|сколько|посчитай)\b|计算|計算|等于|多少|いくつ|=\s*\?",
    re.IGNORECASE,
)
_ASKS_THE_TIME = re.compile(
    r"\bwhat(?:'s| is) the (?:time|date)\b|\bwhat time\b|\bwhat day\b|\btoday'?s date\b|\bwie spät\b"
    r"|\bwelcher tag\b|\bquelle heure\b|\bqué hora\b|\bque hora\b|几点|幾點|几号|幾號|今天星期|何時|何日",
    re.IGNORECASE,
)
_TIME_ZONE = re.compile(r"\b([A-Z][a-z]+/[A-Z][A-Za-z_]+)\b")
_UNIT = r"(°\s?[cf]|[a-z°/]+)"
_CONVERSION = re.compile(rf"(-?\d+(?:[.,]\d+)?)\s*{_UNIT}\s+(?:to|in|into|en|in|auf|a)\s+{_UNIT}\b", re.IGNORECASE)
_SEARCH = re.compile(
    r"(?:search|find|look)\s+(?:through\s+|in\s+)?my\s+(?:old\s+|earlier\s+)?(?:chats|conversations)\s+"
    r"(?:for|about)\s+[\"“'«]?(.+?)[\"”'»]?\s*[?.!]*$|"
    r"(?:did|have)\s+(?:we|I)\s+(?:ever\s+)?(?:talk(?:ed)?|spoke|spoken|ask(?:ed)?)\s+about\s+[\"“'«]?(.+?)[\"”'»]?\s*[?.!]*$",
    re.IGNORECASE,
)
_DELETE = re.compile(
    r"(?:delete|remove|lösche|borra|elimina|supprime)\s+(?:(?:my|meine|meinen|mi|ma|mon)\s+)?(?:chat|conversation|unterhaltung|"
    r"conversación|conversazione)\s+(?:called|titled|named|about|namens|llamada|intitulée)?\s*[\"“'«„]?(.+?)[\"”'»“]?\s*[.!?]*$",
    re.IGNORECASE,
)
_CALL = re.compile(
    r"\b(?:call|use|run)\s+(?:the\s+)?(?:tool\s+)?`?([A-Za-z_][\w.-]*)`?\s+(?:with|on)\s+(\{.*\})",
    re.DOTALL | re.IGNORECASE,
)
"""Any offered tool, by name, with JSON arguments: how a workshop tries an MCP server's tools offline."""
_STEP_BY_STEP = re.compile(
    r"step by step|think (?:it )?through|reason (?:it )?out|schritt für schritt|paso a paso|pas à pas|一步一步|逐步",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PlannedCall:
    tool: str
    arguments: dict[str, object]
    thinking: str | None = None
    """What the model "thinks" first, when the prompt asked it to reason step by step."""


def plan_tool_call(prompt: str, tools: Collection[str]) -> PlannedCall | None:
    """The tool call the prompt asks for, among the tools the run offers; None: answer in words."""
    call = _wanted_call(prompt, tools)
    if call is None or not _STEP_BY_STEP.search(prompt):
        return call
    thinking = (
        f"The question needs `{call.tool}`; working it out in my head could be wrong. "
        f"I will call it with {call.arguments} and answer from its result."
    )
    return PlannedCall(call.tool, call.arguments, thinking)


def _wanted_call(prompt: str, tools: Collection[str]) -> PlannedCall | None:
    if (named := _CALL.search(prompt)) and named.group(1) in tools:
        try:
            arguments = json.loads(named.group(2))
        except ValueError:
            arguments = None
        if isinstance(arguments, dict):
            return PlannedCall(named.group(1), arguments)
    if "delete_my_conversation" in tools and (deleting := _DELETE.search(prompt)):
        return PlannedCall("delete_my_conversation", {"title": deleting.group(1)})
    if "search_my_conversations" in tools and (found := _SEARCH.search(prompt)):
        return PlannedCall("search_my_conversations", {"query": next(group for group in found.groups() if group)})
    if "convert_units" in tools and (conversion := _CONVERSION.search(prompt)):
        value, source, target = conversion.groups()
        arguments = {"value": float(value.replace(",", ".")), "from_unit": source, "to_unit": target}
        return PlannedCall("convert_units", arguments)
    if "current_time" in tools and _ASKS_THE_TIME.search(prompt):
        zone = _TIME_ZONE.search(prompt)
        return PlannedCall("current_time", {"time_zone": zone.group(1)} if zone else {})
    if "calculate" in tools:
        expressions = [match.group().strip() for match in _EXPRESSION.finditer(prompt)]
        expressions = [expression for expression in expressions if _OPERATOR.search(expression)]
        if expressions and (_ASKS_TO_CALCULATE.search(prompt) or _mostly(expressions[0], prompt)):
            return PlannedCall("calculate", {"expression": max(expressions, key=len)})
    return None


def _mostly(expression: str, prompt: str) -> bool:
    """A prompt that is little more than the expression ("17*23?") asks for its value."""
    return len(expression.replace(" ", "")) >= 0.6 * len(re.sub(r"\s", "", prompt))


def tool_results(messages: Sequence[ModelMessage]) -> list[ToolReturnPart | RetryPromptPart]:
    """The tool results the last request carries: the demo model answers from these, if any."""
    last = messages[-1] if messages else None
    if not isinstance(last, ModelRequest) or any(isinstance(part, UserPromptPart) for part in last.parts):
        return []  # a new prompt (maybe beside calls it passed over) asks something else
    return [part for part in last.parts if isinstance(part, (ToolReturnPart, RetryPromptPart)) and part.tool_name]


STEP_REMINDER = "*(The demo model used a tool for this: open the step above to see it.)*"
"""Said under the first answer from a tool in a conversation, not under every one."""


def reminded_of_steps(messages: Sequence[ModelMessage]) -> bool:
    """Whether an earlier answer in these messages already pointed at the tool steps."""
    return any(
        isinstance(message, ModelResponse)
        and any(isinstance(part, TextPart) and STEP_REMINDER in part.content for part in message.parts)
        for message in messages
    )


def answer_from(results: Sequence[ToolReturnPart | RetryPromptPart], *, remind: bool = True) -> str:
    """The demo model's answer once its tools have answered it; `remind`: point at the steps above it (the
    first time in a conversation)."""
    sentences = []
    for result in results:
        problem = tool_problem(result)
        if isinstance(result, ToolReturnPart) and result.outcome == "denied":
            sentences.append(f"Understood: I did not run `{result.tool_name}`, nothing was changed.")
        elif problem is not None:
            sentences.append(f"`{result.tool_name}` could not do that: {problem} Could you put it another way?")
        elif result.tool_name == "calculate":
            sentences.append(f"The calculator says: **{result.model_response_str()}**.")
        elif result.tool_name == "current_time":
            sentences.append(f"It is **{result.model_response_str()}**.")
        elif result.tool_name == "convert_units":
            sentences.append(f"**{result.model_response_str()}**.")
        elif result.tool_name == "delete_my_conversation":
            sentences.append(f"Done: {result.model_response_str()}")
        elif result.tool_name == "search_my_conversations":
            sentences.append(f"Here is what I found in your chats:\n\n{result.model_response_str()}")
        else:
            sentences.append(f"`{result.tool_name}` returned: {result.model_response_str()}")
    return "\n\n".join([*sentences, STEP_REMINDER] if remind else sentences)
