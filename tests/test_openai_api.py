"""The OpenAI-compatible API (`/v1`), driven by the official `openai` client against the real server."""

from __future__ import annotations

import hashlib
import json
import secrets
import time

import httpx
import openai
import pytest

from tests.test_vercel_ai import answer_of, chat_request, chunks_of, demo_app, sessions_of, stored, stored_id


@pytest.fixture(scope="module")
def app():
    with demo_app(demo_tokens_per_second=80, max_running_per_visitor=1) as served:
        yield served


def client_of(app, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app.url}v1", api_key=key or f"sk-test-{secrets.token_urlsafe(16)}", max_retries=0)


def test_the_models_are_the_ones_this_server_offers(app):
    assert [model.id for model in client_of(app).models.list()] == app.service.models.offered()
    assert "demo" in app.service.models.offered()


def test_a_model_offered_without_its_key_is_not_listed(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with demo_app(extra_models=("anthropic:claude-sonnet-4-5",)) as served:
        assert "anthropic:claude-sonnet-4-5" in served.service.models.offered()  # in the page's menu, marked
        assert [model.id for model in client_of(served).models.list()] == ["demo"]


def test_the_messages_arrive_as_a_conversation_and_the_answer_counts_its_usage(app):
    answer = client_of(app).chat.completions.create(
        model="demo",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "我叫王芳，今年42岁。"},
            {"role": "assistant", "content": "很高兴认识你，王芳！"},
            {"role": "user", "content": [{"type": "text", "text": "我今年几岁？"}]},
        ],
    )
    assert "42" in answer.choices[0].message.content  # the earlier turns reached the model as messages
    assert answer.choices[0].finish_reason == "stop" and answer.object == "chat.completion"
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0


def test_a_streamed_answer_arrives_in_chunks_then_its_usage_then_the_end(app):
    messages = [{"role": "user", "content": "count to 40"}]
    whole = client_of(app).chat.completions.create(model="demo", messages=messages).choices[0].message.content
    chunks = list(
        client_of(app).chat.completions.create(
            model="demo", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) > 3 and "".join(content) == whole
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_mistakes_get_openai_shaped_errors_and_no_internal_text(app):
    client = client_of(app)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-9-ultra", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as last_not_user:
        client.chat.completions.create(model="demo", messages=[{"role": "assistant", "content": "¿Hola?"}])
    assert "last message" in str(last_not_user.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="demo", messages=[])
    no_key = httpx.post(f"{app.url}v1/chat/completions", json={"model": "demo", "messages": []})
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
    not_json = httpx.post(
        f"{app.url}v1/chat/completions", content=b"{oops", headers={"authorization": "Bearer x-key-123"}
    )
    assert not_json.status_code == 400 and "Traceback" not in not_json.text


def test_each_key_is_its_own_caller_with_the_apps_limits_and_leaving_stops_the_run(app):
    busy_key, other_key = f"sk-a-{secrets.token_urlsafe(12)}", f"sk-b-{secrets.token_urlsafe(12)}"
    long = [{"role": "user", "content": "count to 5000"}]
    stream = client_of(app, busy_key).chat.completions.create(model="demo", messages=long, stream=True)
    first = [next(iter(stream)) for _ in range(3)]
    assert first[0].choices[0].delta.role == "assistant"
    with pytest.raises(openai.RateLimitError) as limited:  # one running answer per caller here
        client_of(app, busy_key).chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    assert int(limited.value.response.headers["retry-after"]) >= 1
    other = client_of(app, other_key).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hi"}]
    )
    assert other.choices[0].message.content  # another key is another caller

    stream.close()  # the client goes away: the run stops, like Stop
    deadline = time.monotonic() + 10
    while True:
        try:
            client_of(app, busy_key).chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the answer went on after its client left"
            time.sleep(0.1)


