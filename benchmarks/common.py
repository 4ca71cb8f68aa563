"""What every benchmark shares: samples with median/min/max, result rows, and the app as a user starts it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.apps import app_process, free_port, serving_process

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Samples:
    """Repeated measurements of one figure; every report shows the median with its min and max."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: list[float]) -> Samples:
        if not values:
            raise ValueError("no samples")
        return cls(tuple(values))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def describe(self, unit: str = "ms", scale: float = 1000.0, digits: int = 0) -> str:
        low, mid, high = (v * scale for v in (min(self.values), self.median, max(self.values)))
        return f"{mid:,.{digits}f} {unit} ({low:,.{digits}f}–{high:,.{digits}f})"

    def ms(self, digits: int = 0) -> str:
        return self.describe("ms", 1000.0, digits)

    def seconds(self, digits: int = 2) -> str:
        return self.describe("s", 1.0, digits)

    def count(self, unit: str = "") -> str:
        return self.describe(unit, 1.0, 0).replace("  ", " ").rstrip()


def repeat(runs: int, measure: Callable[[], float]) -> Samples:
    return Samples.of([measure() for _ in range(runs)])


@dataclass(frozen=True)
class Row:
    benchmark: str
    measured: str
    baseline: str
    ratio: float | None = None
    goal: str = "report"
    met: bool | None = None
    """None when the goal is only to report."""

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        verdict = {True: "met", False: "**missed**", None: ""}[self.met]
        return [self.benchmark, self.measured, self.baseline, ratio, f"{self.goal} {verdict}".strip()]


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        header = ["benchmark", "measured (median, min–max)", "baseline, same run", "ratio", "goal"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row.cells()) + " |" for row in self.rows]
        return "\n".join(lines)

    def markdown(self) -> str:
        notes = "".join(f"\n- {note}" for note in self.notes)
        return f"## {self.title}\n\n{self.table()}\n{notes}\n".rstrip() + "\n"


def print_section(section: Section) -> None:
    print(section.markdown(), flush=True)


