from __future__ import annotations

import pytest
from pydantic_ai import Agent
from pydantic_ai.conversation import Conversation

from chat.demo_model import DemoModel, DemoPace, compose_reply, reply_chunks, split_into_chunks
from chat.tokens import estimate_tokens

pytestmark = pytest.mark.anyio


async def ask(agent: Agent, prompt: str, conversation: Conversation) -> tuple[list[str], Conversation, object]:
    chunks = []
    async with agent.run_stream(prompt, conversation=conversation) as run:
        async for delta in run.stream_text(delta=True, debounce_by=None):
            chunks.append(delta)
    return chunks, run.result.conversation, run.result


@pytest.fixture
def agent() -> Agent:
    return Agent(DemoModel(DemoPace.instant()), instructions="Be helpful.")


def test_chunks_rejoin_to_the_text_and_split_cjk_into_small_groups():
    text = "Hello, world! 我叫小王,今年 28。ok"
    chunks = split_into_chunks(text)
    assert "".join(chunks) == text
    assert " world!" in chunks
    assert all(len(chunk.strip()) <= 2 for chunk in chunks if "\u4e00" <= chunk.strip()[:1] <= "\u9fff")


def test_token_estimate_counts_cjk_characters_and_words():
    assert estimate_tokens("hello world") == 2
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("") == 0


async def test_streams_the_answer_in_many_chunks(agent):
    chunks, _, result = await ask(agent, "Tell me something", Conversation())
    assert len(chunks) > 20
    assert "".join(chunks) == result.output
    assert "Demo model" in result.output


@pytest.mark.parametrize(
    ("told", "age_question", "age", "name_question", "name"),
    [
        ("我叫小王,今年 28。", "我多大了?", "28", "我叫什么?", "小王"),
        ("My name is Sam and I am 41.", "How old am I?", "41", "What's my name?", "Sam"),
        ("Call me Priya, I'm 29 these days.", "so how old am i", "29", "Who am I?", "Priya"),
    ],
)
async def test_remembers_facts_across_turns(agent, told, age_question, age, name_question, name):
    _, conversation, _ = await ask(agent, told, Conversation())
    _, conversation, result = await ask(agent, age_question, conversation)
    assert age in result.output and name not in result.output
    _, _, result = await ask(agent, name_question, conversation)
    assert name in result.output and age not in result.output


async def test_without_history_it_does_not_invent_facts(agent):
    _, _, result = await ask(agent, "How old am I?", Conversation())
    assert "haven't told me" in result.output


async def test_usage_input_grows_with_history_and_output_counts_chunks(agent):
    chunks, conversation, _first = await ask(agent, "My name is Ann.", Conversation())
    first_usage = conversation.messages[-1].usage
    # one or two tokens a chunk: pydantic-ai counts a word and its punctuation apart
    assert len(chunks) <= first_usage.output_tokens <= 2 * len(chunks)
    _, conversation, _ = await ask(agent, "Tell me a story", conversation)
    second_usage = conversation.messages[-1].usage
    assert second_usage.input_tokens > first_usage.input_tokens + len(chunks) - 1
    assert first_usage.input_tokens != 50  # not FunctionModel's flat default


async def test_paces_by_first_token_delay_and_tokens_per_second(monkeypatch):
    delays: list[float] = []

    async def record_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr("chat.demo_model.asyncio.sleep", record_sleep)
    agent = Agent(DemoModel(DemoPace(first_token_delay=0.25, tokens_per_second=40)))
    chunks, _, _ = await ask(agent, "count to 5", Conversation())
    assert delays[0] == 0.25
    assert delays[1:] == [1 / 40] * (len(chunks) - 1)


def test_count_request_gives_a_long_deterministic_answer():
    from pydantic_ai.messages import ModelRequest, UserPromptPart

    reply = compose_reply([ModelRequest(parts=[UserPromptPart("please count to 300")])])
    assert reply.startswith("1 2 3") and reply.endswith("300.")