def test_openai_messages_become_pydantic_ai_requests_and_responses_in_order():
    from pydantic_ai.messages import ModelRequest, ModelResponse, SystemPromptPart, UserPromptPart

    from chat.wings.completions import BadCompletionRequest, ChatMessageIn, to_model_messages

    asked = to_model_messages(
        [
            ChatMessageIn("system", "Sé breve."),
            ChatMessageIn("user", "Hola, soy Íñigo."),
            ChatMessageIn("assistant", "¡Hola, Íñigo!"),
            ChatMessageIn("developer", "Answer in Spanish."),
            ChatMessageIn("user", "¿Cómo me llamo?"),
        ]
    )
    history, prompt = asked.history, asked.prompt
    assert prompt == "¿Cómo me llamo?" and asked.tool_results is None
    assert [type(m) for m in history] == [ModelRequest, ModelResponse, ModelRequest]
    assert [type(p) for p in history[0].parts] == [SystemPromptPart, UserPromptPart]
    assert history[1].parts[0].content == "¡Hola, Íñigo!"
    assert isinstance(history[2].parts[0], SystemPromptPart)
    with pytest.raises(BadCompletionRequest):  # a tool result for no call
        to_model_messages(
            [ChatMessageIn("user", "x"), ChatMessageIn("tool", "42", tool_call_id="c9"), ChatMessageIn("user", "y")]
        )
    with pytest.raises(BadCompletionRequest):
        to_model_messages([ChatMessageIn("user", "x"), ChatMessageIn("assistant", "y")])


def test_with_a_conversation_id_the_turns_are_stored_and_go_on_over_other_routes(app):
    owner, conversation = secrets.token_urlsafe(24), secrets.token_urlsafe(12)
    headers = {"X-Conversation-Id": conversation, "X-Chat-Owner": owner}
    client = client_of(app)
    intro = [{"role": "user", "content": "Меня зовут Ольга, мне 33 года. I'm Olga, I am 33"}]
    first = client.chat.completions.create(model="demo", messages=intro, extra_headers=headers)
    assert "Olga" in first.choices[0].message.content
    # The same visitor on the Vercel AI route, by the same owner token: the chat goes on.
    later = chat_request(conversation, intro[0]["content"], first.choices[0].message.content, "how old am I?")
    over_vercel = httpx.post(f"{app.url}api/vercel-ai", json=later, headers={"x-chat-owner": owner}, timeout=60)
    assert "33" in answer_of(chunks_of(over_vercel.text))
    # Back on /v1 with the new message alone: the stored conversation is the history.
    streamed = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "what is my name?"}], stream=True, extra_headers=headers
    )
    assert "Olga" in "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert len(stored(app, owner, conversation)) == 6
    assert [s.conversation_id for s in sessions_of(app, owner)] == [stored_id(app, owner, conversation)]


def test_a_stored_conversation_is_the_callers_own_and_its_tools_run(app):
    conversation, key = secrets.token_urlsafe(12), f"sk-mine-{secrets.token_urlsafe(16)}"
    mine, theirs = client_of(app, key), client_of(app)
    headers = {"X-Conversation-Id": conversation}
    answer = mine.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Combien font 41 * 17 ?"}], extra_headers=headers
    )
    assert "697" in answer.choices[0].message.content
    owner = "key:" + hashlib.sha256(key.encode()).hexdigest()  # the key is kept only as this hash
    returns = [p for m in stored(app, owner, conversation) for p in m.parts if p.part_kind == "tool-return"]
    assert [(r.tool_name, r.content) for r in returns] == [("calculate", "697")]  # the app's tools ran
    # Another key naming the same conversation gets a conversation of its own: nothing of this one.
    other = theirs.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "what did I ask?"}], extra_headers=headers
    )
    assert "697" not in other.choices[0].message.content and "41" not in other.choices[0].message.content
    assert len(stored(app, owner, conversation)) == 4  # the question, the tool call, its return, the answer
    with pytest.raises(openai.BadRequestError):
        mine.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Chat-Owner": "x"}
        )


