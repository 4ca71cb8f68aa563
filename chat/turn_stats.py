"""What a turn cost and how fast it was, as the usage line shows it: tokens (estimated where the provider
did not say), requests, first token and total time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic_ai.messages import ModelMessage
from pydantic_ai.usage import RunUsage

from chat.tokens import estimate_message_tokens, estimate_tokens


@dataclass(frozen=True)
class TurnStats:
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    first_token_seconds: float | None
    total_seconds: float
    estimated: bool
    """True when the provider did not report the tokens and they were estimated from the text."""


def this_turn_usage(run_usage: RunUsage, earlier: RunUsage | None) -> RunUsage:
    """A run's usage includes the conversation's earlier turns; subtract them."""
    if earlier is None:
        return run_usage
    return RunUsage(
        requests=max(run_usage.requests - earlier.requests, 0),
        input_tokens=max(run_usage.input_tokens - earlier.input_tokens, 0),
        output_tokens=max(run_usage.output_tokens - earlier.output_tokens, 0),
    )


def turn_stats(
    model_name: str,
    usage: RunUsage,
    messages: Sequence[ModelMessage],
    answer: str,
    started: float,
    first_token_at: float | None,
    now: float,
) -> TurnStats:
    input_tokens, output_tokens, estimated = usage.input_tokens, usage.output_tokens, False
    if output_tokens == 0 and answer:
        # OpenAI-style streams report usage only in their last chunk, which a stopped stream never gets.
        output_tokens, estimated = estimate_tokens(answer), True
    if input_tokens == 0 and messages:
        input_tokens, estimated = estimate_message_tokens(messages[:-1]), True
    return TurnStats(
        model=model_name,
        requests=max(usage.requests, 1),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        first_token_seconds=None if first_token_at is None else first_token_at - started,
        total_seconds=now - started,
        estimated=estimated,
    )
