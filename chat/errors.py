"""Failures explained to the person who hits them: what went wrong and what to do about it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelServerError,
    ModelTimeoutError,
    RunTimedOut,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)

from chat.models import ModelNotOffered, ModelUnavailable
from storage.catalogue import CorruptConversation, StoreUnavailable


class PromptRejected(ValueError):
    """A prompt that is not sent; the message tells the user why."""


class ServerClosing(PromptRejected):
    """The server is shutting down (a redeploy, a restart, Ctrl-C): nothing new starts."""

    def __init__(self) -> None:
        super().__init__("The server is restarting. Send this again in a minute; nothing sent before is lost.")


class ConversationBusy(PromptRejected):
    """This conversation is already answering (another tab, or an API client): one turn at a time."""

    def __init__(self) -> None:
        super().__init__(
            "This chat is still answering (in another tab or app). Wait for that answer or press Stop there, "
            "then send again."
        )


class OverLimit(PromptRejected):
    """A limit of the visitor's or of their network address: waiting `retry_after_seconds` helps
    (`429` with `Retry-After` on the APIs, the sentence in the page)."""

    retry_after_seconds: int


def whole_seconds(wait: float) -> int:
    """A wait as `Retry-After` gives it: whole seconds, rounded up, at least one."""
    return max(1, math.ceil(wait))


class TooManyRunning(OverLimit):
    """The visitor already has as many answers running as one visitor may."""

    retry_after_seconds = 5
    """An answer usually ends within this (`Retry-After` on the API)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You already have {limit} {'answer' if limit == 1 else 'answers'} being written, the most one visitor "
            "can run at once here. "
            "Wait for one to end or stop one, then send again."
        )


class TooManyFromAddress(TooManyRunning):
    """The client's network address already has as many answers running as one address may: a script
    making a new visitor id for every request is still one address."""

    def __init__(self, limit: int) -> None:
        PromptRejected.__init__(
            self,
            f"{limit} answers are already being written for your network address, the most this server runs "
            "for one. Wait for one to end, then send again.",
        )


class TooManyStarts(OverLimit):
    """The visitor started as many answers in the last minute as one visitor may."""

    def __init__(self, per_minute: int, retry_after: float) -> None:
        self.retry_after_seconds = whole_seconds(retry_after)
        super().__init__(
            f"You have sent {per_minute} messages in the last minute, the most this server takes from one "
            f"visitor. Send again in {self.retry_after_seconds} s."
        )


class TooManyVisitors(OverLimit):
    """As many different visitors came from this network address in the last hour as one address may bring:
    a script making a new owner token, session or `/v1` key for every request is still one address."""

    def __init__(self, per_hour: int, retry_after: float) -> None:
        self.retry_after_seconds = whole_seconds(retry_after)
        super().__init__(
            f"{per_hour} different visitors have used this server from your network address in the last hour, "
            "the most it takes from one address. Keep using the visitor id, owner token or key you already have, "
            f"or try a new one in {_minutes(self.retry_after_seconds)}."
        )


class TooManyFromAddressPerMinute(OverLimit):
    """As many answers started from this network address in the last minute as one address may start,
    whichever visitors sent them."""

    def __init__(self, per_minute: int, retry_after: float) -> None:
        self.retry_after_seconds = whole_seconds(retry_after)
        super().__init__(
            f"{per_minute} messages were sent from your network address in the last minute, the most this server "
            f"takes from one address. Send again in {self.retry_after_seconds} s."
        )


class TokenBudgetSpent(OverLimit):
    """The answers for this network address spent its day's tokens on models that cost money."""

    def __init__(self, per_day: int, retry_after: float) -> None:
        self.retry_after_seconds = whole_seconds(retry_after)
        super().__init__(
            f"Answers for your network address have used {per_day:,} tokens of this server's paid models in the "
            "last 24 hours, the most it gives one address. The demo model still answers (Model menu), or send "
            f"again in {_minutes(self.retry_after_seconds)}."
        )


