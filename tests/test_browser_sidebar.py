"""The sidebar and the pane in Chromium at 1280x800 and 390x844: the pane always shows the chat in the address,
a chat is listed from its first message, and each row has its own menu (rename, export, delete)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_browser import ARTIFACTS, app, bot_text, browser, goto, send  # noqa: F401 (fixtures)
from tests.test_browser_chat import (  # noqa: F401 (fixtures)
    new_chat,
    open_sidebar_on_phone,
    page,
    row_menu,
    stored_prompts,
    wait_idle,
)

ADDRESS = "() => new URLSearchParams(location.search).get('c')"
LISTED = "(t) => (document.querySelector('#sessions')?.innerText || '').includes(t)"


def answering_with(page, text: str) -> None:  # noqa: F811
    """Until the answer streaming in the pane shows `text`."""
    page.wait_for_function(
        "(t) => { const b = document.querySelectorAll(\"[data-testid='bot']\");"
        " return b.length && b[b.length - 1].innerText.includes(t) && document.querySelector('#prompt .stop-button'); }",
        arg=text,
    )


def open_row(page, text: str) -> None:  # noqa: F811
    """Open the listed chat whose title holds `text` (on a phone, the sidebar first)."""
    open_sidebar_on_phone(page)
    page.locator("#sessions").get_by_text(text).first.click()


def test_new_chat_during_an_answer_empties_the_pane_and_the_next_message_is_alone_in_it(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, f"count to 90 ({page.size})")
    answering_with(page, " 9 ")
    old = page.evaluate(ADDRESS)
    open_sidebar_on_phone(page)
    page.locator("#new-chat").click()
    page.wait_for_function(f"(old) => ({ADDRESS})() !== old", arg=old)
    page.wait_for_function("() => document.querySelectorAll(\"[data-testid='user'], [data-testid='bot']\").length == 0")
    assert f"count to 90 ({page.size})" not in page.locator("#chat").inner_text()
    send(page, f"Only this ({page.size})")
    wait_idle(page, 1)
    users = [bubble.inner_text() for bubble in page.locator("[data-testid='user']").all()]
    assert users == [f"Only this ({page.size})"] and page.locator("[data-testid='bot']").count() == 1
    page.reload()  # what the pane showed is what is stored
    page.wait_for_function("() => document.querySelectorAll(\"[data-testid='bot']\").length == 1")
    assert [bubble.inner_text() for bubble in page.locator("[data-testid='user']").all()] == users


def test_a_chat_is_listed_from_its_first_message_and_stays_listed_when_left_mid_answer(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, f"Ich heiße Jonas ({page.size})")
    wait_idle(page, 1)
    new_chat(page)
    prompt = f"count to 200 ({page.size})"
    send(page, prompt)
    # Listed while its first answer is still being written, before anything of it is stored.
    page.wait_for_function(f"(t) => ({LISTED})(t) && document.querySelector('#prompt .stop-button')", arg=prompt)
    answering_with(page, " 9 ")
    open_row(page, f"Ich heiße Jonas ({page.size})")  # switch away mid-answer
    page.wait_for_function("(t) => document.querySelector('#chat').innerText.includes(t)", arg="Jonas")
    open_sidebar_on_phone(page)
    page.wait_for_function(LISTED, arg=prompt)  # still listed, as the switch shows the sidebar
    page.locator("#sessions").get_by_text(prompt).first.click()  # and it opens, stopped where it was left
    page.wait_for_function("() => document.querySelector('#chat').innerText.includes('stopped')")
    assert prompt in page.locator("[data-testid='user']").first.inner_text()
    assert stored_prompts(app, prompt) == [[prompt]]


def test_the_header_has_no_trash_that_only_starts_a_new_chat(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, f"Guten Morgen ({page.size})")
    wait_idle(page, 1)
    trash = page.locator("#chat button[aria-label='Clear'], #chat button[title='Clear']")
    assert trash.count() == 0 or not trash.first.is_visible()


def _row(page, text: str):  # noqa: F811
    return page.locator("#sessions .chat-row", has_text=text)


_menu = row_menu


def test_each_rows_menu_renames_exports_and_deletes_that_rows_chat_not_the_one_shown(app, page):  # noqa: F811
    goto(page, app.url)
    names = [f"Olga ({page.size})", f"Piet ({page.size})", f"Kai ({page.size})"]
    for number, name in enumerate(names):
        if number:
            new_chat(page)
        send(page, f"I am {name}")
        wait_idle(page, 1)
    shown = page.evaluate(ADDRESS)  # Kai's chat, the one selected
    open_sidebar_on_phone(page)
    page.wait_for_function("(n) => document.querySelectorAll('#sessions .chat-row').length >= n", arg=3)
    assert page.locator("#sessions .chat-row[aria-current='page']").inner_text().startswith(f"I am {names[2]}")
    assert "Today" in page.locator("#sessions").inner_text()  # grouped under a date heading
    assert "just now" not in page.locator("#sessions").inner_text()

    _menu(page, names[0], "rename")  # Olga's row, not the selected chat
    title = _row(page, names[0]).locator("input.chat-title-input")
    title.fill("Tofu night <img src=x onerror=window.__pwned=1>")
    title.press("Enter")
    page.wait_for_function(LISTED, arg="Tofu night <img")
    assert page.evaluate("() => window.__pwned") is None  # a title is text, never run
    assert page.evaluate(ADDRESS) == shown and f"I am {names[2]}" in page.locator("#chat").inner_text()

    with page.expect_download() as download:
        _menu(page, names[1], "export-json")
    saved = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert f"I am {names[1]}" in json.dumps(saved, ensure_ascii=False)
    assert download.value.suggested_filename.startswith("I-am-Piet")

    _menu(page, names[1], "delete")
    row = _row(page, names[1])
    row.locator("[data-action='cancel-delete']").click()  # changed my mind: nothing deleted
    assert _row(page, names[1]).count() == 1
    _menu(page, names[1], "delete")
    _row(page, names[1]).locator("[data-action='confirm-delete']").click()
    page.wait_for_function(f"(t) => !({LISTED})(t)", arg=names[1])
    assert page.evaluate(ADDRESS) == shown and f"I am {names[2]}" in page.locator("#chat").inner_text()
    assert stored_prompts(app, names[1]) == [] and stored_prompts(app, names[2]) == [[f"I am {names[2]}"]]

    _menu(page, names[2], "delete")  # the chat shown: the pane becomes a new chat
    _row(page, names[2]).locator("[data-action='confirm-delete']").click()
    page.wait_for_function(f"(t) => !({LISTED})(t)", arg=names[2])
    page.wait_for_function(f"(old) => ({ADDRESS})() !== old", arg=shown)
    page.wait_for_function("() => document.querySelectorAll(\"[data-testid='user']\").length == 0")
    assert page.locator("#sessions .chat-row", has_text="Tofu night").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"sidebar-rows-{page.size}.png"))
