"""A real browser (Playwright driving Debian's chromium) against the real app: type, send, watch, Stop."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from chat.config import Settings
from tests.apps import running_app

CHROMIUM = os.environ.get("CHAT_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


def _browser_missing() -> str | None:
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return None
    return f"no browser at {CHROMIUM}: apt-get install chromium (CI installs it, and a skip there fails the run)"


if (reason := _browser_missing()) and os.environ.get("CI"):
    raise RuntimeError(f"CI must run the browser tests: {reason}")
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.fixture(scope="module")
def app():
    settings = Settings(demo_first_token_delay=0.1, demo_tokens_per_second=40, warm_up=False)
    with running_app(settings) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


def bot_text(page) -> str:
    bubbles = page.locator("[data-testid='bot']")
    return bubbles.last.inner_text() if bubbles.count() else ""


def send(page, text: str) -> None:
    page.locator("#prompt textarea").fill(text)
    page.locator("#send").click()


def test_type_send_watch_it_grow_then_stop(app, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(app.url)
    send(page, "count to 3000")
    page.wait_for_function("() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b.length && b[b.length-1].innerText.includes('5'); }")
    early = bot_text(page)
    page.wait_for_function(
        "(n) => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b[b.length-1].innerText.length > n + 20; }",
        arg=len(early),
    )
    grown = bot_text(page)
    assert grown.startswith(early.strip()[:5]) and len(grown) > len(early)
    page.locator("#stop").click()
    page.wait_for_function("() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b[b.length-1].innerText.includes('stopped'); }")
    stopped = bot_text(page)
    time.sleep(0.5)  # the text must stay frozen once stopped
    assert bot_text(page) == stopped
    assert "3000." not in stopped
    assert "stopped" in page.locator("#usage").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-stopped.png"), full_page=True)

    send(page, "what did you just do?")
    page.wait_for_function("() => document.querySelectorAll(\"[data-testid='bot']\").length >= 2")
    page.wait_for_function("() => document.querySelector('#usage').innerText.includes('total')")
    assert page.locator("[data-testid='user']").count() == 2
    page.close()


def test_an_empty_prompt_is_not_sent(app, browser):
    page = browser.new_page()
    page.goto(app.url)
    send(page, "   ")
    page.get_by_text("Type a message first").first.wait_for()
    assert page.locator("[data-testid='user']").count() == 0
    page.close()


def test_memory_across_turns_in_chinese(app, browser):
    page = browser.new_page()
    page.goto(app.url)
    send(page, "我叫小王,今年 28。")
    page.wait_for_function("() => document.querySelector('#usage').innerText.includes('total')")
    send(page, "我多大了?")
    page.wait_for_function("() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b.length == 2 && b[1].innerText.includes('28'); }")
    page.screenshot(path=str(ARTIFACTS / "chat-memory.png"), full_page=True)
    page.close()


def test_an_oversized_prompt_stays_in_the_box_with_a_message(app, browser):
    page = browser.new_page()
    page.goto(app.url)
    huge = "x" * (app.service.max_prompt_chars + 1)
    send(page, huge)
    page.get_by_text("the limit is").first.wait_for()
    assert page.locator("#prompt textarea").input_value() == huge
    assert page.locator("[data-testid='user']").count() == 0
    page.close()


def test_closing_the_tab_mid_stream_keeps_the_partial_answer(app, browser):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    async def interrupted_answers() -> list[str]:
        answers = []
        for record in await app.service.store.read_records():
            conversation = await app.service.store.load(record.conversation_id, scope=record.scope)
            last = conversation.messages[-1]
            if last.state == "interrupted" and "count to 2500" in str(conversation.messages[-2].parts[0].content):
                answers.append(last.parts[0].content)
        return answers

    page = browser.new_page()
    page.goto(app.url)
    send(page, "count to 2500")
    page.wait_for_function("() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b.length && b[b.length-1].innerText.includes('9'); }")
    page.close()
    deadline = time.monotonic() + 30
    def read_store() -> list[str]:
        # Playwright's sync API owns this thread's event loop; read the store from another thread.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, interrupted_answers()).result()

    while not (answers := read_store()):
        assert time.monotonic() < deadline, "the partial answer of the closed tab was not saved"
        time.sleep(0.2)
    assert answers[0].startswith("1 2 3") and not answers[0].endswith("2500.")
