"""Who a visitor is: their Hugging Face account when logged in through OAuth, else their browser token."""

from __future__ import annotations

from typing import Any

HF_PREFIX = "hf:"


def visitor(browser_token: str | None, profile: Any | None = None) -> str | None:
    """The owner scope for this request.

    A logged-in Hugging Face user is `hf:<username>`, taken from the server-side OAuth session.
    A browser token is the client's word, so it may never claim that form: otherwise anyone could
    send `hf:alice` as their token and read Alice's conversations.
    """
    username = getattr(profile, "username", None) if profile is not None else None
    if username:
        return f"{HF_PREFIX}{username}"
    if not browser_token or browser_token.startswith(HF_PREFIX):
        return None
    return browser_token
