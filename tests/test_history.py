"""Context policies: what is sent shrinks, what is stored does not, and no cut ever splits a tool call."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from chat.config import POLICY_KINDS, Settings
from chat.demo_model import DemoPace
from chat.models import ModelResolver
from chat.runs import RunStatus
from chat.turns import ChatService
from chat.wings.history import SUMMARY_PREFIX, Compactor, ContextPolicy, StoredSummary, cut_index, window
from tests.scripted import chat_service, context_of

pytestmark = pytest.mark.anyio


def user(text: str) -> ModelRequest:
    return ModelRequest(parts=[UserPromptPart(text)])


def answer(text: str) -> ModelResponse:
    return ModelResponse(parts=[TextPart(text)])


def tool_turn(n: int, calls: int) -> list[ModelMessage]:
    """A user turn in which the model calls `calls` tools before answering."""
    messages: list[ModelMessage] = [user(f"question {n}")]
    for c in range(calls):
        call_id = f"call-{n}-{c}"
        messages.append(ModelResponse(parts=[ToolCallPart("lookup", {"q": n}, tool_call_id=call_id)]))
        messages.append(ModelRequest(parts=[ToolReturnPart("lookup", f"result {n}", tool_call_id=call_id)]))
    messages.append(answer(f"answer {n}"))
    return messages


def history_from(calls_per_turn: list[int], system: bool) -> list[ModelMessage]:
    messages: list[ModelMessage] = []
    for n, calls in enumerate(calls_per_turn):
        messages += tool_turn(n, calls)
    messages.append(user("the new question"))
    if system:
        first = messages[0]
        messages[0] = ModelRequest(parts=[SystemPromptPart("You are a careful assistant."), *first.parts])
    return messages


def tool_ids(messages: list[ModelMessage], kind: type) -> set[str]:
    return {part.tool_call_id for m in messages for part in m.parts if isinstance(part, kind)}


def assert_well_formed(original: list[ModelMessage], sent: list[ModelMessage]) -> None:
    assert tool_ids(sent, ToolCallPart) == tool_ids(sent, ToolReturnPart), "a tool call lost its return"
    assert sent[-1].parts[-1] is original[-1].parts[-1], "the new question must be sent"
    first_system = [p for p in original[0].parts if isinstance(p, SystemPromptPart)]
    sent_system = [p for p in sent[0].parts if isinstance(p, SystemPromptPart)]
    assert all(part in sent_system for part in first_system), "the system prompt was dropped"


async def fake_summary(previous: str | None, messages) -> str:
    return f"{previous or ''} summary of {len(messages)} messages".strip()


@settings(max_examples=150, deadline=None)
@given(
    calls=st.lists(st.integers(min_value=0, max_value=3), min_size=0, max_size=25),
    system=st.booleans(),
    keep=st.integers(min_value=1, max_value=30),
    kind=st.sampled_from(["full", "window", "summary"]),
)
async def test_no_policy_splits_a_tool_call_or_drops_the_system_prompt(calls, system, keep, kind):
    original = history_from(calls, system)
    policy = ContextPolicy(kind=kind, window=keep, summary_threshold=keep, keep_recent=max(keep // 2, 1))
    sent = await Compactor(policy, fake_summary)(list(original))
    assert_well_formed(original, sent)
    if kind == "window" and len(original) > keep:
        assert len(sent) < len(original)


def test_the_window_cuts_only_where_a_user_turn_starts():
    messages = history_from([2, 0, 3, 1], system=False)
    sent, cut = window(messages, 6)
    assert isinstance(sent[0], ModelRequest) and isinstance(sent[0].parts[0], UserPromptPart)
    assert cut == cut_index(messages, 6) and len(sent) <= 6


async def test_summary_is_made_once_per_threshold_crossing_and_reused():
    made: list[int] = []
    saved: list[StoredSummary] = []

    async def counting(previous, messages):
        made.append(len(messages))
        return f"summary #{len(made)}"

    async def save(summary: StoredSummary) -> None:
        saved.append(summary)

    policy = ContextPolicy(kind="summary", summary_threshold=30, keep_recent=10, resummarize_after=20)
    compactor = Compactor(policy, counting, save_summary=save)
    history: list[ModelMessage] = []
    for n in range(60):
        history += [user(f"q{n}")]
        sent = await compactor(list(history))
        history += [answer(f"a{n}")]
        if len(history) > 30:
            assert sent[0].parts[0].content.startswith(SUMMARY_PREFIX)
    # 120 messages: one summary at the first crossing, then one per 20 new messages, not one per request
    assert 3 <= len(made) <= 6
    assert len(saved) == len(made)
    assert compactor.report.summary == f"summary #{len(made)}"


async def test_a_failing_summarizer_falls_back_to_the_window_with_a_notice():
    async def broken(previous, messages):
        raise RuntimeError("model down")

    history: list[ModelMessage] = []
    for n in range(30):
        history += [user(f"q{n}"), answer(f"a{n}")]
    history.append(user("new"))
    compactor = Compactor(ContextPolicy(kind="summary", summary_threshold=30, keep_recent=10), broken)
    sent = await compactor(history)
    assert len(sent) <= 11 and "summarizer failed" in compactor.report.notice


@pytest.fixture
def service(store) -> ChatService:
    return chat_service(store, ModelResolver(Settings(), DemoPace.instant()), min_update_interval=0)


async def input_tokens_per_turn(service: ChatService, policy: str, turns: int) -> list[int]:
    tokens = []
    for n in range(turns):
        prompt = "我叫小王,今年 28。" if n == 0 else f"Tell me fact number {n} about bread."
        final = [u async for u in service.run_turn("alice", f"long-{policy}", prompt, "demo", policy)][-1]
        assert final.status is RunStatus.COMPLETED, final.error
        tokens.append(final.stats.input_tokens)
    return tokens


@pytest.mark.parametrize("policy", ["full", "window", "summary"])
async def test_two_hundred_turns_input_tokens_flat_under_window_and_summary_linear_under_full(service, policy):
    tokens = await input_tokens_per_turn(service, policy, 200)
    early, late = sum(tokens[40:50]) / 10, sum(tokens[190:200]) / 10
    if policy == "full":
        assert late > 3 * early  # grows with the conversation
    else:
        assert late < 1.3 * early  # bounded
    stored = await service.edits.load_messages("alice", f"long-{policy}")
    assert len(stored) == 400  # the store keeps everything whatever was sent
    if policy == "summary":
        assert context_of(service).summarizer.calls <= 200 // 10  # once per crossing, not once per request
        final = [u async for u in service.run_turn("alice", "long-summary", "我多大了?", "demo", "summary")][-1]
        assert "28" in final.text  # the fact from turn 1 survives in the summary
        assert final.context.summary and "小王" in final.context.summary


async def test_what_the_policy_adds_to_a_request_is_sent_but_never_stored(store):
    """A summary (or a carried system prompt) goes before the turn's own prompt when the cut falls on it; the
    stored conversation keeps the prompts as they were written, with no summary inside any of them."""
    few = Settings(context_policy="summary", summary_threshold=4, summary_keep_recent=1, context_choices=POLICY_KINDS)
    service = chat_service(store, ModelResolver(Settings(), DemoPace.instant()), settings=few, min_update_interval=0)
    for n in range(7):
        final = [
            u async for u in service.run_turn("olu", "tea", f"Fact {n}: I drink {n + 2} cups of rooibos.", "demo")
        ][-1]
        assert final.status is RunStatus.COMPLETED, final.error
    assert final.context.summary is not None and final.context.cut_at > 0  # the summary was sent
    stored = await service.edits.load_messages("olu", "tea")
    assert [type(part).__name__ for m in stored if isinstance(m, ModelRequest) for part in m.parts] == [
        "UserPromptPart"
    ] * 7