def run_as_script(run: Callable[[bool], Section], doc: str) -> None:
    """`python -m benchmarks.<name> [--quick]`: run one benchmark and print its table."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the test suite runs this)")
    print_section(run(parser.parse_args().quick))


def goal_row(benchmark: str, measured: Samples, baseline: Samples, limit: float, **describe) -> Row:
    ratio = measured.median / baseline.median
    return Row(
        benchmark,
        measured.ms(**describe),
        baseline.ms(**describe),
        ratio,
        f"<= {limit:g}",
        ratio <= limit,
    )


@dataclass(frozen=True)
class ServedApp:
    url: str
    pid: int
    process: subprocess.Popen | None = None
    database: str = ""

    def rss_mb(self) -> float:
        return _status_kb(self.pid, "VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        return _status_kb(self.pid, "VmHWM") / 1024


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user and system) a process has used so far, from /proc; this process when `pid` is None."""
    import os

    fields = Path(f"/proc/{pid or os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return float("nan")


@contextlib.contextmanager
def served_app(first_token_delay: float, tokens_per_second: float, **environment: str) -> Iterator[ServedApp]:
    """`python app.py` in its own process (as a user runs it), on a fresh database and a free port."""
    import os

    with tempfile.TemporaryDirectory(prefix="chat-bench-") as folder:
        env = {
            **os.environ,
            "CHAT_DB": str(Path(folder) / "bench.db"),
            "CHAT_DEMO_DELAY": str(first_token_delay),
            "CHAT_DEMO_TPS": str(tokens_per_second),
            "CHAT_MAX_MESSAGES_PER_MINUTE": "0",  # a benchmark visitor sends faster than any person may
            **environment,
        }
        with app_process(env) as (process, url):
            yield ServedApp(url, process.pid, process, env["CHAT_DB"])


@contextlib.contextmanager
def served_baseline(kind: str, first_token_delay: float, tokens_per_second: float) -> Iterator[ServedApp]:
    """A baseline of `benchmarks/baselines.py` (minimal Gradio or minimal FastAPI SSE) in its own process."""
    import os
    import sys

    port = free_port()
    command = [sys.executable, "-m", "benchmarks.baselines", kind, "--port", str(port)]
    command += ["--delay", str(first_token_delay), "--tps", str(tokens_per_second)]
    with serving_process(command, dict(os.environ), port) as (process, url):
        yield ServedApp(url, process.pid)


def chat_fn_index(base_url: str) -> int:
    config = httpx.get(f"{base_url}config", timeout=30).json()
    for index, dependency in enumerate(config["dependencies"]):
        if dependency.get("api_name") == "chat":
            return dependency.get("id", index)
    raise RuntimeError("no /chat endpoint")


@dataclass
class StreamTiming:
    """One streamed answer as a client saw it."""

    first_token: float | None = None
    total: float = 0.0
    updates: int = 0
    bytes: int = 0
    error: str | None = None


def chat_payload(fn_index: int, prompt: str, owner: str, session_hash: str) -> dict:
    # /chat (the ChatInterface endpoint): message, history (its session state), model, owner token,
    # conversation id (None starts a new one), context policy.
    return {
        "data": [prompt, [], "demo", owner, None, "window"],
        "fn_index": fn_index,
        "session_hash": session_hash,
        "event_data": None,
    }


@dataclass(frozen=True)
class AppPage:
    """The app's page as a benchmark visitor drives it: open a page session, then chat in it."""

    load_index: int | None
    """None for a page without a load event (the minimal Gradio baseline)."""
    chat_index: int

    @classmethod
    def of(cls, base_url: str) -> AppPage:
        return cls(page_load_fn_index(base_url), chat_fn_index(base_url))

    async def open(self, client: httpx.AsyncClient, session_hash: str) -> None:
        assert self.load_index is not None, "this page has no load event to open a session with"
        await open_session(client, session_hash, self.load_index)

    async def chat(self, client: httpx.AsyncClient, prompt: str, owner: str, session_hash: str) -> StreamTiming:
        return await queue_chat(client, self.chat_index, prompt, owner, session_hash)


def page_load_fn_index(base_url: str) -> int | None:
    config = httpx.get(f"{base_url}config", timeout=30).json()
    loads = (d["id"] for d in config["dependencies"] if any(t[1] == "load" for t in d.get("targets", [])))
    return next(loads, None)


async def open_session(client: httpx.AsyncClient, session_hash: str, load_fn_index: int) -> None:
    """Do what a page load does before any chat: run the page's first load event in this session.

    Gradio builds a session's state (a config for every component) on its first event; a browser
    pays that when the page loads, not on its first Send, and so must a benchmark visitor.
    """
    body = {"data": [None], "fn_index": load_fn_index, "session_hash": session_hash, "event_data": None}
    (await client.post("gradio_api/queue/join", json=body)).raise_for_status()
    async with client.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
        async for line in stream.aiter_lines():
            if '"process_completed"' in line:
                return


async def queue_chat(
    client: httpx.AsyncClient, fn_index: int, prompt: str, owner: str, session_hash: str | None = None
) -> StreamTiming:
    """One chat turn the way the page runs it: join Gradio's queue, then read its SSE stream to the end."""
    session = session_hash or uuid.uuid4().hex
    started = time.perf_counter()
    updates = _UpdateLines(started)
    try:
        joined = await client.post("gradio_api/queue/join", json=chat_payload(fn_index, prompt, owner, session))
        joined.raise_for_status()
        async with client.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
            async for line in stream.aiter_lines():
                if updates.saw(line.encode() + b"\n"):
                    break
    except httpx.HTTPError as error:
        updates.timing.error = f"{type(error).__name__}: {error}"
    updates.timing.total = time.perf_counter() - started
    return updates.timing


async def lean_queue_chat(
    base_url: str, fn_index: int, prompt: str, owner: str, session_hash: str, cookie: str | None = None
) -> StreamTiming:
    """`queue_chat` on one bare connection (`benchmarks/lean_http.py`): the join, then its stream.

    With hundreds of visitors in one load-generating process, httpx's per-line work took a quarter of a
    core; on a machine whose cores the servers share, that comes out of the servers being measured.
    `cookie`: the visitor's cookies, as their browser sends them (behind nginx they pick the replica)."""
    from benchmarks.lean_http import LeanConnection

    headers = {"Cookie": cookie} if cookie else {}
    started = time.perf_counter()
    updates = _UpdateLines(started)
    connection = None
    try:
        connection = await LeanConnection.open(base_url)
        payload = chat_payload(fn_index, prompt, owner, session_hash)
        status, reply = await connection.post_json("gradio_api/queue/join", payload, headers)
        if status != 200:
            raise ConnectionError(f"join answered {status}: {reply[:200]!r}")
        query = {"session_hash": session_hash}
        await connection.read_stream_until("gradio_api/queue/data", query, None, updates.saw, headers)
    except (OSError, ValueError, asyncio.IncompleteReadError) as error:  # ConnectionError is an OSError
        updates.timing.error = f"{type(error).__name__}: {error}"
    finally:
        if connection is not None:
            await connection.close()
    updates.timing.total = time.perf_counter() - started
    return updates.timing


class _UpdateLines:
    """A queue stream's lines as they arrive (in blocks cut anywhere), counted and timed: `saw` is True once
    the stream's completed message has been read. Shared by `queue_chat` and `lean_queue_chat`."""

    def __init__(self, started: float) -> None:
        self.timing = StreamTiming()
        self._started = started
        self._partial = b""

    def saw(self, block: bytes) -> bool:
        *lines, self._partial = (self._partial + block).split(b"\n")
        for line in lines:
            timing = self.timing
            timing.bytes += len(line) + 1
            if not line.startswith(b"data:"):
                continue
            if b'"process_generating"' in line:
                timing.updates += 1
                # The first update of a Chatbot-shaped floor echoes the prompt; its first token comes after.
                if timing.first_token is None and not (timing.updates == 1 and _is_echo(json.loads(line[5:]))):
                    timing.first_token = time.perf_counter() - self._started
            elif b'"process_completed"' in line:
                timing.error = _failure_in(json.loads(line[5:]))
                if timing.error is None and timing.first_token is None:
                    timing.error = "completed without streaming"
                return True
        return False


def _is_echo(generating: dict) -> bool:
    """A first update (sent whole, later ones are diffs) whose chat ends with the visitor's own prompt.

    The chat tab's `/chat` streams the answer alone, so it never echoes; a Chatbot-shaped floor does.
    """
    data = (generating.get("output") or {}).get("data") or []
    chat = data[0] if data else None
    return isinstance(chat, list) and bool(chat) and isinstance(chat[-1], dict) and chat[-1].get("role") == "user"


def _failure_in(completed: dict) -> str | None:
    """A failed turn: Gradio's own error, or our handler's failure notice (a ⚠️ line) in any text output."""
    if not completed.get("success", False):
        return str(completed.get("output"))[:200]
    data = (completed.get("output") or {}).get("data") or []
    for output in data:
        if isinstance(output, str) and output.startswith("⚠️"):
            return output[:200]
    return None


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