def test_a_clients_own_tool_round_trip_reaches_the_model_as_calls_and_returns(app):
    from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart

    from chat.wings.completions import ChatMessageIn, ToolCallIn, to_model_messages

    asked = to_model_messages(
        [
            ChatMessageIn("user", "Quel temps fait-il à Lyon ?"),
            ChatMessageIn("assistant", "", (ToolCallIn("call_7", "weather", '{"city": "Lyon"}'),)),
            ChatMessageIn("tool", "18 °C, nuageux", tool_call_id="call_7"),
            ChatMessageIn("assistant", "Il fait 18 °C et nuageux."),
            ChatMessageIn("user", "Et demain ?"),
        ]
    )
    history, prompt = asked.history, asked.prompt
    assert prompt == "Et demain ?"
    assert [type(m) for m in history] == [ModelRequest, ModelResponse, ModelRequest, ModelResponse]
    [call] = history[1].parts
    assert isinstance(call, ToolCallPart) and call.args_as_dict() == {"city": "Lyon"} and call.tool_call_id == "call_7"
    [returned] = history[2].parts
    assert isinstance(returned, ToolReturnPart) and returned.tool_name == "weather"
    assert returned.content == "18 °C, nuageux" and returned.tool_call_id == "call_7"
    # The same over HTTP with the official client: accepted, answered, nothing internal in the way.
    answer = client_of(app).chat.completions.create(
        model="demo",
        messages=[
            {"role": "user", "content": "Quel temps fait-il à Lyon ?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_7",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Lyon"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_7", "content": "18 °C, nuageux"},
            {"role": "user", "content": "My name is Léa"},
        ],
    )
    assert "Léa" in answer.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as orphan:
        client_of(app).chat.completions.create(
            model="demo",
            messages=[{"role": "tool", "tool_call_id": "nope", "content": "1"}, {"role": "user", "content": "hi"}],
        )
    assert "tool call" in str(orphan.value)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weer_opvragen",
        "description": "Het weer in een stad",
        "parameters": {"type": "object", "properties": {"stad": {"type": "string"}}, "required": ["stad"]},
    },
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_client_declares_a_tool_gets_its_call_sends_the_result_and_gets_the_answer(app, stream):
    """The whole round trip with the official client on the demo model: the client's tool is called, the
    answer ends with `tool_calls` for the client to run, and its `tool` message carries the run on."""
    client = client_of(app)
    asked = [{"role": "user", "content": 'Kun je even run weer_opvragen with {"stad": "Utrecht"}'}]

    def ask(messages: list, **options):
        if not stream:
            choice = client.chat.completions.create(
                model="demo", messages=messages, tools=[WEATHER_TOOL], **options
            ).choices[0]
            return choice.finish_reason, choice.message.content, choice.message.tool_calls or []
        chunks = list(
            client.chat.completions.create(
                model="demo", messages=messages, tools=[WEATHER_TOOL], stream=True, **options
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        return finish[-1], text, calls

    finish, _, calls = ask(asked)
    assert finish == "tool_calls" and len(calls) == 1
    (call,) = calls
    assert call.function.name == "weer_opvragen" and json.loads(call.function.arguments) == {"stad": "Utrecht"}
    called = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call.id, "type": "function", "function": call.function.model_dump()}],
    }
    result = {"role": "tool", "tool_call_id": call.id, "content": "12 °C, motregen"}
    finish, answer, calls = ask([*asked, called, result])
    assert finish == "stop" and not calls and "12 °C, motregen" in answer
    # tool_choice "none": the tool is not offered, the model answers in words.
    finish, answer, calls = ask(asked, tool_choice="none")
    assert finish == "stop" and not calls and answer


def test_client_tools_that_cannot_be_met_are_refused_in_a_sentence(app):
    client = client_of(app)
    hello = [{"role": "user", "content": "hallo"}]
    named = {"type": "function", "function": {"name": "ander_gereedschap"}}
    with pytest.raises(openai.BadRequestError, match="not in 'tools'"):
        client.chat.completions.create(model="demo", messages=hello, tools=[WEATHER_TOOL], tool_choice=named)
    with pytest.raises(openai.BadRequestError, match="needs at least one tool"):
        client.chat.completions.create(model="demo", messages=hello, tool_choice="required")
    with pytest.raises(openai.BadRequestError, match="follow the assistant message"):
        client.chat.completions.create(
            model="demo", messages=[*hello, {"role": "tool", "tool_call_id": "x1", "content": "?"}]
        )
    with pytest.raises(openai.BadRequestError, match="without x-conversation-id"):
        client.chat.completions.create(
            model="demo", messages=hello, tools=[WEATHER_TOOL], extra_headers={"X-Conversation-Id": "werk"}
        )


