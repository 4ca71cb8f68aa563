"""Structured output: partial Recipe snapshots per second and validation cost per snapshot, debounce 0 vs 0.05 s.

    python -m benchmarks.recipe            # 5 runs of each
    python -m benchmarks.recipe --quick    # 2 runs (the test suite runs this)

The recipe agent of the Recipe tab (tool output) on the demo model, which streams the recipe's JSON
as tool-call argument deltas. The baseline is the raw stream of the same run without validation
(`stream_response`): its rate is the token rate; validation is what `stream_output` adds on top.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.common import Row, Samples, Section, run_as_script
from chat.demo_model import DemoModel, DemoPace
from chat.recipes import build_recipe_agent

DISH = "麻婆豆腐"
PACED_TOKENS_PER_SECOND = 200.0


async def stream_once(pace: DemoPace, validate: bool, debounce: float | None) -> tuple[float, int]:
    """Seconds from the first to the last item, and the items received (snapshots, or raw responses)."""
    agent = build_recipe_agent("tool")
    items, first = 0, None
    async with agent.run_stream(DISH, model=DemoModel(pace)) as run:
        stream = run.stream_output(debounce_by=debounce) if validate else run.stream_response(debounce_by=None)
        async for _ in stream:
            items += 1
            first = first or time.perf_counter()
    return time.perf_counter() - (first or time.perf_counter()), items


def measure(pace: DemoPace, validate: bool, debounce: float | None, runs: int) -> tuple[Samples, int]:
    results = [asyncio.run(stream_once(pace, validate, debounce)) for _ in range(runs)]
    return Samples.of([seconds for seconds, _ in results]), results[-1][1]


def run(quick: bool) -> Section:
    runs = 2 if quick else 5
    full_speed = DemoPace(first_token_delay=0.0, tokens_per_second=0)
    paced = DemoPace(first_token_delay=0.0, tokens_per_second=PACED_TOKENS_PER_SECOND)
    measure(full_speed, True, None, 1)  # warm-up: schemas, validators

    raw_time, raw_items = measure(full_speed, False, None, runs)
    validated_time, snapshots = measure(full_speed, True, None, runs)
    per_token = raw_time.median / raw_items
    per_snapshot = validated_time.median / snapshots
    validation_cost = Samples.of([(v - raw_time.median) / snapshots for v in validated_time.values])
    rows = [
        Row(
            f"full speed: raw stream of one recipe, {raw_items} deltas (no validation)",
            raw_time.ms(1),
            "",
            None,
        ),
        Row(
            "full speed, debounce 0: time per validated snapshot",
            f"{per_snapshot * 1e6:,.0f} µs ({snapshots} snapshots)",
            f"{per_token * 1e6:,.0f} µs per raw delta",
            per_snapshot / per_token,
        ),
        Row("full speed, debounce 0: validation cost per snapshot", validation_cost.describe("µs", 1e6), "", None),
    ]
    for debounce in (None, 0.05):
        seconds, items = measure(paced, True, debounce, runs)
        rate = Samples.of([items / s for s in seconds.values])
        rows.append(
            Row(
                f"{PACED_TOKENS_PER_SECOND:g} tokens/s, debounce {debounce or 0:g} s: snapshots per second",
                rate.describe("/s", 1.0, 0),
                f"{PACED_TOKENS_PER_SECOND:g} tokens/s",
                rate.median / PACED_TOKENS_PER_SECOND,
            )
        )
    return Section(
        "Recipe: partial structured output",
        rows,
        [
            (
                "With debounce 0 every delta is validated (one snapshot per token); debounce 0.05 s caps "
                "validation at about 20 snapshots per second whatever the token rate, which the Recipe tab uses."
            )
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
