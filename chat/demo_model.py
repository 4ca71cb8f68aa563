"""The offline demo model: a pydantic-ai `FunctionModel` that streams plausible answers with no API key.

Asked for structured output (the recipe tab), it streams recipe JSON as tool-call argument deltas,
or as text for native and prompted output. It reads the conversation it is sent, so multi-turn memory is visible offline: tell it
"I'm Sam, I am 28" and later ask "how old am I?". Offered tools, it calls them when a prompt asks for
what they do ("what is 17 * 23?", chat/demo_tools.py) and answers from their result in a second request. It streams word by word (CJK by character
pairs) at a configurable pace and reports usage that grows with the history it was sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.function import AgentInfo, DeltaThinkingPart, DeltaToolCall, FunctionModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage

from chat.cookbook import compose_recipe
from chat.demo_json import example_for
from chat.demo_tools import PlannedCall, answer_from, plan_tool_call, reminded_of_steps, tool_results
from chat.tokens import CJK, estimate_message_tokens, estimate_tokens

_CHUNK_PATTERN = re.compile(rf"\s*(?:[{CJK}]{{1,2}}|[^\s{CJK}]+)|\s+")


def split_into_chunks(text: str) -> list[str]:
    """Split text the way a provider streams it: a word with its leading space, or two CJK characters."""
    return _CHUNK_PATTERN.findall(text)


@dataclass(frozen=True)
class DemoPace:
    """How fast the demo model streams. `tokens_per_second=0` streams as fast as the event loop allows."""

    first_token_delay: float = 0.3
    tokens_per_second: float = 30.0

    @classmethod
    def instant(cls) -> DemoPace:
        return cls(first_token_delay=0.0, tokens_per_second=0.0)


@dataclass
class _Facts:
    name: str | None = None
    age: str | None = None


# What ends a name: spaces and punctuation, ASCII or full-width as Chinese and Japanese are really typed.
_NAME_END = r"\s,，。.!！?？、;；:：「」『』()（）"
_NAME_PATTERNS = [
    re.compile(rf"我叫\s*([^{_NAME_END}]{{1,12}})"),
    re.compile(rf"我的名字(?:是|叫)\s*([^{_NAME_END}]{{1,12}})"),
    re.compile(
        rf"(?:私|わたし|僕|ぼく|俺)の名前は\s*([^{_NAME_END}]{{1,12}}?)\s*(?:です|だ|と申します|[{_NAME_END}]|$)"
    ),
    re.compile(rf"(?:私|わたし|僕|ぼく)は\s*([^{_NAME_END}\d]{{1,12}}?)\s*(?:です|と申します)"),
    re.compile(r"\bmy name is\s+([A-Za-z][\w'-]*)", re.IGNORECASE),
    re.compile(r"\bcall me\s+([A-Za-z][\w'-]*)", re.IGNORECASE),
    re.compile(r"\bI(?:'m| am)\s+(?!\d)([A-Z][\w'-]*)"),
]
# A question ("我叫什么名字?", "私の名前は何ですか") names nobody.
_NOT_NAMES = re.compile(r"^(?:什么|什麼|谁|誰|啥|何|なん|だれ|what|who)", re.IGNORECASE)
_AGE_PATTERNS = [
    re.compile(r"今年\s*(\d{1,3})"),
    re.compile(r"(\d{1,3})\s*[岁歲歳才]"),
    re.compile(r"\bI(?:'m| am)\s+(\d{1,3})\b", re.IGNORECASE),
    re.compile(r"\b(\d{1,3})\s+years?\s+old\b", re.IGNORECASE),
]
_COUNT_PATTERN = re.compile(r"\bcount (?:to|up to)\s+(\d{1,6})\b|数到\s*(\d{1,6})", re.IGNORECASE)


def _user_texts(messages: Sequence[ModelMessage]) -> list[str]:
    texts = []
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    texts.append(part.content)
    return texts


def _remembered_facts(texts: Iterable[str]) -> _Facts:
    facts = _Facts()
    for text in texts:
        for pattern in _NAME_PATTERNS:
            match = pattern.search(text)
            if match and not _NOT_NAMES.match(match.group(1)):
                facts.name = match.group(1)
                break
        for pattern in _AGE_PATTERNS:
            if match := pattern.search(text):
                facts.age = match.group(1)
                break
    return facts


def _has_cjk(text: str) -> bool:
    return re.search(rf"[{CJK}]", text) is not None


def _has_kana(text: str) -> bool:
    return re.search("[\u3040-\u30ff]", text) is not None


def _is_question(text: str) -> bool:
    return re.search(r"[?？吗嗎呢か]", text) is not None


@dataclass(frozen=True)
class _Phrasebook:
    """How the demo model answers about what it was told, in one language."""

    asks_age: Callable[[str], bool]
    asks_name: Callable[[str], bool]
    age: str
    no_age: str
    name: str
    no_name: str
    told_name: str
    told_age: str
    greeting: str
    noted: str
    remembered: str
    joiner: str


_JAPANESE = _Phrasebook(
    asks_age=lambda p: any(word in p for word in ("何歳", "なんさい", "いくつ", "年齢")),
    asks_name=lambda p: "名前" in p and _is_question(p) or "誰" in p or "だれ" in p,
    age="あなたは{age}歳です。",
    no_age="まだ年齢を教えてもらっていません。",
    name="あなたの名前は{name}です。",
    no_name="まだ名前を教えてもらっていません。",
    told_name="お名前は{name}",
    told_age="{age}歳",
    greeting="はじめまして、{name}さん！",
    noted="わかりました！",
    remembered="{greeting}覚えました：{said}。あとで聞いてください。",
    joiner="、",
)
_CHINESE = _Phrasebook(
    asks_age=lambda p: any(word in p for word in ("多大", "几岁", "幾歲", "年龄")),
    asks_name=lambda p: "我叫什么" in p or "我是谁" in p or "我的名字" in p and _is_question(p),
    age="你今年 {age} 岁。",
    no_age="你还没有告诉我你的年龄。",
    name="你叫{name}。",
    no_name="你还没有告诉我你的名字。",
    told_name="你叫{name}",
    told_age="你今年 {age} 岁",
    greeting="很高兴认识你，{name}！",
    noted="好的！",
    remembered="{greeting}我记住了：{said}。之后问我就知道了。",
    joiner="，",
)
_ENGLISH = _Phrasebook(
    asks_age=lambda p: any(words in p.lower() for words in ("how old am i", "my age")),
    asks_name=lambda p: any(words in p.lower() for words in ("what's my name", "what is my name", "who am i")),
    age="You are {age} years old.",
    no_age="You haven't told me your age yet.",
    name="Your name is {name}.",
    no_name="You haven't told me your name yet.",
    told_name="your name is {name}",
    told_age="you are {age}",
    greeting="Nice to meet you, {name}!",
    noted="Got it!",
    remembered="{greeting} I'll remember that {said}. Ask me later and I will know.",
    joiner=" and ",
)


def _answer_from_memory(prompt: str, facts: _Facts, told_now: _Facts) -> str | None:
    book = _JAPANESE if _has_kana(prompt) else _CHINESE if _has_cjk(prompt) else _ENGLISH
    if book.asks_age(prompt):
        return book.age.format(age=facts.age) if facts.age else book.no_age
    if book.asks_name(prompt):
        return book.name.format(name=facts.name) if facts.name else book.no_name
    if not (told_now.name or told_now.age):
        return None
    said = [book.told_name.format(name=told_now.name)] if told_now.name else []
    said += [book.told_age.format(age=told_now.age)] if told_now.age else []
    greeting = book.greeting.format(name=told_now.name) if told_now.name else book.noted
    return book.remembered.format(greeting=greeting, said=book.joiner.join(said))


def _count_limit(prompt: str) -> int | None:
    match = _COUNT_PATTERN.search(prompt)
    return int(match.group(1) or match.group(2)) if match else None


def _counting(prompt: str) -> str | None:
    limit = _count_limit(prompt)
    return None if limit is None else "".join(_counting_chunks(limit))


def _counting_chunks(limit: int) -> Iterator[str]:
    """ "1", " 2", ..., " N.": the chunks `split_into_chunks` makes of the counting answer, made one at a time."""
    for number in range(1, limit + 1):
        yield f"{' ' if number > 1 else ''}{number}{'.' if number == limit else ''}"


def _isolated(quoted: str) -> str:
    """The visitor's words inside first-strong isolates: a right-to-left override typed in them (U+202E)
    ends where the quote ends, instead of reversing the rest of the answer."""
    return f"\u2068{quoted}\u2069"


@dataclass(frozen=True)
class Audience:
    """Who reads the demo model's answers, so its hints name only what that reader can do."""

    operator: bool = True
    """The person running the app reads them (a laptop, a workshop's machine): how to start it on a real
    model is theirs to use. False on a public Space, whose visitors cannot run `python app.py`."""
    other_models: bool = True
    """The Model menu offers a real model besides the demo."""


