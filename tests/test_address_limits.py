"""What one network address may do whoever it claims to be (chat/address_limits.py), on a fake clock; and which
settings turn the per-address limits on (chat/options.py)."""

from __future__ import annotations

import pytest

from chat.address_limits import AddressLimits
from chat.config import Settings
from chat.errors import TokenBudgetSpent, TooManyFromAddressPerMinute, TooManyVisitors
from chat.models import ModelResolver
from chat.options import PER_ADDRESS_DEFAULTS, PRIVATE_NETWORKS, parse_settings
from chat.runs import ActiveTurns

HOME, ELSEWHERE = "198.51.100.7", "2001:db8::5"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_brings_so_many_visitors_in_any_hour_and_each_keeps_going():
    clock = Clock()
    limits = AddressLimits(visitors_per_hour=3, clock=clock)
    for n in range(3):
        limits.check(HOME, f"visitor-{n}")
        limits.started(HOME, f"visitor-{n}")
        clock.now += 600
    with pytest.raises(TooManyVisitors, match="network address") as refused:
        limits.check(HOME, "visitor-3")
    assert refused.value.retry_after_seconds == 1800  # the first was seen 30 min ago
    limits.check(HOME, "visitor-0")  # the ones already here go on
    limits.check(ELSEWHERE, "visitor-3")  # another address has its own
    clock.now += 1800
    limits.check(HOME, "visitor-3")


def test_a_visitor_who_comes_back_keeps_their_place_in_the_hour():
    clock = Clock()
    limits = AddressLimits(visitors_per_hour=2, clock=clock)
    limits.started(HOME, "ada")
    clock.now += 1000
    limits.started(HOME, "bo")
    clock.now += 2000
    limits.started(HOME, "ada")  # seen again: ada is now the latest
    clock.now += 700  # bo was seen 2,700 s ago, ada 700 s ago
    with pytest.raises(TooManyVisitors) as refused:
        limits.check(HOME, "cy")
    assert refused.value.retry_after_seconds == 900  # when bo leaves the hour


def test_owner_tokens_handed_out_count_as_visitors_of_the_address():
    clock = Clock()
    limits = AddressLimits(visitors_per_hour=2, clock=clock)
    limits.hand_out(HOME, "token-1")
    limits.hand_out(HOME, "token-2")
    with pytest.raises(TooManyVisitors):
        limits.hand_out(HOME, "token-3")
    limits.check(HOME, "token-1")  # using one handed out is not another visitor
    with pytest.raises(TooManyVisitors):
        limits.check(HOME, "made-up-token")


def test_an_address_starts_so_many_answers_in_any_minute_whoever_sends_them():
    clock = Clock()
    limits = AddressLimits(messages_per_minute=3, clock=clock)
    for n in range(3):
        limits.check(HOME, f"fresh-{n}")
        limits.started(HOME, f"fresh-{n}")
        clock.now += 10
    with pytest.raises(TooManyFromAddressPerMinute, match="last minute") as refused:
        limits.check(HOME, "fresh-3")
    assert refused.value.retry_after_seconds == 30
    limits.check(ELSEWHERE, "fresh-3")
    clock.now += 30
    limits.check(HOME, "fresh-3")


def test_paid_tokens_are_budgeted_per_address_per_day_and_free_models_are_not():
    clock = Clock()
    limits = AddressLimits(tokens_per_day=1000, clock=clock)
    limits.spend(HOME, 600)
    clock.now += 3600
    limits.check(HOME, "ada", paid=True)  # 600 of 1000 spent: one more may start
    limits.spend(HOME, 500)  # a run that started under the budget ends over it
    assert limits.spent_today(HOME) == 1100
    with pytest.raises(TokenBudgetSpent, match="24 hours") as refused:
        limits.check(HOME, "bo", paid=True)
    assert refused.value.retry_after_seconds == 82800  # the first 600 leave the day in 23 h
    limits.check(HOME, "bo", paid=False)  # the demo model still answers
    limits.check(ELSEWHERE, "bo", paid=True)
    clock.now += 82800
    limits.check(HOME, "bo", paid=True)
    assert limits.spent_today(HOME) == 500


def test_active_turns_count_the_address_of_each_run_and_what_a_paid_run_spent():
    clock = Clock()
    active = ActiveTurns(clock=clock, addresses=AddressLimits(2, 10, 100, clock=clock))
    free = active.start("ada", "chat-1", HOME)
    active.finish("ada", "chat-1", free, spent_tokens=5000)  # not paid: nothing counted
    paid = active.start("bo", "chat-2", HOME, paid=True)
    active.finish("bo", "chat-2", paid, spent_tokens=150)
    assert active.addresses.spent_today(HOME) == 150
    with pytest.raises(TokenBudgetSpent):
        active.start("ada", "chat-3", HOME, paid=True)
    with pytest.raises(TooManyVisitors):
        active.start("cy", "chat-4", HOME)
    active.start("cy", "chat-4")  # no address known (an in-process caller): not counted


def test_models_that_cost_money_are_every_providers_and_a_keyed_compatible_server():
    assert not ModelResolver(Settings()).costs_money("demo")
    assert ModelResolver(Settings()).costs_money("openai-chat:gpt-4o-mini")
    local = Settings(base_url="http://127.0.0.1:11434/v1", model="llama3.2")
    assert not ModelResolver(local).costs_money("compatible:llama3.2")
    keyed = Settings(base_url="https://api.example.com/v1", model="big", api_key="sk-...")
    assert ModelResolver(keyed).costs_money("compatible:big")


def test_per_address_limits_are_on_once_others_can_reach_the_server_and_one_setting_turns_them_off():
    on = {field: value for field, value in PER_ADDRESS_DEFAULTS.items()}
    off = dict.fromkeys(PER_ADDRESS_DEFAULTS, 0)

    def limits(environ: dict[str, str], argv: list[str] | None = None) -> dict[str, int]:
        settings = parse_settings(environ, argv or [])
        return {field: getattr(settings, field) for field in PER_ADDRESS_DEFAULTS}

    assert limits({}) == off  # 127.0.0.1 alone: one person's server
    assert limits({"SPACE_ID": "someone/chat"}) == on
    assert limits({}, ["--host", "0.0.0.0"]) == on
    assert limits({"FORWARDED_ALLOW_IPS": "127.0.0.1"}) == on  # behind a proxy
    assert limits({"SPACE_ID": "someone/chat", "CHAT_PER_ADDRESS_LIMITS": "off"}) == off  # a workshop room
    assert limits({}, ["--per-address-limits", "on"]) == on
    room = limits({"SPACE_ID": "someone/chat"}, ["--per-address-limits", "off", "--max-running-per-address", "4"])
    assert room == off | {"max_running_per_address": 4}  # one set by itself still holds
    assert limits({"SPACE_ID": "s", "CHAT_MAX_VISITORS_PER_ADDRESS": "0"})["max_visitors_per_address"] == 0


def test_x_forwarded_for_is_believed_only_from_the_proxies_configured():
    assert parse_settings({}).forwarded_allow_ips == ""  # not even from 127.0.0.1, uvicorn's own default
    assert parse_settings({"SPACE_ID": "someone/chat"}).forwarded_allow_ips == PRIVATE_NETWORKS
    assert parse_settings({"SPACE_ID": "s", "FORWARDED_ALLOW_IPS": "10.9.8.7"}).forwarded_allow_ips == "10.9.8.7"
    assert parse_settings({}, ["--forwarded-allow-ips", "127.0.0.1"]).forwarded_allow_ips == "127.0.0.1"
