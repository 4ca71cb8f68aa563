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


def test_a_cookie_verifies_only_with_the_secret_that_signed_it():
    from chat.identity import VisitorCookie

    signer = VisitorCookie(b"one secret")
    visitor_id, cookie = signer.issue()
    assert signer.verify(cookie) == visitor_id and len(visitor_id) >= 22
    assert VisitorCookie(b"another secret").verify(cookie) is None
    for damaged in ["", cookie + "x", cookie.replace(".", ""), "a.b.c", visitor_id, cookie.swapcase()]:
        assert signer.verify(damaged) is None
    assert signer.issue()[0] != visitor_id


def test_an_owner_token_has_at_least_128_random_bits_and_is_a_string():
    import pytest

    from chat.identity import MalformedOwner, checked_owner

    assert checked_owner(None) is None and checked_owner("") is None
    good = "Abc_def-0123456789xyzQR"
    assert checked_owner(good) == good
    for bad in [{"owner": good}, [good], True, 12345678901234567890123, "too-short", good + " "]:
        with pytest.raises(MalformedOwner):
            checked_owner(bad)
