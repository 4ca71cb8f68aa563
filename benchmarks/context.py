"""Input tokens per request at turn 200 under each context policy, on the demo model.

    python -m benchmarks.context            # 200 turns
    python -m benchmarks.context --quick    # 40 turns (the test suite runs this)

The demo model reports the input tokens of what it was actually sent, so the figures show what
each policy costs per request as a conversation grows; full history is the baseline. Token counts
are deterministic, so one run is enough. "Flat" means turn N costs at most 1.2x turn N/2.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from benchmarks.common import Row, Section, run_as_script
from chat.agents import build_chat_agent
from chat.config import POLICY_KINDS, Settings
from chat.demo_model import DemoPace
from chat.models import ModelResolver
from chat.turns import ChatService
from server import chat_wings, context_policies
from storage.sqlite_store import SQLiteConversationStore

FLAT_GOAL = 1.2
POLICIES = ("full", "window", "summary")


async def input_tokens(service: ChatService, policy: str, turns: int) -> list[int]:
    tokens = []
    for n in range(turns):
        prompt = "我叫小王,今年 28。" if n == 0 else f"Tell me fact number {n} about bread and rice."
        updates = [u async for u in service.run_turn("bench", f"conversation-{policy}", prompt, "demo", policy)]
        tokens.append(updates[-1].stats.input_tokens)
    return tokens


def run(quick: bool) -> Section:
    turns = 40 if quick else 200
    results: dict[str, list[int]] = {}
    calls: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteConversationStore(Path(folder) / "bench.db")
        for policy in POLICIES:
            models = ModelResolver(Settings(), DemoPace.instant())
            context = context_policies(Settings(context_choices=POLICY_KINDS), store, models)
            service = ChatService(build_chat_agent(), store, models, wings=chat_wings(store, context))
            results[policy] = asyncio.run(input_tokens(service, policy, turns))
            calls[policy] = context.summarizer.calls
    full = results["full"][-1]
    rows = []
    for policy in POLICIES:
        last, halfway = results[policy][-1], results[policy][turns // 2 - 1]
        growth = last / halfway
        flat_goal = policy != "full"
        rows.append(
            Row(
                f"{policy}: input tokens per request at turn {turns} (turn {turns // 2}; summarizer calls)",
                f"{last:,} ({halfway:,}; {calls[policy]})",
                f"{full:,} (full)",
                last / full,
                f"flat: turn {turns} <= {FLAT_GOAL:g}x turn {turns // 2}" if flat_goal else "baseline",
                growth <= FLAT_GOAL if flat_goal else None,
            )
        )
    return Section(
        "Context: input tokens per request",
        rows,
        [
            (
                "Demo model, one conversation per policy; window = last 20 messages; summary past 30 messages, "
                "last 10 verbatim, re-summarized every 20. The ratio column is the request size against full history."
            )
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
