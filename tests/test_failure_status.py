"""What an HTTP client that retries on its own is told of a failed answer (chat/errors.failure_status)."""

from __future__ import annotations

import pytest
from pydantic_ai.exceptions import (
    ModelAuthenticationError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelServerError,
    RunTimedOut,
    UnexpectedModelBehavior,
)

from chat.errors import FailureStatus, failure_status
from chat.models import ModelUnavailable


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ModelRateLimitError("m", "slow down", retry_after=2.2), FailureStatus(429, 3)),
        (ModelRateLimitError("m", "slow down"), FailureStatus(429, None)),
        (ModelUnavailable("no key here", "its API key is not configured"), FailureStatus(503, retry=False)),
        (ModelServerError("m", "overloaded"), FailureStatus(502)),  # a server error that is not an HTTP one
        (ModelHTTPError(503, "m"), FailureStatus(503)),
        (ModelHTTPError(500, "m"), FailureStatus(502)),
        (ModelHTTPError(400, "m"), FailureStatus(502, retry=False)),
        (ModelAuthenticationError("m", "bad key"), FailureStatus(502, retry=False)),
        (RunTimedOut("too slow"), FailureStatus(504)),
        (UnexpectedModelBehavior("garbled"), FailureStatus(502)),
        (KeyError("internal"), FailureStatus(500)),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value.status),
)
def test_each_failure_has_the_status_a_client_can_act_on(error, expected):
    assert failure_status(error) == expected
