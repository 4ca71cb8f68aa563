"""Every benchmark in one run: prints each table as it completes and writes benchmarks/RESULTS.md.

python -m benchmarks                      # the full run (about 10 minutes on 2 cores)
python -m benchmarks --quick              # tiny sizes, no file: the test suite runs this
python -m benchmarks --only load,store    # some of them (no file)
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import gradio
import pydantic_ai

from benchmarks.common import Section, print_section

BENCHMARKS = (
    "first_token",
    "long_answer",
    "load",
    "stop",
    "shutdown",
    "fairness",
    "store",
    "scale",
    "recipe",
    "context",
    "tools",
    "protocols",
    "startup",
)
RESULTS = Path(__file__).with_name("RESULTS.md")
ANALYSIS = Path(__file__).with_name("ANALYSIS.md")


def goals_table(sections: list[Section]) -> str:
    judged = [row for section in sections for row in section.rows if row.met is not None]
    summary = Section("Goals", judged)
    met = sum(1 for row in judged if row.met)
    return f"{met} of {len(judged)} goals met.\n\n{summary.table()}\n"


def header(command: str, seconds: float) -> str:
    return (
        "# Benchmark results\n\n"
        f"`{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} min: "
        f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}, "
        f"pydantic-ai {pydantic_ai.__version__}, gradio {gradio.__version__}. Every timing is the median of "
        "at least five runs with its min–max; every ratio is against a baseline measured in the same run. "
        f"Where a goal is missed, [ANALYSIS.md]({ANALYSIS.name}) says where the time goes.\n\n"
    )


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and no results file")
    parser.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    started = time.perf_counter()
    sections = []
    for name in chosen:
        section = importlib.import_module(f"benchmarks.{name}").run(args.quick)
        print_section(section)
        sections.append(section)
    print(goals_table(sections))
    if not args.quick and chosen == list(BENCHMARKS):
        command = "python -m benchmarks"
        body = "\n".join(section.markdown() for section in sections)
        RESULTS.write_text(header(command, time.perf_counter() - started) + goals_table(sections) + "\n" + body)
        print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
