"""The numbered lessons in examples/lessons/ run offline, each as its own process, and show what they say.

Every lesson is run once as `python examples/lessons/NN_name.py` from the repo root (lesson 10 twice, on
one database in the test's own folder), and its output is checked for the lesson's point. The last tests
prove, against a local OpenAI-compatible server, the HTTP behaviour lesson 4's docstring describes.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_ai import Agent, RunCancelled, models
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.fake_openai import FakeOpenAIServer

ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = ROOT / "examples" / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("[0-9]*.py"))
EXPECTED = [
    "01_run_stream.py",
    "02_deltas.py",
    "03_structured_partials.py",
    "04_cancel.py",
    "05_sse.py",
    "06_memory.py",
    "07_serialise.py",
    "08_two_agents.py",
    "09_window_and_summary.py",
    "10_all_together.py",
]


def run_lesson(name: str, *args: str, tmp: Path) -> str:
    """Run one lesson the way the README says, with TMPDIR pointed at the test's folder; its stdout."""
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONIOENCODING": "utf-8"}
    env.pop("PYTHONPATH", None)  # the lesson must find the repo's `chat` package by itself
    done = subprocess.run(
        [sys.executable, f"examples/lessons/{name}", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """Each lesson's output, run at most once per test session."""
    seen: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in seen:
            seen[name] = run_lesson(name, tmp=tmp_path_factory.mktemp(name.removesuffix(".py")))
        return seen[name]

    return get


def test_the_ten_lessons_are_there_in_order():
    assert [path.name for path in LESSONS] == EXPECTED
    readme = (LESSONS_DIR / "README.md").read_text(encoding="utf-8")
    for name in EXPECTED:
        assert name in readme


@pytest.mark.parametrize("path", LESSONS, ids=lambda path: path.name)
def test_each_lesson_opens_with_a_docstring_naming_its_command_and_stays_short(path: Path):
    source = path.read_text(encoding="utf-8")
    module = ast.parse(source)
    docstring = ast.get_docstring(module)
    assert docstring and isinstance(module.body[0], ast.Expr), "the file must open with its docstring"
    assert f"python examples/lessons/{path.name}" in docstring
    assert "notice" in docstring.lower(), "say what to notice in the output"
    assert len(source.splitlines()) <= 65


def test_01_streams_deltas_and_reads_usage_after(output):
    out = output("01_run_stream.py")
    first_line = out.splitlines()[0]
    assert first_line.count("|") > 20  # many deltas, not one block of text
    assert re.search(r"usage: RunUsage\(input_tokens=\d+, output_tokens=[1-9]\d*, requests=1\)", out)
    assert "['ModelRequest', 'ModelResponse']" in out


def test_02_shows_deltas_against_the_accumulated_text_and_debounce_merging(output):
    out = output("02_deltas.py")
    counts = dict(re.findall(r"^(delta=\w+, debounce_by=[\w.]+): (\d+) yields$", out, re.MULTILINE))
    assert int(counts["delta=False, debounce_by=None"]) == int(counts["delta=True, debounce_by=None"]) == 30
    assert int(counts["delta=True, debounce_by=0.1"]) < 30  # the default debounce merged chunks
    assert "'1' | '1 2' | '1 2 3'" in out  # accumulated text
    assert "'1' | ' 2' | ' 3'" in out  # deltas
    assert "last: '1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30.'" in out


def test_03_partial_snapshots_grow_and_required_fields_skip_early_ones(output):
    out = output("03_structured_partials.py")
    assert "name='Fluffy' servings=None" in out  # an unfinished string shows up
    assert re.search(r"name='Fluffy pancakes' servings=4 minutes=20 ingredients=7 steps=5", out)
    with_defaults = int(re.search(r"Recipe \(defaults\): (\d+) snapshots", out).group(1))
    strict = int(re.search(r"StrictRecipe \(required fields\): (\d+) snapshots", out).group(1))
    assert strict < with_defaults
    assert "the first: StrictRecipe(name='Fluffy pancakes', servings=4, steps=[" in out


def test_04_cancel_keeps_an_interrupted_response_and_break_does_not(output):
    out = output("04_cancel.py")
    assert "1. cancel: all_messages() = ['ModelRequest:complete', 'ModelResponse:interrupted']" in out
    assert "1. break: all_messages() = ['ModelRequest:complete']" in out
    assert "task.cancelled()=True" in out
    recovered = re.search(r"(\d+) messages, the last '([\d ]+)' \(interrupted\)", out)
    assert recovered and recovered.group(1) == "2" and recovered.group(2).startswith("1 2 3 4 5 6 7 8")


def test_05_serves_sse_and_json_keeps_newlines(output):
    out = output("05_sse.py")
    assert 'data: "\\n-"' in out  # a newline travelled JSON-encoded inside one data line
    assert "event: done" in out
    decoded = out.split("--- the text, decoded:\n", 1)[1]
    assert decoded.splitlines()[:2] == ["- 4 values, from 3 to 9.", "- Mean: 5.25."]


def test_06_remembers_through_message_history_only(output):
    out = output("06_memory.py")
    with_history, fresh = out.split("without message_history", 1)
    assert "user: How old am I?\n  assistant: You are 42 years old." in with_history
    assert "Your name is Priya." in with_history
    assert "You haven't told me your age yet." in fresh and "42" not in fresh


def test_07_round_trips_json_and_continues_from_it(output):
    out = output("07_serialise.py")
    assert '"part_kind": "user-prompt"' in out
    assert "equal to the original: True" in out
    assert out.rstrip().endswith("assistant: You are 67 years old.")


def test_08_two_agents_share_history_with_their_own_instructions(output):
    out = output("08_two_agents.py")
    assert "(Written by the demo writer.)" in out and "Mean: 146.60" in out
    rows = out.split("system prompt parts | instructions\n", 1)[1].splitlines()
    assert len(rows) == 2  # one request per agent in the shared history
    assert rows[0].startswith("  ['Be precise.']") and rows[0].endswith("You are the ANALYST: use bullets.")
    # The writer's request has its own instructions, and no system prompt: the history was not empty.
    assert rows[1].startswith("  []") and rows[1].endswith("You are the WRITER: write prose.")


def test_09_sends_a_bounded_window_with_a_summary_and_no_orphan_tool_returns(output):
    out = output("09_window_and_summary.py")
    sent = [ast.literal_eval(kinds) for kinds in re.findall(r"^    sent (\[.*?\]), orphans: 0$", out, re.MULTILINE)]
    assert len(sent) == len(re.findall(r"^    sent ", out, re.MULTILINE)) == 6  # every request, none with orphans
    for kinds in sent:  # and a tool return is always right after its call
        for index, kind in enumerate(kinds):
            if kind == "ToolReturn":
                assert kinds[index - 1] == "ToolCall"
    kept = [int(count) for count in re.findall(r"kept: (\d+),", out)]
    assert kept == [2, 6, 10, 12]
    assert len(sent[-1]) < kept[-1] and sent[-1][0] == "SystemPrompt"
    assert "user: How old am I?" in out and "assistant: You are 45 years old." in out  # from the summary alone
    assert "«Hi, I'm Olu and I am 45.»" in out


def test_10_a_second_run_continues_the_conversation_from_sqlite(tmp_path):
    first = run_lesson("10_all_together.py", tmp=tmp_path)  # the default database, in the temp folder
    assert "(0 messages loaded from the database)" in first and "4 messages stored" in first
    db = tmp_path / "lesson-10-chat.db"
    assert db.exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    second = run_lesson("10_all_together.py", str(db), tmp=elsewhere)  # the same database, named on the command line
    assert "How old am I?  (4 messages loaded from the database)" in second
    assert "You| are| 52| years| old.|" in second and "Your| name| is| Kofi.|" in second
    assert "8 messages stored" in second


# What lesson 4's docstring says about HTTP, shown with a real OpenAI client against a local server.


@pytest.fixture
def http_agent(monkeypatch):
    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)  # only this loopback server is ever reached
    with FakeOpenAIServer() as server:
        provider = OpenAIProvider(base_url=server.base_url, api_key="x")
        yield Agent(OpenAIChatModel("fake-model", provider=provider)), server


@pytest.mark.anyio
async def test_04_result_cancel_closes_the_http_stream_and_usage_has_no_tokens(http_agent):
    agent, server = http_agent
    async with agent.run_stream("slow") as result:
        async for _ in result.stream_text(delta=True, debounce_by=None):
            await result.cancel()
            break
    assert await asyncio.to_thread(server.log.disconnected.wait, 10)
    assert server.log.chunks_sent < 200 and server.log.completed_streams == 0
    assert result.all_messages()[-1].state == "interrupted"
    assert result.usage.input_tokens == result.usage.output_tokens == 0


@pytest.mark.anyio
async def test_04_a_task_cancelled_from_outside_closes_the_http_stream_too(http_agent):
    agent, server = http_agent
    mid_stream, recovered = asyncio.Event(), []

    async def handler() -> None:
        try:
            async with agent.run_stream("slow") as result:
                async for _ in result.stream_text(delta=True, debounce_by=None):
                    mid_stream.set()
        except asyncio.CancelledError as exc:
            recovered.append(RunCancelled.from_cancellation(exc))
            raise

    task = asyncio.create_task(handler())
    await mid_stream.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert await asyncio.to_thread(server.log.disconnected.wait, 10)
    assert server.log.chunks_sent < 200 and server.log.completed_streams == 0
    assert recovered[0].new_messages()[-1].state == "interrupted"
    assert recovered[0].usage.output_tokens == 0
