"""`python app.py` as a Hugging Face Space starts it: SPACE_ID set, nothing else configured, behind a proxy.

A Space is public, and a script there can make a new visitor id per request; so by default one network
address may run only so many answers, and that address is the visitor's own, not the Space's proxy's."""

from __future__ import annotations

import contextlib
import json
import os

import httpx
from gradio_client import Client

from chat.config import Settings
from chat.options import PER_ADDRESS_DEFAULTS, PRIVATE_NETWORKS, parse_settings

SPACE_MAX_RUNNING_PER_ADDRESS = PER_ADDRESS_DEFAULTS["max_running_per_address"]
from tests.apps import app_process


def test_on_a_space_one_address_may_run_a_few_answers_unless_the_owner_says_otherwise():
    assert parse_settings({}).max_running_per_address == Settings.max_running_per_address == 0
    on_a_space = {"SPACE_ID": "someone/chat"}
    assert parse_settings(on_a_space).max_running_per_address == SPACE_MAX_RUNNING_PER_ADDRESS > 0
    assert parse_settings(on_a_space | {"CHAT_MAX_RUNNING_PER_ADDRESS": "0"}).max_running_per_address == 0
    assert parse_settings(on_a_space, ["--max-running-per-address", "4"]).max_running_per_address == 4
    assert parse_settings({}).forwarded_allow_ips == ""  # off a Space no proxy is believed, not even 127.0.0.1
    assert parse_settings(on_a_space).forwarded_allow_ips == PRIVATE_NETWORKS
    assert parse_settings(on_a_space | {"FORWARDED_ALLOW_IPS": "10.9.8.7"}).forwarded_allow_ips == "10.9.8.7"


def _new_visitor_from(http: httpx.Client, address: str) -> dict[str, str]:
    """A brand-new visitor id (a script can make one per request), as the Space's proxy forwards its request."""
    return {"x-chat-owner": http.post("api/session").json()["owner"], "x-forwarded-for": address}


def _start(http: httpx.Client, streams: contextlib.ExitStack, address: str) -> None:
    """A long answer for a brand-new visitor id from `address`; returns once it runs."""
    headers = _new_visitor_from(http, address)
    response = streams.enter_context(
        http.stream("POST", "api/chat", json={"message": "count to 4000"}, headers=headers)
    )
    assert response.status_code == 200
    assert next(line for line in response.iter_lines() if line == "event: delta")


def test_a_space_limits_each_visitors_own_address_which_a_client_cannot_forge(tmp_path):
    environment = dict(os.environ, SPACE_ID="someone/chat", CHAT_DB=str(tmp_path / "chat.db"))
    environment |= {"CHAT_DEMO_TPS": "20", "CHAT_DEMO_DELAY": "0.05"}
    environment.pop("FORWARDED_ALLOW_IPS", None)
    busy, other = "203.0.113.77", "198.51.100.4"
    with (
        app_process(environment) as (_, url),
        httpx.Client(base_url=url, timeout=30) as http,
        contextlib.ExitStack() as streams,
    ):
        for _ in range(SPACE_MAX_RUNNING_PER_ADDRESS):
            _start(http, streams, busy)

        def ask(forwarded_for: str, message: str) -> httpx.Response:
            return http.post("api/chat", json={"message": message}, headers=_new_visitor_from(http, forwarded_for))

        refused = ask(busy, "Grüß Gott!")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "network address" in refused.json()["error"]
        # An address the client writes in front of its own is not the one counted.
        forged = ask(f"192.0.2.{SPACE_MAX_RUNNING_PER_ADDRESS}, {busy}", "and now?")
        assert forged.status_code == 429
        # The page's route counts the same address.
        page = Client(url, verbose=False, headers={"x-forwarded-for": busy})
        answer, _, _ = page.predict("Grüß Gott!", "demo", http.post("api/session").json()["owner"], api_name="/chat")
        assert answer.startswith("⚠️") and "network address" in answer
        # Another visitor's address is not held up by this one's answers.
        elsewhere = ask(other, "count to 3")
        assert elsewhere.status_code == 200, elsewhere.text
        done = [line for line in elsewhere.text.splitlines() if line.startswith("data:")][-1]
        assert json.loads(done[5:])["status"] == "completed"
