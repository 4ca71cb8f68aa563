"""One network address making a fresh identity per request (a new `POST /api/session`, owner token or `/v1` key) is
held to what one address may do, on the real server; and the address is the one a configured proxy forwards,
never one a client writes into `X-Forwarded-For` itself, through deploy/nginx.conf or straight to the app.

The app here trusts 127.0.0.1 as its proxy: a request straight from the test with `X-Forwarded-For: <address>`
stands for a visitor at that address, forwarded by a proxy. Each test has addresses of its own."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from pydantic_ai import models

from chat.config import Settings
from deploy.local_postgres import free_port
from deploy.scale_out import nginx, nginx_program
from tests.apps import running_app, visitor_token
from tests.fake_openai import FakeOpenAIServer

VISITORS, MESSAGES, TOKENS = 5, 8, 50
"""Per address: visitors in an hour, answers started in a minute, tokens of paid models in a day (a fake-model
answer is 31 tokens)."""
FRESH = 25
PAID, FREE = "compatible:fake-model", "demo"


def fast(**limits: object) -> Settings:
    return Settings(demo_first_token_delay=0.01, demo_tokens_per_second=0, warm_up=False, **limits)


@pytest.fixture(scope="module")
def provider():
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture(scope="module")
def app(provider):
    """The app behind a proxy on 127.0.0.1, with a paid model (an OpenAI-compatible server with a key)."""
    settings = fast(
        forwarded_allow_ips="127.0.0.1",
        max_visitors_per_address=VISITORS,
        max_messages_per_minute_per_address=MESSAGES,
        max_tokens_per_day_per_address=TOKENS,
        model="fake-model",
        base_url=provider.base_url,
        api_key="sk-test",
        provider_retries=0,
    )
    with running_app(settings) as running:
        yield running


@pytest.fixture(scope="module")
def through_nginx(app, tmp_path_factory):
    """deploy/nginx.conf in front of the app, as `python -m deploy.scale_out` runs it."""
    if nginx_program() is None:
        pytest.skip("nginx is not installed")
    port = free_port()
    with nginx([int(app.url.rstrip("/").rsplit(":", 1)[1])], port, tmp_path_factory.mktemp("nginx")):
        yield f"http://127.0.0.1:{port}/"


def from_address(address: str, owner: str | None = None) -> dict[str, str]:
    return {"x-forwarded-for": address} | ({"x-chat-owner": owner} if owner else {})


def chat(http: httpx.Client, address: str, owner: str, message: str = "count to 3") -> httpx.Response:
    return http.post("api/chat", json={"message": message, "model": FREE}, headers=from_address(address, owner))


def assert_held(response: httpx.Response, words: str) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) > 0
    error = response.json()["error"]
    sentence = error["message"] if isinstance(error, dict) else error
    assert words in sentence and sentence.endswith("."), sentence


def test_fresh_sessions_and_owner_tokens_from_one_address_are_held_to_its_visitors(app):
    with httpx.Client(base_url=app.url, timeout=30) as http:
        sessions = [http.post("api/session", headers=from_address("203.0.113.1")) for _ in range(FRESH)]
        assert [s.status_code for s in sessions] == [200] * VISITORS + [429] * (FRESH - VISITORS)
        assert_held(sessions[-1], "different visitors")
        handed_out = sessions[0].json()["owner"]
        assert "event: done" in chat(http, "203.0.113.1", handed_out).text  # a token it was given works
        assert http.post("api/session", headers=from_address("203.0.113.2")).status_code == 200  # others' own

        answers = [chat(http, "203.0.113.3", visitor_token(f"fresh{n}")) for n in range(FRESH)]
        assert [a.status_code for a in answers] == [200] * VISITORS + [429] * (FRESH - VISITORS)
        assert all("event: done" in a.text for a in answers[:VISITORS])
        assert_held(answers[-1], "network address")


def test_fresh_v1_keys_from_one_address_are_held_to_its_visitors(app):
    body = {"model": FREE, "messages": [{"role": "user", "content": "count to 3"}]}
    with httpx.Client(base_url=app.url, timeout=30) as http:
        answers = [
            http.post(
                "v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer sk-{secrets.token_hex(8)}", "x-forwarded-for": "203.0.113.4"},
            )
            for _ in range(FRESH)
        ]
    assert [a.status_code for a in answers] == [200] * VISITORS + [429] * (FRESH - VISITORS)
    assert answers[-1].json()["error"]["code"] == "rate_limit_exceeded"
    assert_held(answers[-1], "different visitors")


def test_an_address_starts_so_many_answers_a_minute_whoever_sends_them_on_the_apis_and_the_page(app):
    from gradio_client import Client

    address = "203.0.113.5"
    owners = [visitor_token(f"sender{n}") for n in range(VISITORS)]
    with httpx.Client(base_url=app.url, timeout=30) as http:
        answers = [chat(http, address, owners[n % VISITORS]) for n in range(FRESH)]
    assert [a.status_code for a in answers] == [200] * MESSAGES + [429] * (FRESH - MESSAGES)
    assert_held(answers[-1], "messages were sent from your network address in the last minute")
    page = Client(app.url, verbose=False, headers={"x-forwarded-for": address})
    answer, _, _ = page.predict("Merhaba", FREE, owners[0], api_name="/chat")
    assert answer.startswith("⚠️") and "from your network address in the last minute" in answer
    fresh, _, _ = page.predict("Merhaba", FREE, visitor_token("page"), api_name="/chat")
    assert fresh.startswith("⚠️") and "network address" in fresh  # a new id from the page is held too


def test_paid_tokens_are_budgeted_per_address_and_the_free_model_still_answers(app, monkeypatch):
    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)  # only the loopback fake provider is reached
    address = "203.0.113.6"
    with httpx.Client(base_url=app.url, timeout=30) as http:

        def ask(model: str, owner: str) -> httpx.Response:
            return http.post(
                "api/chat", json={"message": "hello", "model": model}, headers=from_address(address, owner)
            )

        spenders = [visitor_token(f"spender{n}") for n in range(3)]
        first, second = ask(PAID, spenders[0]), ask(PAID, spenders[1])  # 31 tokens each: over 50 after two
        assert "word9" in first.text and "word9" in second.text
        held = ask(PAID, spenders[2])
        assert_held(held, "tokens of this server's paid models in the last 24 hours")
        assert 0 < int(held.headers["retry-after"]) <= 86400
        v1 = http.post(
            "v1/chat/completions",
            json={"model": PAID, "messages": [{"role": "user", "content": "hello"}]},
            headers={"authorization": "Bearer sk-spender", "x-forwarded-for": address},
        )
        assert v1.status_code == 429 and "paid models" in v1.json()["error"]["message"]
        assert "event: done" in ask(FREE, spenders[2]).text
        elsewhere = http.post(
            "api/chat", json={"message": "hello", "model": PAID}, headers=from_address("203.0.113.7", spenders[2])
        )
        assert "word9" in elsewhere.text


def test_through_nginx_a_forged_x_forwarded_for_is_never_a_fresh_address(app, through_nginx):
    with httpx.Client(base_url=through_nginx, timeout=30) as http:
        # nginx replaces the header with the address it was reached from (this test's, 127.0.0.1)
        sessions = [http.post("api/session", headers=from_address(f"192.0.2.{n}")) for n in range(FRESH)]
        assert [s.status_code for s in sessions] == [200] * VISITORS + [429] * (FRESH - VISITORS)
        assert_held(sessions[-1], "different visitors")
        forged = chat(http, "192.0.2.200", visitor_token("forger"))
        assert_held(forged, "network address")
        done = chat(http, "192.0.2.201", sessions[0].json()["owner"])
        assert json.loads(done.text.strip().splitlines()[-1][5:])["status"] == "completed"


def test_straight_to_the_app_a_forged_x_forwarded_for_counts_only_when_a_proxy_is_configured():
    with running_app(fast(max_visitors_per_address=VISITORS)) as direct, httpx.Client(base_url=direct.url) as http:
        sessions = [http.post("api/session", headers=from_address(f"192.0.2.{n}")) for n in range(FRESH)]
        assert [s.status_code for s in sessions] == [200] * VISITORS + [429] * (FRESH - VISITORS)
        assert_held(sessions[-1], "different visitors")