def test_an_upstream_model_receives_the_clients_tools_and_its_call_comes_back_to_the_client(monkeypatch):
    """Through the app to a fake OpenAI-compatible provider: the tools arrive there as declared, a forced
    tool_choice too, and the provider's call of the client's tool reaches the client."""
    from pydantic_ai import models

    from tests.fake_openai import FakeOpenAIServer

    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)  # only this loopback server is ever reached

    with FakeOpenAIServer() as upstream, demo_app(model="fake-model", base_url=upstream.base_url) as served:
        client = client_of(served)
        asked = [{"role": "user", "content": "tool:weer_opvragen voor Gent"}]
        forced = {"type": "function", "function": {"name": "weer_opvragen"}}
        choice = client.chat.completions.create(
            model="compatible:fake-model", messages=asked, tools=[WEATHER_TOOL], tool_choice=forced
        ).choices[0]
        sent = upstream.log.requests[-1]
        assert [tool["function"]["name"] for tool in sent["tools"]] == ["weer_opvragen"]
        assert sent["tools"][0]["function"]["parameters"]["required"] == ["stad"]
        # Forced: pydantic-ai asks for a call ("required") among the named tool alone, or names it.
        assert sent["tool_choice"] in ("required", {"type": "function", "function": {"name": "weer_opvragen"}})
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls
        assert call.function.name == "weer_opvragen" and "Gent" in call.function.arguments
        called = {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]}
        result = {"role": "tool", "tool_call_id": call.id, "content": "9 graden"}
        answer = client.chat.completions.create(
            model="compatible:fake-model", messages=[*asked, called, result], tools=[WEATHER_TOOL]
        )
        assert "9 graden" in answer.choices[0].message.content
        assert upstream.log.requests[-1]["messages"][-1]["role"] == "tool"