def _real_model_hint(audience: Audience, chinese: bool) -> str:
    """How to talk to a real model, as far as this reader can do it; empty when they cannot."""
    if chinese:
        menu = "在 Model 菜单里选择" if audience.other_models else ""
        start = (
            "运行 `python app.py --model openai-chat:gpt-4o-mini` 并设置 `OPENAI_API_KEY`" if audience.operator else ""
        )
        return f"想用真正的模型:{'，或'.join(way for way in (menu, start) if way)}。" if menu or start else ""
    ways = ["pick one in the **Model** menu"] if audience.other_models else []
    if audience.operator:
        ways.append(
            "start the app with `python app.py --model openai-chat:gpt-4o-mini` and `OPENAI_API_KEY` set "
            "(Anthropic, Ollama and any OpenAI-compatible server work too; see the README)"
        )
    return f"To talk to a real model, {', or '.join(ways)}." if ways else ""


def _demo_explainer(prompt: str, earlier_turns: int, summarized: bool = False, audience: Audience = Audience()) -> str:
    if _has_cjk(prompt):
        what = "演示模型**(离线,无需 API key)" if audience.operator else "演示模型**(内置,就在这里运行)"
        return (
            f"**{what}。你说的是:「{_isolated(prompt[:80])}」。"
            f"这段对话里我能看到之前的 {earlier_turns} 轮{'(更早的部分是摘要)' if summarized else ''}:试试先说「我叫小王，今年28岁。」再问「我多大了？」。"
            "这里的回答是逐字流式输出的,按 Stop 可以随时停止,已经生成的部分会保留。"
            + _real_model_hint(audience, chinese=True)
        )
    excerpt = prompt if len(prompt) <= 80 else prompt[:77] + "..."
    what = "offline, no API key needed" if audience.operator else "built in, it runs right here"
    hint = _real_model_hint(audience, chinese=False)
    return (
        f"**Demo model** ({what}). You said: \u201c{_isolated(excerpt)}\u201d. "
        f"I can see {earlier_turns} earlier turn{'s' if earlier_turns != 1 else ''} of this conversation"
        + (" plus a summary of the older ones" if summarized else "")
        + ", "
        "so memory works: tell me \u201cMy name is Sam and I am 28\u201d, then ask \u201chow old am I?\u201d. "
        "This answer streams word by word, like a real model; press **Stop** at any moment and the part "
        "already written is kept. Ask me to \u201ccount to 500\u201d for a long answer." + (f" {hint}" if hint else "")
    )


