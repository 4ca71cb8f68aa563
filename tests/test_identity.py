from __future__ import annotations

from types import SimpleNamespace

from chat.identity import visitor


def test_a_browser_token_is_the_visitor_when_nobody_is_signed_in():
    assert visitor("tok3n") == "tok3n"
    assert visitor(None) is None and visitor("") is None


def test_a_signed_in_hugging_face_user_is_their_account_whatever_the_token():
    assert visitor("tok3n", SimpleNamespace(username="alice")) == "hf:alice"


def test_a_browser_token_can_never_claim_an_account():
    assert visitor("hf:alice") is None
    assert visitor("hf:alice", SimpleNamespace(username="bob")) == "hf:bob"
