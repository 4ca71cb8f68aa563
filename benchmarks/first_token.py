"""Time to first token: through the running app (its queue over HTTP, and a real browser) vs pydantic-ai in-process.

    python -m benchmarks.first_token            # 7 runs each
    python -m benchmarks.first_token --quick    # 2 runs each (the test suite runs this)

Every side uses the same demo model with a fixed 300 ms first-token delay, then full speed, so what
is measured is the overhead above the model. The app runs as `python app.py` in its own process and
is driven like the page drives it: join the queue, then read its SSE stream. A minimal Gradio app
serving the same agent (benchmarks/baselines.py) shows how much of the overhead is Gradio's own.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import httpx
from pydantic_ai import Agent
from pydantic_ai.conversation import Conversation

from benchmarks.common import AppPage, Row, Samples, Section, goal_row, run_as_script, served_app, served_baseline
from chat.demo_model import DemoModel, DemoPace

FIRST_TOKEN_DELAY = 0.3
PACED_TOKENS_PER_SECOND = 1000
GOAL = 1.10
CHAT_INTERFACE_GOAL = 1.05
"""Issue 12: the chat tab's click-to-first-text within 5% of a plain `gr.ChatInterface` with the same agent."""
CHROMIUM = os.environ.get("CHAT_TEST_CHROMIUM", "/usr/bin/chromium")


async def raw_first_token(pace: DemoPace) -> float:
    agent = Agent(DemoModel(pace))
    started = time.perf_counter()
    async with agent.run_stream("hello", conversation=Conversation()) as run:
        async for _ in run.stream_text(delta=True, debounce_by=None):
            return time.perf_counter() - started
    raise RuntimeError("no text streamed")


async def queue_first_tokens(url: str, runs: int, page_load: bool = True) -> Samples:
    """One visitor's chats, one after another, in one page session (as one browser tab sends them)."""
    page = AppPage.of(url)
    session = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        if page_load:
            await page.open(client, session)
        visitor = f"bench-visitor-{session}"  # an owner token: 128 random bits or more
        await page.chat(client, "hello", visitor, session)  # warm-up
        samples = []
        for _ in range(runs):
            timing = await page.chat(client, "hello", visitor, session)
            if timing.error or timing.first_token is None:
                raise RuntimeError(f"chat failed: {timing.error}")
            samples.append(timing.first_token)
    return Samples.of(samples)


def client_first_tokens(url: str, runs: int) -> Samples:
    """Through `gradio_client`, as a Python caller of the `/chat` API sees it (one Client, one session)."""
    from gradio_client import Client

    client, owner = Client(url, verbose=False), f"bench-client-{uuid.uuid4().hex}"

    def first_token() -> float:
        started = time.perf_counter()
        job = client.submit("hello", "demo", owner, api_name="/chat")
        for outputs in job:
            answer = outputs[0]  # `/chat` streams (answer so far, usage, context)
            if answer:
                elapsed = time.perf_counter() - started
                job.result()  # let the turn finish before the next one
                return elapsed
        raise RuntimeError("no answer through gradio_client")

    first_token()  # warm-up
    return Samples.of([first_token() for _ in range(runs)])


# Resolves with the milliseconds from the Send click until the newest bot bubble shows text.
_CLICK_UNTIL_TEXT = """async () => {
  const bots = () => document.querySelectorAll("[data-testid='bot']");
  const before = bots().length;
  const shown = () => { const b = bots(); return b.length > before && b[b.length - 1].innerText.trim().length > 0; };
  const started = performance.now();
  (document.querySelector('#prompt .submit-button') || document.querySelector('#send')).click();
  return await new Promise((resolve) => {
    const observer = new MutationObserver(() => {
      if (shown()) { observer.disconnect(); resolve(performance.now() - started); }
    });
    observer.observe(document.body, {subtree: true, childList: true, characterData: true});
    setTimeout(() => { observer.disconnect(); resolve(-1); }, 20000);
  });
}"""