def _last_prompt(messages: Sequence[ModelMessage]) -> str:
    texts = _user_texts(messages)
    return texts[-1] if texts else ""


def _wants_recipe(info: AgentInfo) -> bool:
    """Whether the run asks for structured output (the Recipe tab's, or any other schema)."""
    return bool(info.output_tools) or info.model_request_parameters.output_mode in ("native", "prompted")


def _forced_call(info: AgentInfo, prompt: str) -> PlannedCall | None:
    """The call a `tool_choice` that forces one asks for when the prompt names none: an output tool the
    client's agent declared if there is one (`final_result...`: pydantic-ai's), else the first tool allowed,
    with arguments that fit its schema (chat/demo_json.py)."""
    choice = (info.model_settings or {}).get("tool_choice")
    if choice != "required" and not isinstance(choice, list):
        return None
    allowed = [tool for tool in info.function_tools if choice == "required" or tool.name in choice]
    if not allowed:
        return None
    tool = next((tool for tool in allowed if tool.name.startswith("final_result")), allowed[0])
    return PlannedCall(tool.name, example_for(tool.parameters_json_schema, prompt))


def _structured_answer(info: AgentInfo, prompt: str) -> str:
    """The JSON a structured request gets: a recipe for the Recipe tab's schema, else a value that fits the
    schema asked for (an API client's `response_format` or output type: chat/demo_json.py)."""
    output = info.model_request_parameters.output_object
    schema = info.output_tools[0].parameters_json_schema if info.output_tools else output and output.json_schema
    if not schema or {"name", "steps"} <= set(schema.get("properties") or {}):  # a recipe, of any strictness
        return json.dumps(compose_recipe(prompt), ensure_ascii=False)
    return json.dumps(example_for(schema, prompt), ensure_ascii=False)


