"""Input tokens per request at turn 200 under each context policy, on the demo model.

    python -m benchmarks.context            # 200 turns, writes benchmarks/RESULTS-context.md
    python -m benchmarks.context --quick    # 40 turns, no file (the test suite runs this)

The demo model reports the input tokens of what it was actually sent, so the figures show what
each policy costs per request as a conversation grows; full history is the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from chat.agents import build_chat_agent
from chat.config import Settings
from chat.demo_model import DemoPace
from chat.models import ModelResolver
from chat.turns import ChatService
from storage.sqlite_store import SQLiteConversationStore

RESULTS = Path(__file__).with_name("RESULTS-context.md")
POLICIES = ("full", "window", "summary")


async def input_tokens(service: ChatService, policy: str, turns: int) -> list[int]:
    tokens = []
    for n in range(turns):
        prompt = "我叫小王,今年 28。" if n == 0 else f"Tell me fact number {n} about bread and rice."
        updates = [u async for u in service.run_turn("bench", f"conversation-{policy}", prompt, "demo", policy)]
        tokens.append(updates[-1].stats.input_tokens)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    turns = 40 if args.quick else 200
    results: dict[str, list[int]] = {}
    calls: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteConversationStore(Path(folder) / "bench.db")
        for policy in POLICIES:
            service = ChatService(build_chat_agent(), store, ModelResolver(Settings(), DemoPace.instant()))
            results[policy] = asyncio.run(input_tokens(service, policy, turns))
            calls[policy] = service.summarizer.calls
    baseline = results["full"][-1]
    rows = [
        "| policy | input tokens at turn 10 | at turn {0} | at turn {0} / full | summarizer calls |".format(turns),
        "|---|---|---|---|---|",
    ]
    for policy in POLICIES:
        at_10, last = results[policy][9], results[policy][-1]
        rows.append(f"| {policy} | {at_10:,} | {last:,} | {last / baseline:.2f} | {calls[policy]} |")
    table = "\n".join(rows)
    print(table)
    if not args.quick:
        RESULTS.write_text(
            "# Context benchmark results\n\n"
            f"`python -m benchmarks.context` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
            f"Python {platform.python_version()}; demo model, {turns} turns per policy (window 20 messages; "
            "summary past 30 messages, last 10 verbatim, re-summarized every 20).\n\n"
            f"{table}\n"
        )


if __name__ == "__main__":
    main()