@pytest.mark.parametrize(
    "prompt", ["bitte count up to 17", "数到 23", "count to 1", "Je m'appelle Élodie et j'ai 52 ans.", "Wie geht's?"]
)
def test_streamed_chunks_are_the_whole_answer_split_as_a_provider_streams_it(prompt):
    from pydantic_ai.messages import ModelRequest, UserPromptPart

    messages = [ModelRequest(parts=[UserPromptPart(prompt)])]
    assert list(reply_chunks(messages)) == split_into_chunks(compose_reply(messages))


def test_the_longest_count_is_made_as_it_streams_not_all_at_once():
    import itertools
    import tracemalloc

    from pydantic_ai.messages import ModelRequest, UserPromptPart

    tracemalloc.start()
    try:
        chunks = reply_chunks([ModelRequest(parts=[UserPromptPart("count to 999999")])])
        first = list(itertools.islice(chunks, 1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first[:3] == ["1", " 2", " 3"] and first[-1] == " 1000"
    assert peak < 1_000_000  # the whole answer would be 7 MB of text in a million strings


@pytest.mark.parametrize(
    ("told", "name_question", "age_question", "name", "age"),
    [
        ("我叫陈静，今年35岁。", "我叫什么名字？", "我今年多大？", "陈静", "35"),
        ("你好！我叫欧阳娜娜；我 19 岁。", "我的名字是什么？", "我几岁？", "欧阳娜娜", "19"),
        ("私は山田です。今年４２歳です！", "私の名前は何ですか？", "私は何歳ですか？", "山田", "４２"),
        ("わたしの名前は花子、７歳です。", "名前は？", "いくつ？", "花子", "７"),
    ],
)
async def test_recalls_names_and_ages_told_with_full_width_punctuation(
    agent, told, name_question, age_question, name, age
):
    _, conversation, _ = await ask(agent, told, Conversation())
    _, _, by_name = await ask(agent, name_question, conversation)
    _, _, by_age = await ask(agent, age_question, conversation)
    # The name exactly, not the sentence that followed it, and no punctuation echoed back from the question.
    assert name in by_name.output and name + "，" not in by_name.output and "？" not in by_name.output
    assert by_name.output.count("。") == 1
    assert age in by_age.output and name not in by_age.output


# -- who the demo model speaks to -------------------------------------------------------------------


async def first_answer(settings_environ: dict[str, str], argv: list[str], prompt: str) -> str:
    """The demo model's answer to a first message, as the app built from this environment gives it."""
    from chat.models import ModelResolver
    from chat.options import parse_settings

    model = ModelResolver(parse_settings(settings_environ, argv), DemoPace.instant()).resolve("demo")
    async with Agent(model).run_stream(prompt) as run:
        return await run.get_output()


@pytest.mark.parametrize("prompt", ["What can you do offline?", "你能离线做什么？"])
async def test_on_a_space_the_demo_never_tells_a_visitor_to_run_the_app_or_set_a_key(prompt):
    space = {"SPACE_ID": "someone/chat"}
    for argv in ([], ["--extra-models", "openai-chat:gpt-4o-mini"]):
        said = await first_answer(space, argv, prompt)
        assert "python app.py" not in said and "API_KEY" not in said and "API key" not in said, said
    assert "Model" in await first_answer(space, ["--extra-models", "openai-chat:gpt-4o-mini"], prompt)
    on_a_laptop = await first_answer({}, [], prompt)  # the operator reads it: how to start a real model
    assert "python app.py --model" in on_a_laptop and "OPENAI_API_KEY" in on_a_laptop


async def test_only_the_first_tool_answer_of_a_chat_points_at_the_step_above():
    from chat.demo_tools import STEP_REMINDER
    from chat.wings.tools import chat_tools

    agent = Agent(DemoModel(DemoPace.instant()), toolsets=[chat_tools()])
    conversation = Conversation()
    answers = []
    for prompt in ("What is 17 * 23?", "Convert 5 km to miles", "What is 2 * 512?"):
        _, conversation, result = await ask(agent, prompt, conversation)
        answers.append(result.output)
    assert "391" in answers[0] and "1024" in answers[2] and "mi" in answers[1]
    assert [STEP_REMINDER in answer for answer in answers] == [True, False, False]