SUMMARY_MARKER = "Summarize the conversation transcript"


def compose_summary(transcript: str) -> str:
    """The demo summarizer: keep what the user said about themselves verbatim, list the other topics."""
    statements, topics = [], []
    for line in transcript.splitlines():
        if line.startswith("Earlier summary: "):
            statements += re.findall(r"«([^»]*)»", line)
        elif line.startswith("User: "):
            said = line[len("User: ") :].strip()
            told = _remembered_facts([said])
            if told.name or told.age:
                statements.append(said)
            else:
                topics.append(" ".join(said.split()[:8])[:60])
    parts = ["Summary (demo model)."]
    if statements:
        parts.append("The user said: " + " ".join(f"«{s}»" for s in dict.fromkeys(statements)) + ".")
    if topics:
        parts.append("Topics so far: " + "; ".join(dict.fromkeys(topics[-6:])) + ".")
    return " ".join(parts)


def _system_texts(messages: Sequence[ModelMessage]) -> list[str]:
    return [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, SystemPromptPart)
    ]


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def compose_analysis(data: str) -> str:
    """The demo ANALYST persona: numbers found, their range, mean and trend, as Markdown bullets."""
    numbers = [float(n) for n in _NUMBER.findall(data)]
    if not numbers:
        words = [w for w in re.findall(r"\w+", data) if len(w) > 3][:5]
        return (
            "- No numbers to analyse, so this is a reading of the question.\n"
            f"- Key terms: {', '.join(words) or 'none'}.\n"
            "- Caveat: the demo analyst works offline; pick a real model for real analysis."
        )
    mean = sum(numbers) / len(numbers)
    trend = "rising" if numbers[-1] > numbers[0] else "falling" if numbers[-1] < numbers[0] else "flat"
    change = (numbers[-1] - numbers[0]) / numbers[0] * 100 if numbers[0] else 0.0
    return (
        f"- {len(numbers)} values, from {min(numbers):g} to {max(numbers):g}.\n"
        f"- Mean: {mean:.2f}.\n"
        f"- Trend: {trend}, {change:+.1f}% from the first value to the last.\n"
        f"- Largest value: {max(numbers):g} (position {numbers.index(max(numbers)) + 1}).\n"
        "- Caveat: a short series; the demo analyst works offline."
    )


def compose_article(messages: Sequence[ModelMessage]) -> str:
    """The demo WRITER persona: a short article built from the analysis found in its history."""
    analysis = ""
    for message in reversed(messages):
        if isinstance(message, ModelResponse):
            analysis = "".join(p.content for p in message.parts if isinstance(p, TextPart))
            break
    if not analysis:
        return "## Nothing to write about yet\n\nThe writer found no analysis in this conversation."
    bullets = [line.lstrip("- ").strip() for line in analysis.splitlines() if line.strip()]
    headline = "What the numbers say" if "values" in analysis else "A closer look at the question"
    return (
        f"## {headline}\n\n"
        f"Our analyst looked at the data and found: {bullets[0].rstrip('.')}. {' '.join(bullets[1:3])}\n\n"
        f"{bullets[-1]} In short: read the trend, not a single value. (Written by the demo writer.)"
    )


# How the hand-off's two agents are told who they are (chat/wings/handoff.py); any other run is a chat.
_ANALYST = "You are the ANALYST"
_WRITER = "You are the WRITER"


def compose_reply(
    messages: Sequence[ModelMessage], instructions: str | None = None, audience: Audience = Audience()
) -> str:
    """The demo model's whole answer to the last user prompt, given the conversation it was sent."""
    if instructions and _ANALYST in instructions:
        return compose_analysis(_last_prompt(messages))
    if instructions and _WRITER in instructions:
        return compose_article(messages)
    texts = _user_texts(messages)
    prompt = texts[-1] if texts else ""
    earlier = texts[:-1]
    facts = _remembered_facts([*_system_texts(messages), *texts])
    told_now = _remembered_facts([prompt])
    return (
        _counting(prompt)
        or _answer_from_memory(prompt, facts, told_now)
        or _demo_explainer(
            prompt,
            earlier_turns=len(earlier),
            summarized=any("Summary" in t for t in _system_texts(messages)),
            audience=audience,
        )
    )


