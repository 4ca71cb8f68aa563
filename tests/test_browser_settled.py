"""The chat's last rough edges, in Chromium at desktop (1280x800) and phone (390x844) sizes: an answered
approval settles, the usage line is on screen, and the recipe tab has one Generate/Stop control."""

from __future__ import annotations

import secrets

import pytest

from tests.test_browser import ARTIFACTS, app, browser, goto, send  # noqa: F401 (fixtures)
from tests.test_browser_chat import SIZES, page, stored_prompts, wait_idle  # noqa: F401 (fixtures)

SPINNER = "#chat .loading-spinner"  # Gradio's spinner on a step whose metadata status is 'pending'
SETTLED = {"Approve": "✅ Approved", "Deny": "✋ Denied", "something else": "↪ Passed over"}


def chat_text(shown) -> str:
    return shown.locator("#chat").inner_text()


def ask_to_delete(page, url: str) -> str:  # noqa: F811
    """A chat to delete, then a new chat that asks for it: returns once the question waits."""
    title = f"Ideas for a garden {secrets.token_hex(3)}"
    goto(page, url)
    send(page, title)
    wait_idle(page, 1)
    goto(page, url)  # a new chat
    send(page, f"Delete my chat called {title}")
    page.get_by_role("button", name="✅ Approve").wait_for(timeout=60_000)
    page.locator("#prompt .submit-button").wait_for(timeout=60_000)  # the asking turn has ended
    return title


def wait_for_text(page, text: str) -> None:  # noqa: F811
    page.wait_for_function("(t) => document.querySelector('#chat')?.innerText.includes(t)", arg=text, timeout=60_000)


@pytest.mark.parametrize("answer", ["Approve", "Deny", "something else"])
def test_an_answered_approval_becomes_a_settled_card_with_no_spinner(app, page, answer):  # noqa: F811
    title = ask_to_delete(page, app.url)
    assert "waiting for you" in chat_text(page)
    assert page.locator(SPINNER).count() == 0  # waiting for the visitor is not running
    page.reload()  # a reload asks the same question, still without a spinner
    page.get_by_role("button", name="✅ Approve").wait_for(timeout=60_000)
    assert page.locator(SPINNER).count() == 0 and "waiting for you" in chat_text(page)

    if answer == "something else":
        send(page, "What is 6 * 7?")
    else:
        page.get_by_role("button", name=f"{'✅' if answer == 'Approve' else '✋'} {answer}").click()
    wait_for_text(page, f"delete_my_conversation · {SETTLED[answer]}")
    page.locator("#prompt .submit-button").wait_for(timeout=60_000)
    page.wait_for_function("() => document.querySelector('#usage').innerText.includes('total')", timeout=60_000)
    for shown in ("live", "reloaded"):
        text = chat_text(page)
        assert "waiting for you" not in text, shown
        assert f"delete_my_conversation · {SETTLED[answer]}" in text, shown
        assert page.locator(SPINNER).count() == 0, shown
        assert page.get_by_role("button", name="✅ Approve", exact=True).count() == 0, shown
        if shown == "live" and answer == "Approve" or shown == "reloaded" and answer != "something else":
            page.wait_for_timeout(300)  # a step's folding animation, for the screenshot only
            name = f"approval-{answer.lower()}-{page.size}-{shown}.png"
            page.screenshot(path=str(ARTIFACTS / name))
        page.reload()
        wait_for_text(page, SETTLED[answer])
    assert ([title] in stored_prompts(app, title)) == (answer != "Approve")  # deleted only once approved


def test_the_usage_line_is_on_screen_under_the_box_after_an_answer_at_1280x800(app, browser):  # noqa: F811
    context = browser.new_context(viewport=SIZES["desktop"])
    shown = context.new_page()
    goto(shown, app.url)
    send(shown, "What is 12 * 12?")
    shown.wait_for_function("() => document.querySelector('#usage').innerText.includes('total')", timeout=60_000)
    usage = shown.locator("#usage").bounding_box()
    box = shown.locator("#prompt").bounding_box()
    assert usage is not None and box is not None
    assert usage["y"] + usage["height"] <= SIZES["desktop"]["height"]  # no scrolling to see what it cost
    assert usage["y"] >= box["y"] + box["height"]  # under the box it describes the answer above
    assert shown.evaluate("() => window.scrollY") == 0
    context.close()


def open_recipe_tab(page) -> None:  # noqa: F811
    tab = page.get_by_role("tab", name="Recipe")
    if tab.count():
        tab.click()
    else:  # on a phone the later tabs sit in Gradio's "More tabs" menu
        page.get_by_label("More tabs").click()
        page.locator(".overflow-dropdown button", has_text="Recipe").click()


def visible_controls(page) -> list[str]:  # noqa: F811
    return [name for name in ("Generate", "Stop") if page.get_by_role("button", name=name, exact=True).is_visible()]


def test_the_recipe_tab_has_one_generate_or_stop_control_and_its_knobs_under_advanced(app, page):  # noqa: F811
    goto(page, app.url)
    open_recipe_tab(page)
    page.locator("#generate").wait_for()
    assert visible_controls(page) == ["Generate"]
    assert not page.get_by_text("Output mode").is_visible() and not page.get_by_text("Debounce (s)").is_visible()
    page.screenshot(path=str(ARTIFACTS / f"recipe-idle-{page.size}.png"))
    page.get_by_text("Advanced", exact=True).click()  # the knobs are one click away
    page.get_by_text("Debounce (s)").wait_for()
    assert page.get_by_text("Output mode").is_visible()
    page.get_by_text("Advanced", exact=True).click()

    page.locator("#dish textarea, #dish input").first.fill("pancakes")
    page.locator("#generate").click()
    page.locator("#stop-recipe").wait_for(timeout=60_000)  # Stop takes Generate's place while it runs
    page.wait_for_function("() => document.querySelector('#recipe-counters').innerText.includes('Writing')")
    assert visible_controls(page) == ["Stop"]
    page.screenshot(path=str(ARTIFACTS / f"recipe-running-{page.size}.png"))
    page.locator("#stop-recipe").click()
    page.wait_for_function("() => document.querySelector('#recipe-counters').innerText.includes('Stopped')")
    page.locator("#generate").wait_for(timeout=60_000)
    assert visible_controls(page) == ["Generate"]
    words = page.locator("#recipe-counters").inner_text()
    assert "partial recipe" in words and "snapshots" not in words and "rendered" not in words and "·" not in words

    page.locator("#generate").click()
    page.wait_for_function(
        "() => document.querySelector('#recipe-counters').innerText.includes('Completed')", timeout=60_000
    )
    page.locator("#generate").wait_for(timeout=60_000)
    assert visible_controls(page) == ["Generate"]
    page.screenshot(path=str(ARTIFACTS / f"recipe-done-{page.size}.png"))
