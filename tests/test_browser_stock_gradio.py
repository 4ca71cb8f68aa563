"""The page without the armour (`--gradio-armour off`): a stock ChatInterface in Chromium, answering and stopped."""

from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from chat.config import Settings
from tests.apps import running_app
from tests.test_browser import ARTIFACTS, bot_text, browser, goto, send, stop  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def stock_app():
    settings = Settings(demo_first_token_delay=0.1, demo_tokens_per_second=40, warm_up=False, gradio_armour=False)
    with running_app(settings) as running:
        yield running


@pytest.mark.xfail(
    strict=False,
    reason="Open bug (issue 36, armour off): under CI load Gradio's own Stop sometimes leaves the answer running, "
    "so the label never shows on reopening (2 of 3 full runs on 2026-12-07). The cancel paths it can take are "
    "tested deterministically in tests/test_ui.py (gradio_streaming); this end-to-end run still reports.",
)
def test_a_stock_chat_answers_and_gradios_stop_freezes_it_and_the_label_shows_on_reopening(stock_app, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    goto(page, stock_app.url)
    send(page, "My name is Sam and I am 41.")
    page.wait_for_function("() => document.querySelector('#usage').innerText.includes('total')")
    assert "Sam" in bot_text(page)
    # The sidebar lists the new chat once its answer ends (the context panel's change, without the armour).
    page.wait_for_function("() => document.querySelector('#sessions').innerText.includes('My name is Sam')")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-without-armour.png"))

    send(page, "count to 3000")
    page.wait_for_function(
        "() => { const b = document.querySelectorAll(\"[data-testid='bot']\");"
        " return b.length >= 2 && b[b.length-1].innerText.includes('9'); }"
    )
    assert page.locator("#prompt textarea").is_disabled()  # Gradio's default while an answer streams
    stop(page)
    page.wait_for_selector("#prompt .submit-button")
    page.wait_for_timeout(500)
    frozen = bot_text(page)
    assert "3000." not in frozen and "stopped" not in frozen  # Gradio's cancel: no label in the live bubble
    # Gradio's cancel only starts the Stop: the partial answer is saved a moment later, so a reload that comes
    # first shows the chat without it, as a visitor reloading at once would see; the next reload shows it.
    for attempt in range(5):
        page.reload()
        page.wait_for_function("() => new URLSearchParams(location.search).has('c')")
        try:
            page.wait_for_function(
                "() => { const b = document.querySelectorAll(\"[data-testid='bot']\");"
                " return b.length >= 2 && b[b.length-1].innerText.includes('stopped'); }",
                timeout=5000,
            )
            break
        except PlaywrightTimeout:
            assert attempt < 4, "the stopped answer never showed its label on reopening"
    assert bot_text(page).startswith(frozen.strip()[:10])
    page.close()


def test_escape_stops_a_stock_chats_answer_as_gradios_stop_does(stock_app, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 390, "height": 844})
    goto(page, stock_app.url)
    send(page, "count to 3000")
    page.wait_for_function(
        "() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b.length && b[b.length-1].innerText.includes('9'); }"
    )
    page.keyboard.press("Escape")
    page.wait_for_selector("#prompt .submit-button")  # Gradio's Stop: the answer event is cancelled
    page.wait_for_timeout(500)
    frozen = bot_text(page)
    page.wait_for_timeout(500)
    assert bot_text(page) == frozen and "3000." not in frozen
    page.close()
