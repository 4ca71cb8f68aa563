"""The chat agent's tools, the demo model calling them, and the steps a turn shows and stores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from pydantic_ai import Agent, ModelRetry
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from chat.agents import CHAT_INSTRUCTIONS
from chat.demo_tools import plan_tool_call
from chat.render import answer_messages, settle_shown, to_bubbles, to_markdown
from chat.runs import RunStatus
from chat.steps import NOT_FINISHED, TOOL, StepLog
from chat.turns import ChatService
from chat.wings.approvals import APPROVE, DENIED, DENY
from chat.wings.history import Compactor, ContextPolicy
from chat.wings.tools import ChatDeps, calculate, chat_tools, convert_units, current_time, search_my_conversations
from tests.scripted import ScriptedResolver, chat_service

pytestmark = pytest.mark.anyio
ALL_TOOLS = {"calculate", "current_time", "convert_units", "search_my_conversations", "delete_my_conversation"}


@pytest.fixture
def store(any_store):
    return any_store


def service_on(store, agent: Agent | None = None, tools=None, **models: FunctionModel) -> ChatService:
    return chat_service(store, ScriptedResolver(**models), agent=agent, tools=tools, min_update_interval=0)


async def turn(service: ChatService, prompt: str, *, owner="amara", conversation="t1", model="demo"):
    return [update async for update in service.run_turn(owner, conversation, prompt, model)]


def context(owner="amara", store=None, time_zone=None) -> SimpleNamespace:
    return SimpleNamespace(deps=ChatDeps(owner, store, time_zone=time_zone))


# -- the tools themselves ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [("(12 + 30) * 2.5", "105"), ("2^16", "65536"), ("7 ÷ 4", "1.75"), ("−3 × −3", "9"), ("sqrt(81) % 5", "4")],
)
def test_calculate_works_out_arithmetic_exactly(expression, value):
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("__import__('os').system('true')", "only numbers"),
        ("().__class__", "only numbers"),
        ("7 ** 7 ** 7", "too large"),
        ("1 / (3 - 3)", "divides by zero"),
        ("sqrt(-4)", "Cannot calculate"),
        ("1 +", "Cannot calculate"),
        ("9" * 300, "longer than"),
    ],
)
def test_calculate_refuses_what_is_not_arithmetic_with_a_reason_for_the_model(expression, problem):
    with pytest.raises(ModelRetry, match=problem):
        calculate(expression)


def test_units_convert_within_a_kind_and_refuse_across_kinds():
    assert convert_units(-40, "°C", "°F").endswith("= -40 °F")
    assert convert_units(0, "K", "celsius").endswith("= -273.15 celsius")
    assert convert_units(26.2, "miles", "km").endswith("= 42.1648 km")
    assert convert_units(3, "cups", "ml").endswith("= 709.765 ml")
    with pytest.raises(ModelRetry, match="mass.*length"):
        convert_units(2, "lb", "ft")
    with pytest.raises(ModelRetry, match="Unknown unit 'parsec'"):
        convert_units(1, "parsec", "km")


def test_the_time_is_given_in_the_zone_asked_else_the_visitors_else_utc():
    assert current_time(context(time_zone="America/Lima"), "Asia/Kolkata").endswith("(Asia/Kolkata)")
    assert current_time(context(time_zone="America/Lima")).endswith("(America/Lima)")
    assert current_time(context()).endswith("(UTC)")
    with pytest.raises(ModelRetry, match="not a time zone"):
        current_time(context(), "Mars/Olympus_Mons")


async def test_a_search_sees_only_the_visitors_own_chats(store):
    service = service_on(store)
    await turn(service, "Wir planen eine Wanderung im Schwarzwald", owner="jonas", conversation="j1")
    await turn(service, "Schwarzwald cake recipe please", owner="mallory", conversation="m1")
    found = await search_my_conversations(context("jonas", store), "schwarzwald")
    assert "Wanderung" in found and "cake" not in found
    assert "No earlier chat" in await search_my_conversations(context("nobody", store), "Schwarzwald")


# -- the demo model's plan --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "tool", "arguments"),
    [
        ("Berechne bitte 19 * 21", "calculate", {"expression": "19 * 21"}),
        ("4096 / 64 = ?", "calculate", {"expression": "4096 / 64"}),
        ("计算 (8+2)*9", "calculate", {"expression": "(8+2)*9"}),
        ("convert 10,5 kg to lb", "convert_units", {"value": 10.5, "from_unit": "kg", "to_unit": "lb"}),
        ("what's the date in Europe/Oslo?", "current_time", {"time_zone": "Europe/Oslo"}),
        ("Did we ever talk about «Lisboa»?", "search_my_conversations", {"query": "Lisboa"}),
        ("Lösche meine Unterhaltung „Steuern 2025“", "delete_my_conversation", {"title": "Steuern 2025"}),
    ],
)
def test_the_demo_model_calls_the_tool_a_prompt_asks_for(prompt, tool, arguments):
    planned = plan_tool_call(prompt, ALL_TOOLS)
    assert planned is not None and (planned.tool, planned.arguments) == (tool, arguments)


@pytest.mark.parametrize("prompt", ["I was born on 1990-04-12", "Tell me about 3 cats", "count to 40", "hello"])
def test_the_demo_model_answers_in_words_when_no_tool_is_asked_for(prompt):
    assert plan_tool_call(prompt, ALL_TOOLS) is None


def test_the_demo_model_calls_only_tools_it_is_offered():
    assert plan_tool_call("what is 6 * 7", {"convert_units"}) is None


# -- a turn with tools ------------------------------------------------------------------------------


async def test_a_tool_turn_shows_its_step_then_an_answer_from_the_result_and_counts_both_requests(store):
    service = service_on(store)
    updates = await turn(service, "Quanto fa 250 * 4? Passo per passo non serve.")
    final = updates[-1]
    assert final.status is RunStatus.COMPLETED and "1000" in final.text
    (step,) = final.steps
    assert (step.kind, step.tool, step.result, step.error) == (TOOL, "calculate", "1000", None)
    assert json.loads(step.text) == {"expression": "250 * 4"} and step.done and step.seconds is not None
    assert any(update.steps and not update.text for update in updates)  # the step shows before any answer
    assert final.stats is not None and final.stats.requests == 2
    stored = await service.edits.load_messages("amara", "t1")
    kinds = [type(part).__name__ for message in stored for part in message.parts]
    assert kinds == ["UserPromptPart", "ToolCallPart", "ToolReturnPart", "TextPart"]


async def test_steps_reopened_from_the_store_look_as_they_did_live(store):
    service = service_on(store)
    live = (await turn(service, "Convert 5 ft to cm, reason it out step by step"))[-1]
    assert [step.kind for step in live.steps] == ["thinking", "tool"]
    reopened = to_bubbles(await service.edits.load_messages("amara", "t1"))
    assert [bubble["role"] for bubble in reopened] == ["user", "assistant", "assistant", "assistant"]
    titles = [bubble.get("metadata", {}).get("title") for bubble in reopened]
    assert titles == [None, "💭 Thinking", "🛠️ convert_units", None]
    assert "152.4 cm" in reopened[2]["content"] and "152.4 cm" in reopened[3]["content"]
    assert "🛠️ convert_units" in to_markdown("Feet", await service.edits.load_messages("amara", "t1"))


async def test_a_tool_that_refuses_shows_a_failed_step_and_the_model_answers_anyway(store):
    service = service_on(store)
    final = (await turn(service, "what is 8 / (2 - 2)?"))[-1]
    assert final.status is RunStatus.COMPLETED and "divides by zero" in final.text
    (step,) = final.steps
    assert step.error == "That divides by zero." and step.result is None
    reopened = to_bubbles(await service.edits.load_messages("amara", "t1"))
    assert reopened[1]["metadata"]["title"] == "🛠️ calculate · failed"


async def test_stop_during_a_tool_call_keeps_a_conversation_the_next_turn_can_continue(store):
    started = asyncio.Event()

    async def slow_lookup(city: str) -> str:
        started.set()
        await asyncio.sleep(60)
        return "sunny"

    async def calls_the_slow_tool(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator:
        yield {0: DeltaToolCall(name="slow_lookup", json_args='{"city": "Nairobi"}', tool_call_id="slow-1")}

    agent = Agent(None, instructions=CHAT_INSTRUCTIONS, deps_type=ChatDeps, tools=[slow_lookup])
    service = service_on(store, agent, caller=FunctionModel(stream_function=calls_the_slow_tool))

    async def stop_when_the_tool_runs() -> None:
        await started.wait()
        assert service.stop("amara", "t1")

    stopper = asyncio.create_task(stop_when_the_tool_runs())
    stopped = (await turn(service, "Weather in Nairobi?", model="caller"))[-1]
    await stopper
    assert stopped.status is RunStatus.STOPPED
    assert stopped.steps[0].error == NOT_FINISHED
    sent: list[list[ModelMessage]] = []

    async def answers(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        sent.append(list(messages))
        yield "Sorry, the lookup was stopped."

    service.models = ScriptedResolver(answers=FunctionModel(stream_function=answers))
    assert (await turn(service, "Never mind.", model="answers"))[-1].status is RunStatus.COMPLETED
    calls = {p.tool_call_id for m in sent[0] for p in m.parts if isinstance(p, ToolCallPart)}
    returns = {p.tool_call_id for m in sent[0] for p in m.parts if isinstance(p, ToolReturnPart)}
    assert calls <= returns  # no call goes back to the model without its return


def test_the_step_log_shows_a_call_pending_then_done_with_its_duration():
    ticks = iter([10.0, 12.5])
    log = StepLog(clock=lambda: next(ticks))
    call = ToolCallPart("convert_units", {"value": 1, "from_unit": "mi", "to_unit": "km"}, tool_call_id="c-9")
    assert log.see(FunctionToolCallEvent(call))
    assert not log.steps[0].done and log.steps[0].result is None
    assert log.see(FunctionToolResultEvent(ToolReturnPart("convert_units", "1 mi = 1.60934 km", tool_call_id="c-9")))
    assert log.steps[0].done and log.steps[0].seconds == 2.5 and log.steps[0].result == "1 mi = 1.60934 km"


async def test_a_window_never_separates_a_tool_call_from_its_return():
    messages: list[ModelMessage] = []
    for n in range(30):
        messages += [
            ModelRequest(parts=[UserPromptPart(f"question {n}")]),
            ModelResponse(parts=[ThinkingPart("hm"), ToolCallPart("calculate", {"expression": f"{n}+1"}, f"k{n}")]),
            ModelRequest(parts=[ToolReturnPart("calculate", str(n + 1), f"k{n}")]),
            ModelResponse(parts=[ToolCallPart("current_time", {}, f"t{n}")]),
            ModelRequest(parts=[ToolReturnPart("current_time", "now", f"t{n}")]),
            ModelResponse(parts=[]),
        ]
    for keep in (3, 7, 11, 20):
        sent = await Compactor(ContextPolicy(kind="window", window=keep), summarize=None)(list(messages))
        calls = {p.tool_call_id for m in sent for p in m.parts if isinstance(p, ToolCallPart)}
        returns = {p.tool_call_id for m in sent for p in m.parts if isinstance(p, ToolReturnPart)}
        assert calls == returns and isinstance(sent[0].parts[0], UserPromptPart), keep


def test_every_tool_is_on_the_chat_agent():
    assert set(chat_tools().tools) == ALL_TOOLS


# -- a tool that waits for the visitor's approval ---------------------------------------------------


async def titles(store, owner="amara") -> list[str]:
    return sorted(summary.title for summary in await store.list_sessions(owner))


async def test_deleting_a_chat_waits_for_approve_and_deny_leaves_it(store):
    service = service_on(store)
    await turn(service, "Recetas de paella valenciana", conversation="paella")
    await turn(service, "Recetas de paella valenciana", owner="mallory", conversation="theirs")
    asked = (await turn(service, "Delete my conversation titled Recetas de paella valenciana"))[-1]
    (step,) = asked.steps
    assert step.awaiting_approval and not step.done and step.tool == "delete_my_conversation"
    question = answer_messages(asked)[-1]
    assert [option["value"] for option in question["options"]] == [APPROVE, DENY]
    assert "Recetas de paella valenciana" in await titles(store)  # nothing happens before the answer
    reopened = to_bubbles(await service.edits.load_messages("amara", "t1"))  # a reload asks the same question
    assert reopened[-1]["options"] == question["options"] and "waiting for you" in reopened[-2]["metadata"]["title"]

    denied = (await turn(service, "Deny"))[-1]
    assert denied.status is RunStatus.COMPLETED and denied.steps[0].error == DENIED
    assert "Recetas de paella valenciana" in await titles(store) and "nothing was changed" in denied.text
    assert "options" not in to_bubbles(await service.edits.load_messages("amara", "t1"))[-1]

    await turn(service, "Delete my conversation titled Recetas de paella valenciana")
    approved = (await turn(service, "approve"))[-1]
    assert approved.steps[0].result == "Deleted the chat 'Recetas de paella valenciana'."
    assert "Recetas de paella valenciana" not in await titles(store)
    assert await titles(store, "mallory") == ["Recetas de paella valenciana"]  # only the visitor's own


@pytest.mark.parametrize(
    ("answer", "settled"),
    [("Approve", "✅ Approved"), ("deny", "✋ Denied"), ("What is 2 * 3?", "↪ Passed over")],
)
async def test_an_answered_question_is_a_settled_card_live_and_when_shown_again(store, answer, settled):
    service = service_on(store)
    await turn(service, "Notes on Tbilisi", conversation="notes")
    asked = (await turn(service, "Delete my chat called Notes on Tbilisi"))[-1]
    page = [{"role": "user", "content": [{"type": "text", "text": "Delete my chat called Notes on Tbilisi"}]}]
    page += answer_messages(asked)
    step, question = page[1], page[-1]
    assert "waiting for you" in step["metadata"]["title"] and step["metadata"]["status"] == "done"  # no spinner
    assert settle_shown(page, answer)  # what the page shows as the answer starts
    assert (step["metadata"]["title"], step["metadata"]["status"]) == (f"🛠️ delete_my_conversation · {settled}", "done")
    assert "options" not in question and question["content"].startswith(settled.replace(" ", " **", 1))
    assert not settle_shown([*page, {"role": "user", "content": answer}], answer)  # nothing waits any more

    answered = (await turn(service, answer))[-1]
    stored = to_bubbles(await service.edits.load_messages("amara", "t1"))
    steps = [bubble["metadata"] for bubble in stored if "metadata" in bubble]
    assert (steps[0]["title"], steps[0]["status"]) == (f"🛠️ delete_my_conversation · {settled}", "done")
    assert "waiting for you" not in to_markdown("t", await service.edits.load_messages("amara", "t1"))
    if answer != "What is 2 * 3?":  # the answer's own step says the same as the reloaded one
        assert step_bubble_title(answered) == f"🛠️ delete_my_conversation · {settled}"


def step_bubble_title(update) -> str:
    return next(bubble["metadata"]["title"] for bubble in answer_messages(update) if "metadata" in bubble)


async def test_an_ordinary_message_while_a_call_waits_leaves_it_unanswered_and_the_chat_goes_on(store):
    service = service_on(store)
    await turn(service, "Notes on Ulaanbaatar", conversation="notes")
    await turn(service, "remove my chat called Notes on Ulaanbaatar")
    moved_on = (await turn(service, "Actually, what is 3 * 14?"))[-1]
    assert moved_on.status is RunStatus.COMPLETED and "42" in moved_on.text
    assert "Notes on Ulaanbaatar" in await titles(store)
    assert (await turn(service, "Approve"))[-1].steps == ()  # nothing waits any more: an ordinary message


async def test_without_the_approvals_wing_no_tool_waits_and_the_chat_goes_on(store):
    """Leaving approvals out of server.chat_wings leaves out the tools that wait for one: a call nobody can
    answer would otherwise block the conversation (pydantic-ai refuses a prompt after an unanswered call)."""
    service = chat_service(store, ScriptedResolver(), approvals=False, min_update_interval=0)
    await turn(service, "Ideen für den Garten", conversation="garten")
    asked = (await turn(service, "Lösche meine Unterhaltung „Ideen für den Garten“", conversation="c-9"))[-1]
    assert asked.status is RunStatus.COMPLETED and asked.steps == ()
    assert "Ideen für den Garten" in await titles(store)
    after = (await turn(service, "What is 12 * 12?", conversation="c-9"))[-1]
    assert after.status is RunStatus.COMPLETED and "144" in after.text


async def test_the_tool_never_deletes_the_chat_it_answers_in(store):
    service = service_on(store)
    await turn(service, "Delete my chat called Delete my chat called", conversation="self")
    final = (await turn(service, "Approve", conversation="self"))[-1]
    assert final.steps[0].error is not None and await titles(store) != []


async def test_the_time_tool_uses_the_visitors_time_zone_and_ignores_one_it_does_not_know(store):
    service = service_on(store)

    async def told(zone: str | None) -> str:
        updates = [u async for u in service.run_turn("amara", f"z-{zone}", "What time is it?", "demo", time_zone=zone)]
        return updates[-1].steps[0].result

    assert (await told("Pacific/Auckland")).endswith("(Pacific/Auckland)")
    assert (await told("Not/A_Zone")).endswith("(UTC)")
    assert (await told("../../etc/passwd")).endswith("(UTC)")


async def test_a_tool_that_runs_too_long_is_cut_off_and_the_model_is_told(store):
    tools = chat_tools(timeout=0.05)

    async def weather_in(city: str) -> str:
        """The weather in a city (this one never answers in time)."""
        await asyncio.sleep(30)
        return "sunny"

    tools.add_function(weather_in)
    final = (await turn(service_on(store, tools=tools), 'call weather_in with {"city": "Reykjavík"}'))[-1]
    assert final.status is RunStatus.COMPLETED
    (step,) = final.steps
    assert step.error is not None and "time" in step.error.lower() and step.result is None
    assert "could not do that" in final.text