def browser_first_tokens(url: str, runs: int) -> Samples:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url)
        samples = []
        for n in range(runs + 1):
            if page.locator("#new-chat").count():
                page.locator("#new-chat").click()
                page.wait_for_function("() => !document.querySelector(\"[data-testid='bot']\")")
            page.locator("#prompt textarea").fill("hello")
            elapsed = page.evaluate(_CLICK_UNTIL_TEXT) / 1000
            if elapsed < 0:
                page.screenshot(path="artifacts/benchmark-first-token-timeout.png")
                raise RuntimeError("no answer in the browser within 20 s (artifacts/benchmark-first-token-timeout.png)")
            if n:  # the first is a warm-up (the page's first event opens its connections)
                samples.append(elapsed)
            # Let the turn and the events chained to it finish: a click while they run is ignored.
            page.wait_for_function(
                "() => !document.querySelector('#usage') || document.querySelector('#usage').innerText.includes('total')"
            )
            page.wait_for_timeout(500)
        browser.close()
    return Samples.of(samples)


def run(quick: bool) -> Section:
    runs = 2 if quick else 7
    pace = DemoPace(first_token_delay=FIRST_TOKEN_DELAY, tokens_per_second=0)
    asyncio.run(raw_first_token(pace))  # warm-up, as the app warms up at start
    raw = Samples.of([asyncio.run(raw_first_token(pace)) for _ in range(runs)])
    with served_app(FIRST_TOKEN_DELAY, 0) as app:
        through_app = asyncio.run(queue_first_tokens(app.url, runs))
        in_browser = browser_first_tokens(app.url, runs)
        with_client = client_first_tokens(app.url, runs)
    with served_app(FIRST_TOKEN_DELAY, PACED_TOKENS_PER_SECOND) as app:
        paced_app = asyncio.run(queue_first_tokens(app.url, runs))
    with served_baseline("gradio", FIRST_TOKEN_DELAY, 0) as floor:
        minimal_gradio = asyncio.run(queue_first_tokens(floor.url, runs, page_load=False))
        minimal_in_browser = browser_first_tokens(floor.url, runs)
    with served_baseline("chat_interface", FIRST_TOKEN_DELAY, 0) as floor:
        chat_interface_in_browser = browser_first_tokens(floor.url, runs)

    model_ms = f"{FIRST_TOKEN_DELAY * 1000:.0f} ms model"
    ours = (through_app.median - minimal_gradio.median) * 1000
    gradio_part = (minimal_gradio.median - raw.median) * 1000
    return Section(
        "Time to first token",
        [
            goal_row(f"first token, app over HTTP (Gradio queue, {model_ms})", through_app, raw, GOAL),
            goal_row(f"first token, app in Chromium (click to text, {model_ms})", in_browser, raw, GOAL),
            Row(
                "first token, app through `gradio_client` (it polls for messages every 50 ms)",
                with_client.ms(),
                raw.ms(),
                with_client.median / raw.median,
            ),
            Row(
                f"first token, app over HTTP, model then at {PACED_TOKENS_PER_SECOND:,} tokens/s",
                paced_app.ms(),
                raw.ms(),
                paced_app.median / raw.median,
            ),
            Row(
                "first token, minimal Gradio app, same agent (the floor)",
                minimal_gradio.ms(),
                raw.ms(),
                minimal_gradio.median / raw.median,
            ),
            goal_row(
                "first token, app in Chromium vs a minimal `gr.ChatInterface` in Chromium (its floor)",
                in_browser,
                chat_interface_in_browser,
                CHAT_INTERFACE_GOAL,
            ),
            Row(
                "first token, minimal Gradio app in Chromium (the floor)",
                minimal_in_browser.ms(),
                raw.ms(),
                minimal_in_browser.median / raw.median,
            ),
        ],
        [
            (
                f"Baseline: the same agent streamed in-process with `run_stream` (raw pydantic-ai). Of the app's "
                f"overhead, {gradio_part:.0f} ms is present in a minimal `gr.Blocks` chat serving the same agent "
                f"(`benchmarks/baselines.py`), and {ours:.0f} ms is ours (store reads, run set-up, our outputs)."
            ),
        ],
    )


if __name__ == "__main__":
    run_as_script(run, __doc__)