def _minutes(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{math.ceil(seconds / 60)} min"
    return f"{math.ceil(seconds / 3600)} h"


class StorageFull(PromptRejected):
    """The visitor's stored conversations hold as much as one visitor may keep."""

    def __init__(self, stored: str, limit: str) -> None:
        super().__init__(
            f"Your conversations here hold {stored}, and one visitor may keep at most {limit}. Delete some you "
            "no longer need (export them first to keep a copy), then try again."
        )


class ConversationUnavailable(LookupError):
    """The conversation does not exist for this visitor (never created, deleted, or someone else's)."""


class NoSuchConversation(ConversationUnavailable):
    """Never created, deleted, or someone else's: one sentence for all three, so an id alone reveals nothing."""

    def __init__(self, advice: str = "") -> None:
        super().__init__(f"This conversation does not exist (it may have been deleted). {advice}".strip())


class VisitorMissing(ConversationUnavailable):
    """An event or API call that names no visitor (a page whose cookie and session are both gone)."""

    def __init__(self) -> None:
        super().__init__("Your visitor id is missing: reload the page.")


@dataclass(frozen=True)
class FailureStatus:
    """What an HTTP client that retries on its own (an OpenAI client) should make of a failed answer."""

    status: int
    retry_after: int | None = None
    """Seconds the provider asked to wait, when it said."""
    retry: bool = True
    """False when trying again cannot help (a key or package missing here, a request the provider refuses)."""


def failure_status(error: BaseException) -> FailureStatus:
    """The status a failed answer is sent with, beside `describe_failure`'s sentence: a rate limit is a 429 with
    the provider's Retry-After, what the server's set-up lacks is not worth retrying, and a provider that
    failed or was not reached is a 502 (503 when it said it was unavailable, 504 when it was too slow)."""
    if isinstance(error, ModelRateLimitError):
        return FailureStatus(429, whole_seconds(error.retry_after) if error.retry_after else None)
    if isinstance(error, ModelUnavailable):  # no key, no package, an unknown name: the operator must act
        return FailureStatus(503, retry=False)
    if isinstance(error, (ModelTimeoutError, RunTimedOut)):
        return FailureStatus(504)
    status = getattr(error, "status_code", None)  # a ModelServerError is not always an HTTP one
    if isinstance(error, ModelServerError) or (isinstance(error, ModelHTTPError) and error.status_code >= 500):
        return FailureStatus(503 if status == 503 else 502)
    if isinstance(error, (ModelAuthenticationError, ModelNotFoundError, ModelHTTPError)):
        return FailureStatus(502, retry=False)  # the server's key, or a request the provider will not take
    if isinstance(error, (ModelAPIError, UnexpectedModelBehavior)):
        return FailureStatus(502)
    return FailureStatus(500)


def describe_failure(error: BaseException, model_name: str, *, mid_stream: bool = False) -> str:
    """One or two sentences for the UI: the cause, then the fix. Nothing was saved when this is shown."""
    if mid_stream and isinstance(error, ModelConnectionError):
        return (
            f"The connection to the provider of '{model_name}' broke in the middle of the answer "
            f"({str(error).rstrip('.')}). Nothing was saved; your message is back in the box: send it again."
        )
    if isinstance(error, ModelNotOffered):  # the name is the client's own text: not repeated back
        return f"This server does not offer that model. Pick one of: {', '.join(error.offered)}."
    if isinstance(error, ModelUnavailable):
        return f"'{model_name}' cannot answer here: {error.for_visitor} Pick another model in the Model menu."
    if isinstance(error, (PromptRejected, ConversationUnavailable, CorruptConversation)):
        return str(error)
    if isinstance(error, ModelAuthenticationError):
        return (
            f"The provider rejected the API key for '{model_name}' ({_status(error)}). Check the key "
            "(OPENAI_API_KEY, ANTHROPIC_API_KEY, ... or CHAT_API_KEY for a CHAT_BASE_URL server) and restart the app."
        )
    if isinstance(error, ModelRateLimitError):
        wait = f" The provider asks to wait {error.retry_after:g} s before retrying." if error.retry_after else ""
        return f"Rate limited by the provider of '{model_name}' ({_status(error)}).{wait} Your message is kept: send it again."
    if isinstance(error, ModelNotFoundError):
        return f"The provider does not know the model '{model_name}' ({_status(error)}). Check the model name."
    if isinstance(error, ModelServerError):
        return f"The provider of '{model_name}' failed ({_status(error)}). It is on their side: send your message again in a moment."
    if isinstance(error, (ModelTimeoutError, RunTimedOut)):
        return f"'{model_name}' did not answer in time. Your message is kept: send it again, or raise CHAT_REQUEST_TIMEOUT."
    if isinstance(error, ModelConnectionError):
        return f"Could not reach the provider of '{model_name}' ({str(error).rstrip('.')}). Check the network or CHAT_BASE_URL."
    # A provider's own error text can carry account ids, request bodies or quota details: it goes to the
    # server log (the caller logs every failure), the visitor gets the status and what to do.
    if isinstance(error, ModelHTTPError):
        return (
            f"The provider of '{model_name}' refused the request ({_status(error)}). Your message is kept: "
            "send it again, or shorten it; the details are in the server log."
        )
    if isinstance(error, ModelAPIError):
        return (
            f"The provider of '{model_name}' reported an error. Your message is kept: send it again; "
            "the details are in the server log."
        )
    if isinstance(error, StoreUnavailable):
        return (
            "The conversation store cannot be reached right now, so this answer was not saved. Your message is "
            "kept: send it again in a moment."
        )
    if isinstance(error, UsageLimitExceeded):
        return f"The turn was stopped by a usage limit: {error}"
    if isinstance(error, UnexpectedModelBehavior):
        return f"'{model_name}' sent an answer that could not be used: {error.message}"
    # Internal exception text stays in the server log (the caller logs it); it may name files, SQL or keys.
    return "Something went wrong on the server (the details are in its log). Your message is kept: send it again."


def _status(error: ModelAPIError) -> str:
    if isinstance(error, ModelHTTPError):
        return f"HTTP {error.status_code}"
    return type(error).__name__
