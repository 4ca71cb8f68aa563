"""Accessibility, checked by a real engine and by the keys: axe-core on the chat, the recipe tab and the sidebar
at desktop (1280x800) and phone (390x844) sizes, light and dark; the names a screen reader announces; the
keyboard (focus, Escape, editing); a phone's touch targets and tabs. One app server for the module."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_browser import ARTIFACTS, app, bot_text, browser, goto, send  # noqa: F401 (fixtures)
from tests.test_browser_chat import wait_idle

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
AXE_FOLDER = Path(__file__).resolve().parent / "axe"
AXE_SCRIPT = AXE_FOLDER / "node_modules" / "axe-core" / "axe.min.js"
NPM = shutil.which("npm")


@pytest.fixture(scope="module")
def axe_script() -> Path:
    """axe-core from npm, at the version tests/axe/package-lock.json pins (installed there on first use)."""
    if not AXE_SCRIPT.exists():
        if NPM is None:
            pytest.skip("npm is needed for axe-core: apt-get install nodejs npm")
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=AXE_FOLDER, check=True, timeout=600)
    return AXE_SCRIPT


def new_page(browser, size: str, scheme: str = "light"):  # noqa: F811
    context = browser.new_context(
        viewport=SIZES[size], is_mobile=size == "phone", has_touch=size == "phone", color_scheme=scheme
    )
    page = context.new_page()
    page.size = size
    return page


@pytest.fixture(params=list(SIZES))
def page(request, browser):  # noqa: F811
    opened = new_page(browser, request.param)
    yield opened
    opened.context.close()


def wait_streaming(page) -> None:
    page.wait_for_function(
        "() => { const b = document.querySelectorAll(\"[data-testid='bot']\");"
        " return document.querySelector('#prompt .stop-button') && b.length && b[b.length-1].innerText.includes('9'); }"
    )


def serious_violations(page, axe_script: Path, state: str) -> list[str]:
    """What axe-core finds serious or critical on the page as it is, one line per element."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(axe_script))
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .flatMap((v) => v.nodes.map((n) => `${v.impact} ${v.id} (${v.help}): ${n.target.join(' ')} `
                + `${n.html.slice(0, 160)} | ${(n.failureSummary || '').replace(/\\s+/g, ' ').slice(0, 240)}`))"""
    )
    return [f"[{state}] {line}" for line in found]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", list(SIZES))
def test_axe_finds_nothing_serious_on_the_chat_the_sidebar_and_the_recipe_tab(app, browser, axe_script, size, scheme):  # noqa: F811
    page = new_page(browser, size, scheme)
    found = []
    goto(page, app.url)
    found += serious_violations(page, axe_script, "a new chat")
    send(page, "Ideas for a vegetable garden")
    wait_idle(page, 1)
    goto(page, app.url)  # a new chat, which asks to delete the first one
    send(page, "Delete my chat called Ideas for a vegetable garden")
    page.get_by_role("button", name="✅ Approve").wait_for()
    page.locator("#prompt .submit-button").wait_for()
    page.get_by_text("delete_my_conversation · ⏸ waiting for you").click()  # the step opened: its arguments shown
    page.locator("pre", has_text="vegetable garden").wait_for()
    found += serious_violations(page, axe_script, "an approval waiting")
    page.screenshot(path=str(ARTIFACTS / f"a11y-approval-{size}-{scheme}.png"))
    send(page, "count to 900")
    wait_streaming(page)
    found += serious_violations(page, axe_script, "an answer streaming")
    page.screenshot(path=str(ARTIFACTS / f"a11y-streaming-{size}-{scheme}.png"))
    page.locator("#prompt .stop-button").click()
    page.locator("#prompt .submit-button").wait_for()
    if size == "phone":
        page.locator(".sidebar .toggle-button").click()
        page.wait_for_function("() => document.querySelector('.sidebar').classList.contains('open')")
        found += serious_violations(page, axe_script, "the sidebar open")
        page.screenshot(path=str(ARTIFACTS / f"a11y-sidebar-{size}-{scheme}.png"))
        page.locator(".sidebar .toggle-button").click()
        page.wait_for_function("() => !document.querySelector('.sidebar').classList.contains('open')")
    page.get_by_role("tab", name="Recipe").click()
    page.locator("#dish textarea, #dish input").first.fill("pancakes")
    page.locator("#generate").click()
    page.wait_for_function(
        "() => document.querySelector('#recipe-counters').innerText.toLowerCase().includes('completed')"
    )
    found += serious_violations(page, axe_script, "a recipe")
    page.screenshot(path=str(ARTIFACTS / f"a11y-recipe-{size}-{scheme}.png"))
    page.context.close()
    assert not found, f"axe-core ({size}, {scheme}) found {len(found)} serious or critical:\n" + "\n".join(found)


def test_every_control_of_the_chat_has_a_name_a_screen_reader_says(app, page):  # noqa: F811
    goto(page, app.url)
    page.get_by_role("textbox", name="Message").wait_for()
    assert page.get_by_role("combobox", name="Model").count() == 1
    assert page.get_by_role("button", name="Send").count() == 1
    page.get_by_role("button", name="Select example 3: count to 200").wait_for()
    if page.size == "phone":
        page.locator(".sidebar .toggle-button").click()
    assert page.get_by_role("textbox", name="Search your conversations").is_visible()
    if page.size == "phone":
        page.locator(".sidebar .toggle-button").click()
    send(page, "count to 900")
    page.get_by_role("button", name="Stop").wait_for()
    assert page.get_by_role("button", name="Send").count() == 0
    page.get_by_role("button", name="Stop").click()
    page.get_by_role("button", name="Send").wait_for()
    send(page, "Wie viel ist 1111 * 9?")
    wait_idle(page, 2)
    step = page.get_by_role("button", name="🛠️ calculate")
    assert step.count() == 1 and step.get_attribute("aria-expanded") == "false"
    step.click()
    page.locator("pre", has_text="9999").wait_for()
    assert step.get_attribute("aria-expanded") == "true"
    nameless = page.evaluate(
        """() => [...document.querySelectorAll('#chat button, #prompt button, #chat [role=button]')]
            .filter((b) => b.checkVisibility() && !b.closest('[inert]'))
            .filter((b) => !(b.getAttribute('aria-label') || b.title || b.innerText).trim())
            .map((b) => b.outerHTML.slice(0, 120))"""
    )
    assert nameless == []
    page.get_by_role("tab", name="Recipe").click()
    assert page.get_by_role("textbox", name="Dish").is_visible()


def test_gradio_still_draws_the_controls_the_naming_script_names_as_it_reads_them(app, browser):  # noqa: F811
    """Canary for ui/layout.py NAME_GRADIO_CONTROLS: it reads Gradio 6.31's markup. When this fails, Gradio draws
    these controls differently: check what it names now (perhaps on its own) and change the script."""
    page = new_page(browser, "desktop")

    def drawn(selector: str, what: str) -> None:
        assert page.locator(selector).count(), f"Gradio no longer draws {what} as `{selector}`"

    goto(page, app.url)
    page.locator("#chat .examples button").first.wait_for()
    drawn("#chat .examples", "the examples, whose role=list the script makes a group")
    drawn("#prompt .submit-button", "Send, an icon-only button in the message box")
    send(page, "count to 900")
    page.locator("#prompt .stop-button").wait_for()
    drawn("#prompt .stop-button", "Stop, an icon-only button in the message box")
    page.locator("#prompt .stop-button").click()
    page.locator("#prompt .submit-button").wait_for()
    send(page, "Wie viel ist 1111 * 9?")
    wait_idle(page, 2)
    drawn("#chat .thought-group .title[role='button'] .arrow button", "a step's fold arrow, nested in the step")
    page.locator("#chat button[aria-label='Edit']").last.click()
    drawn("#chat textarea.edit-textarea", "the box of a message being edited")
    drawn("#chat button[aria-label='Submit']", "the edit's ✓ (Enter presses it)")
    drawn("#chat button[aria-label='Cancel']", "the edit's ✕ (Escape presses it)")
    page.context.close()


def focused(page) -> str:
    return page.evaluate("() => document.activeElement?.closest('#prompt') ? 'box' : document.activeElement?.outerHTML")


def test_the_box_has_the_focus_on_load_and_again_after_each_answer(app, page):  # noqa: F811
    goto(page, app.url)
    page.wait_for_function("() => document.activeElement === document.querySelector('#prompt textarea')")
    page.keyboard.type("count to 3")
    page.keyboard.press("Enter")
    wait_idle(page, 1)
    page.wait_for_function("() => document.activeElement === document.querySelector('#prompt textarea')")
    page.locator("#prompt textarea").fill("count to 4")
    page.get_by_role("button", name="Send").click()  # the pressed button is gone once the answer ends
    wait_idle(page, 2)
    page.wait_for_function("() => document.activeElement === document.querySelector('#prompt textarea')")
    assert focused(page) == "box"


def test_escape_stops_the_answer_and_the_partial_answer_is_labelled_stopped(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, "count to 3000")
    wait_streaming(page)
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b[b.length-1].innerText.includes('stopped'); }"
    )
    page.locator("#prompt .submit-button").wait_for()
    assert "3000." not in bot_text(page)
    assert "stopped" in page.locator("#usage").inner_text()


def test_enter_saves_an_edit_and_shift_enter_makes_a_new_line(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, "count to 3")
    wait_idle(page, 1)
    page.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("textbox", name="Edit your message")
    edit.fill("count to 5")
    edit.press("Shift+Enter")
    edit.press_sequentially("please")
    assert edit.input_value() == "count to 5\nplease"
    edit.press("Enter")
    page.wait_for_function("() => document.querySelector('#chat').innerText.includes('1 2 3 4 5.')")
    assert page.locator("[data-testid='user']").last.inner_text().split() == ["count", "to", "5", "please"]


def touch_targets(page) -> dict[str, tuple[int, int]]:
    """The size of every button of the chat and every tab shown, by name."""
    measured = {}
    for target in page.locator("#chat button, #prompt button, #chat [role='button'], [role='tab']").all():
        if target.is_visible() and not target.evaluate("(e) => !!e.closest('[inert]')"):
            box = target.bounding_box()
            name = target.get_attribute("aria-label") or target.inner_text().strip()
            measured[name] = (round(box["width"]), round(box["height"]))
    return measured


def test_on_a_phone_every_touch_target_is_44_px_and_every_tab_shows_its_name(app, browser):  # noqa: F811
    page = new_page(browser, "phone")
    goto(page, app.url)
    for name in ("Chat", "Recipe", "Analyst → writer", "Stream inspector"):
        assert page.get_by_role("tab", name=name).is_visible(), name
    page.get_by_role("button", name="Select example 3: count to 200").wait_for()
    measured = touch_targets(page)
    send(page, "Wie viel ist 1111 * 9?")
    wait_idle(page, 1)
    page.get_by_role("button", name="Edit").last.wait_for()
    measured |= touch_targets(page)
    assert {"Select example 3: count to 200", "Copy message", "Edit", "Retry", "Undo", "Send", "Chat"} <= set(measured)
    small = {name: size for name, size in measured.items() if min(size) < 44}
    assert small == {}, measured
    page.screenshot(path=str(ARTIFACTS / "a11y-touch-targets-phone.png"))
    page.context.close()