def reply_chunks(
    messages: Sequence[ModelMessage], instructions: str | None = None, audience: Audience = Audience()
) -> Iterator[str]:
    """`compose_reply`'s answer in streamed chunks, each made as it is sent: "count to 999999" (7 MB of
    text, a million chunks) costs no more memory than "count to 10" and never blocks the event loop."""
    if not instructions or not (_ANALYST in instructions or _WRITER in instructions):
        texts = _user_texts(messages)
        limit = _count_limit(texts[-1] if texts else "")
        if limit is not None:
            return _counting_chunks(limit)
    return (match.group() for match in _CHUNK_PATTERN.finditer(compose_reply(messages, instructions, audience)))


class DemoModel(FunctionModel):
    """The offline default model. `DemoModel(pace=DemoPace.instant())` streams with no delay, for tests;
    `audience` says who reads its hints (a Space's visitors are not its operator)."""

    def __init__(self, pace: DemoPace | None = None, audience: Audience | None = None) -> None:
        self.pace = pace or DemoPace()
        self.audience = audience or Audience()
        super().__init__(function=self._reply, stream_function=self._stream_reply, model_name="demo")

    def _reply(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if info.instructions and SUMMARY_MARKER in info.instructions:
            text = compose_summary(_last_prompt(messages))
            part: TextPart | ToolCallPart = TextPart(text)
        elif _wants_recipe(info):
            text = _structured_answer(info, _last_prompt(messages))
            part = ToolCallPart(info.output_tools[0].name, text) if info.output_tools else TextPart(text)
        else:
            text = compose_reply(messages, info.instructions, self.audience)
            part = TextPart(text)
        usage = RequestUsage(input_tokens=estimate_message_tokens(messages), output_tokens=estimate_tokens(text))
        return ModelResponse(parts=[part], usage=usage)

    async def _stream_reply(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall] | dict[int, DeltaThinkingPart | DeltaToolCall]]:
        """Text for a chat; for a structured request, recipe JSON as tool-call argument deltas (or as text)."""
        wants_recipe = _wants_recipe(info)
        tools = {tool.name for tool in info.function_tools}
        planned = None if wants_recipe or tool_results(messages) else plan_tool_call(_last_prompt(messages), tools)
        planned = planned or (None if wants_recipe else _forced_call(info, _last_prompt(messages)))
        if planned is not None:
            async for delta in self._stream_call(planned):
                yield delta
            return
        text = _structured_answer(info, _last_prompt(messages)) if wants_recipe else None
        await asyncio.sleep(self.pace.first_token_delay)
        if wants_recipe and info.output_tools:
            yield {0: DeltaToolCall(name=info.output_tools[0].name, json_args="", tool_call_id="demo_recipe")}
        gap = 1 / self.pace.tokens_per_second if self.pace.tokens_per_second else 0.0
        if text is None and (results := tool_results(messages)):
            text = answer_from(results, remind=not reminded_of_steps(messages))
        chunks = (
            split_into_chunks(text) if text is not None else reply_chunks(messages, info.instructions, self.audience)
        )
        for index, chunk in enumerate(chunks):
            if index:
                await asyncio.sleep(gap)
            yield {0: DeltaToolCall(json_args=chunk)} if wants_recipe and info.output_tools else chunk

    async def _stream_call(self, planned: PlannedCall) -> AsyncIterator[dict[int, DeltaThinkingPart | DeltaToolCall]]:
        """A tool call, streamed as a real model streams one: its thinking first if asked, then the call."""
        await asyncio.sleep(self.pace.first_token_delay)
        gap = 1 / self.pace.tokens_per_second if self.pace.tokens_per_second else 0.0
        for chunk in split_into_chunks(planned.thinking or ""):
            yield {0: DeltaThinkingPart(content=chunk)}
            await asyncio.sleep(gap)
        arguments = json.dumps(planned.arguments, ensure_ascii=False)
        yield {1: DeltaToolCall(name=planned.tool, json_args=arguments, tool_call_id=f"demo_{uuid.uuid4().hex[:12]}")}

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        async with super().request_stream(messages, model_settings, model_request_parameters, run_context) as response:
            # FunctionModel books a flat 50 input tokens per request; a demo of context cost must show
            # the input growing with the history, so book an estimate of what was really sent.
            # Output tokens are already counted one per streamed chunk, which is one per token here.
            response._usage = RequestUsage(input_tokens=estimate_message_tokens(messages))
            yield response