def test_a_provider_failure_reaches_the_client_as_a_status_it_can_act_on_without_hidden_retries(monkeypatch):
    """A fake provider's faults, through /v1 with a client that does not retry (so each call is one request
    of the client's): the provider is asked once per call, and the status says what to do."""
    from pydantic_ai import models

    from tests.fake_openai import FakeOpenAIServer

    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)  # only this loopback server is ever reached
    # No retries of the page's own either (the stored conversation's turn is the page's).
    settings = {"model": "fake-model", "extra_models": ("openai:gpt-4o-mini",), "provider_retries": 0}
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer() as upstream, demo_app(base_url=upstream.base_url, **settings) as served:
        key = f"sk-{secrets.token_urlsafe(16)}"

        def ask(prompt: str, model: str = "compatible:fake-model") -> httpx.Response:
            body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
            headers = {"Authorization": f"Bearer {key}"}
            return httpx.post(f"{served.url}v1/chat/completions", json=body, headers=headers, timeout=60)

        before = len(upstream.log.requests)
        limited = ask("fault:429 bitte")
        assert len(upstream.log.requests) == before + 1  # the app's own retries would have asked three times
        assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
        assert limited.json()["error"]["code"] == "rate_limit_exceeded" and "org-Zq81x" not in limited.text
        failed = ask("fault:500 bitte")
        assert failed.status_code == 502 and "x-should-retry" not in failed.headers  # worth another try
        refused = ask("fault:401 bitte")
        assert refused.status_code == 502 and refused.headers["x-should-retry"] == "false"
        no_key = ask("hallo", model="openai:gpt-4o-mini")
        assert no_key.status_code == 503 and no_key.headers["x-should-retry"] == "false"
        assert "API key" in no_key.json()["error"]["message"]
        # The same statuses for a stored conversation (the page's turn behind X-Conversation-Id).
        body = {"model": "compatible:fake-model", "messages": [{"role": "user", "content": "fault:429 erneut"}]}
        headers = {"Authorization": f"Bearer {key}", "X-Conversation-Id": "gespeichert"}
        stored_limit = httpx.post(f"{served.url}v1/chat/completions", json=body, headers=headers, timeout=60)
        assert stored_limit.status_code == 429 and stored_limit.headers["retry-after"] == "7"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_answer_ends_before_a_stop_sequence(app, stream):
    client = client_of(app)
    counting = [{"role": "user", "content": "count to 30"}]
    if stream:
        chunks = list(client.chat.completions.create(model="demo", messages=counting, stop=["12 ", "7 8"], stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    else:
        choice = client.chat.completions.create(model="demo", messages=counting, stop="7 8").choices[0]
        text, finish = choice.message.content, choice.finish_reason
    assert finish == "stop" and text.startswith("1 2 3") and text.rstrip().endswith("6") and "7" not in text


def test_what_the_server_cannot_give_is_refused_and_the_common_settings_reach_the_model(app):
    client = client_of(app)
    hello = [{"role": "user", "content": "bonjour"}]
    with pytest.raises(openai.BadRequestError, match="n above 1"):
        client.chat.completions.create(model="demo", messages=hello, n=3)
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        client.chat.completions.create(model="demo", messages=hello, logprobs=True)
    answer = client.chat.completions.create(
        model="demo", messages=hello, n=1, seed=11, top_p=0.5, presence_penalty=0.3, frequency_penalty=-0.2
    )
    assert answer.choices[0].message.content


def test_the_common_settings_arrive_at_an_upstream_model(monkeypatch):
    from pydantic_ai import models

    from tests.fake_openai import FakeOpenAIServer

    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)  # only this loopback server is ever reached
    with FakeOpenAIServer() as upstream, demo_app(model="fake-model", base_url=upstream.base_url) as served:
        client_of(served).chat.completions.create(
            model="compatible:fake-model",
            messages=[{"role": "user", "content": "hoi"}],
            seed=5,
            top_p=0.25,
            presence_penalty=0.5,
            frequency_penalty=0.75,
            stop=["END"],
        )
        sent = upstream.log.requests[-1]
        assert (sent["seed"], sent["top_p"], sent["presence_penalty"], sent["frequency_penalty"]) == (
            5,
            0.25,
            0.5,
            0.75,
        )
        assert sent["stop"] == ["END"]


def test_a_response_format_is_answered_with_json_of_that_shape_by_the_demo_model(app):
    client = client_of(app)
    asked = [{"role": "user", "content": "Drei Städte an der Donau, bitte"}]
    schema = {
        "type": "object",
        "properties": {
            "städte": {"type": "array", "items": {"$ref": "#/$defs/Stadt"}, "minItems": 3},
            "fluss": {"type": "string", "enum": ["Donau", "Rhein"]},
        },
        "required": ["städte", "fluss"],
        "$defs": {
            "Stadt": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "einwohner": {"type": "integer", "minimum": 1000}},
            }
        },
    }
    shaped = {"type": "json_schema", "json_schema": {"name": "staedte", "schema": schema, "strict": True}}
    answer = json.loads(
        client.chat.completions.create(model="demo", messages=asked, response_format=shaped).choices[0].message.content
    )
    assert answer["fluss"] == "Donau" and len(answer["städte"]) >= 3
    assert all(isinstance(city["name"], str) and city["einwohner"] >= 1000 for city in answer["städte"])
    streamed = client.chat.completions.create(
        model="demo", messages=asked, response_format={"type": "json_object"}, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert isinstance(json.loads(text), dict)
    with pytest.raises(openai.BadRequestError, match="json_schema"):
        client.chat.completions.create(model="demo", messages=asked, response_format={"type": "json_schema"})


def test_pydantic_ai_as_a_client_of_v1_calls_its_own_tool_and_gets_its_output_type(app, monkeypatch):
    """An agent of pydantic-ai's own, on an OpenAI model pointed at this server: its tool runs on its side,
    and its output type (an output tool it declares) comes back validated."""
    from pydantic import BaseModel
    from pydantic_ai import Agent, models
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)  # the model is this test's own server

    class Forecast(BaseModel):
        city: str
        celsius: float
        dry: bool

    provider = OpenAIProvider(base_url=f"{app.url}v1", api_key=f"sk-{secrets.token_urlsafe(16)}")
    agent = Agent(OpenAIChatModel("demo", provider=provider), output_type=Forecast)
    asked: list[str] = []

    @agent.tool_plain
    def sky_over(city: str) -> str:
        """The sky over a city."""
        asked.append(city)
        return "clear, 21 °C"

    result = agent.run_sync('run sky_over with {"city": "Valparaíso"}')
    assert asked == ["Valparaíso"]  # the client's own tool ran on the client's side
    assert isinstance(result.output, Forecast) and result.output.city


def test_a_client_that_leaves_before_the_first_chunk_leaves_nothing_running(app):
    """/v1's Stop is leaving: twenty clients that close the stream as soon as it answers, before any text,
    leave no answer running (each would go on holding one of its key's slots)."""
    keys = [f"sk-{secrets.token_urlsafe(16)}" for _ in range(20)]
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "count to 5000"}]}
    with httpx.Client(base_url=app.url, timeout=30) as http:
        for key in keys:
            headers = {"Authorization": f"Bearer {key}"}
            with http.stream("POST", "v1/chat/completions", json=body, headers=headers) as response:
                assert response.status_code == 200, response.read()  # closed here, before reading the answer
    owners = ["key:" + hashlib.sha256(key.encode()).hexdigest() for key in keys]
    deadline = time.monotonic() + 20  # each answer alone would take over a minute
    while any(app.service.active.running_for(owner) for owner in owners):
        assert time.monotonic() < deadline, "an answer went on after its client left"
        time.sleep(0.05)
