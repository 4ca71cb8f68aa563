"""The OpenAI-compatible API (`/v1`), driven by the official `openai` client against the real server."""

from __future__ import annotations

import secrets
import time

import httpx
import openai
import pytest

from chat.config import Settings
from tests.apps import running_app


@pytest.fixture(scope="module")
def app():
    settings = Settings(
        demo_first_token_delay=0.05, demo_tokens_per_second=80, warm_up=False, max_running_per_visitor=1
    )
    with running_app(settings) as served:
        yield served


def client_of(app, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app.url}v1", api_key=key or f"sk-test-{secrets.token_urlsafe(16)}", max_retries=0)


def test_the_models_are_the_ones_this_server_offers(app):
    assert [model.id for model in client_of(app).models.list()] == app.service.models.offered()
    assert "demo" in app.service.models.offered()


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

    from chat.completions import BadCompletionRequest, ChatMessageIn, to_model_messages

    history, prompt = to_model_messages(
        [
            ChatMessageIn("system", "Sé breve."),
            ChatMessageIn("user", "Hola, soy Íñigo."),
            ChatMessageIn("assistant", "¡Hola, Íñigo!"),
            ChatMessageIn("developer", "Answer in Spanish."),
            ChatMessageIn("user", "¿Cómo me llamo?"),
        ]
    )
    assert prompt == "¿Cómo me llamo?"
    assert [type(m) for m in history] == [ModelRequest, ModelResponse, ModelRequest]
    assert [type(p) for p in history[0].parts] == [SystemPromptPart, UserPromptPart]
    assert history[1].parts[0].content == "¡Hola, Íñigo!"
    assert isinstance(history[2].parts[0], SystemPromptPart)
    with pytest.raises(BadCompletionRequest):
        to_model_messages([ChatMessageIn("user", "x"), ChatMessageIn("tool", "42"), ChatMessageIn("user", "y")])
    with pytest.raises(BadCompletionRequest):
        to_model_messages([ChatMessageIn("user", "x"), ChatMessageIn("assistant", "y")])
