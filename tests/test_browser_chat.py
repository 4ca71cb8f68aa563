"""The chat tab as a new user meets it, in Chromium at desktop (1280x800) and phone (390x844) sizes."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chat.config import Settings
from tests.apps import running_app
from tests.test_browser import ARTIFACTS, app, bot_text, browser, goto, send, stop  # noqa: F401 (fixtures)

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(params=list(SIZES))
def page(request, browser):  # noqa: F811
    size = request.param
    context = browser.new_context(viewport=SIZES[size], is_mobile=size == "phone", has_touch=size == "phone")
    opened = context.new_page()
    opened.size = size
    yield opened
    context.close()


def wait_idle(page, answers: int) -> None:
    """Until `answers` answers are shown and none is streaming (the send button is back)."""
    page.wait_for_function(
        "(n) => document.querySelectorAll(\"[data-testid='bot']\").length >= n"
        " && document.querySelector('#prompt .submit-button') && !document.querySelector('#prompt .stop-button')"
        " && document.querySelector('#usage').innerText.includes('total')",
        arg=answers,
    )


def stored_prompts(app, owner_filter: str = "") -> list[list[str]]:  # noqa: F811
    async def read() -> list[list[str]]:
        found = []
        for record in await app.service.store.read_records():
            conversation = await app.service.store.load(record.conversation_id, scope=record.scope)
            prompts = [
                part.content
                for message in conversation.messages
                for part in message.parts
                if getattr(part, "part_kind", "") == "user-prompt"
            ]
            if any(owner_filter in prompt for prompt in prompts):
                found.append(prompts)
        return found

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        return pool.submit(asyncio.run, read()).result()


def open_sidebar_on_phone(page) -> None:
    if page.size == "phone":
        page.locator(".sidebar .toggle-button").click()
        page.wait_for_function("() => document.querySelector('.sidebar').classList.contains('open')")


def new_chat(page) -> None:
    """Press New chat (on a phone, open the sidebar first) and wait for the empty pane."""
    open_sidebar_on_phone(page)
    page.locator("#new-chat").click()
    page.wait_for_function("() => document.querySelectorAll(\"[data-testid='user']\").length == 0")


def row_menu(page, text: str, action: str) -> None:
    """Open the ⋯ menu of the sidebar row whose title holds `text` and pick `action` in it."""
    row = page.locator("#sessions .chat-row", has_text=text)
    row.hover()
    row.locator(".chat-menu-button").click()
    row.locator(f".chat-menu [data-action='{action}']").click()


def open_tab(page, name: str) -> None:
    """A tab by its name (on a phone too: the tabs wrap onto two rows rather than hide in a menu)."""
    page.get_by_role("tab", name=name).click()


def test_first_load_shows_the_box_and_examples_on_screen(app, page):  # noqa: F811
    goto(page, app.url)
    viewport = page.viewport_size
    box = page.locator("#prompt textarea").bounding_box()
    assert box and 0 <= box["y"] and box["y"] + box["height"] <= viewport["height"]  # no scrolling needed
    assert page.get_by_text("count to 200").first.is_visible()  # examples on an empty chat
    toggle = page.locator(".sidebar .toggle-button").bounding_box()
    assert toggle["width"] >= 44 and toggle["height"] >= 44
    sidebar_open = page.evaluate("() => document.querySelector('.sidebar').classList.contains('open')")
    assert sidebar_open is (page.size == "desktop")  # on a phone the chat comes first
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"chat-first-load-{page.size}.png"))


def test_a_follow_up_typed_during_an_answer_is_queued_and_sent_after_it(app, page):  # noqa: F811
    goto(page, app.url)
    box = page.locator("#prompt textarea")
    send(page, "count to 90")
    page.wait_for_function("() => document.querySelector('#prompt .stop-button')")
    assert box.input_value() == "" and not box.is_disabled()  # cleared at once, still usable
    assert page.locator("#prompt .submit-button").count() == 0  # one control: Send became Stop
    follow_up = f"Je m'appelle Léa ({page.size}) ; my name is Lea and I am 19."
    box.fill(follow_up)
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#queued-note').innerText.includes('Queued')")
    assert "90." not in bot_text(page)  # it was queued while the first answer still streamed
    wait_idle(page, 2)
    users = [bubble.inner_text() for bubble in page.locator("[data-testid='user']").all()]
    assert users == ["count to 90", follow_up]
    assert "Lea" in bot_text(page) and "19" in bot_text(page)
    assert [["count to 90", follow_up]] == stored_prompts(app, follow_up)


def test_editing_the_first_message_answers_it_again_and_keeps_the_rest_as_a_branch(app, page):  # noqa: F811
    goto(page, app.url)
    marker = f"count to 3 ({page.size})"
    send(page, marker)
    wait_idle(page, 1)
    send(page, "count to 4")
    wait_idle(page, 2)
    page.locator("#chat button[aria-label='Edit']").first.click()
    page.locator("#chat textarea").fill(f"count to 2 ({page.size})")
    page.locator("#chat button[aria-label='Submit']").click()
    page.wait_for_function("() => document.querySelector('#chat')?.innerText.includes('1 2.')")
    wait_idle(page, 1)
    assert page.locator("[data-testid='user']").count() == 1 and "1 2 3 4." not in page.locator("#chat").inner_text()
    assert page.get_by_text("Error").count() == 0
    page.reload()  # what is shown is what is stored
    page.wait_for_function("() => document.querySelector('#chat')?.innerText.includes('1 2.')")
    assert page.locator("[data-testid='user']").count() == 1
    assert stored_prompts(app, f"count to 2 ({page.size})") == [[f"count to 2 ({page.size})"]]


def test_switching_chats_during_an_answer_keeps_pane_highlight_and_next_message_together(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, f"Mein Name ist Ines, I am 30 ({page.size}). My name is Ines.")
    wait_idle(page, 1)
    new_chat(page)
    send(page, "count to 3000")
    page.wait_for_function("() => (document.querySelector(\"[data-testid='bot']\")?.innerText || '').includes('9')")
    open_sidebar_on_phone(page)
    page.locator("#sessions .chat-open", has_text="Ines").click()
    page.wait_for_function("() => document.querySelector('#chat')?.innerText.includes('Ines')")
    shown = page.locator("#chat").inner_text()
    page.wait_for_timeout(600)
    assert page.locator("#chat").inner_text() == shown and "count to 3000" not in shown  # nothing else streams in
    assert "Ines" in page.locator("#sessions .chat-row[aria-current='page']").inner_text()
    if page.size == "phone":
        assert not page.evaluate("() => document.querySelector('.sidebar').classList.contains('open')")
    send(page, "How old am I?")
    wait_idle(page, 2)
    assert "30" in bot_text(page)
    counting = [prompts for prompts in stored_prompts(app, "count to 3000")]
    assert all(prompts == ["count to 3000"] for prompts in counting)  # the next message went to Ines's chat


def test_reload_reopens_the_chat_and_its_address_opens_nothing_for_anyone_else(app, browser, page):  # noqa: F811
    goto(page, app.url)
    send(page, f"Ciao, mi chiamo Luca ({page.size}) — count to 4000")
    page.wait_for_function("() => (document.querySelector(\"[data-testid='bot']\")?.innerText || '').includes('20')")
    stop(page)  # a stopped first answer still names the chat
    page.wait_for_function("() => document.querySelector('#sessions')?.innerText.includes('Ciao, mi chiamo Luca')")
    address = page.url
    page.reload()
    page.wait_for_function("() => document.querySelector('#chat')?.innerText.includes('stopped')")
    assert "mi chiamo Luca" in page.locator("#chat").inner_text() and page.url == address
    stranger = browser.new_context()
    other = stranger.new_page()
    other.goto(address)
    other.wait_for_function("(a) => location.href != a && new URLSearchParams(location.search).has('c')", arg=address)
    assert "Luca" not in other.locator("body").inner_text()
    stranger.close()


def test_a_reload_mid_answer_picks_the_answer_up_where_it_is_and_stop_still_stops_it(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, f"Grüß dich ({page.size}), count to 1500")
    page.wait_for_function("() => (document.querySelector(\"[data-testid='bot']\")?.innerText || '').includes(' 12 ')")
    page.reload()
    page.wait_for_function("() => document.querySelector('#prompt .stop-button')")  # still answering, stoppable
    assert f"Grüß dich ({page.size})" in page.locator("[data-testid='user']").last.inner_text()
    page.wait_for_function("() => (document.querySelector(\"[data-testid='bot']\")?.innerText || '').includes(' 40 ')")
    stop(page)
    page.wait_for_function("() => document.querySelector('#chat')?.innerText.includes('stopped')")
    wait_idle(page, 1)
    shown = bot_text(page)
    assert shown.startswith("1 2 3") and "1500." not in shown
    assert page.locator("[data-testid='user']").count() == 1 and page.locator("[data-testid='bot']").count() == 1
    assert stored_prompts(app, f"Grüß dich ({page.size})") == [[f"Grüß dich ({page.size}), count to 1500"]]
    open_sidebar_on_phone(page)  # the new chat got its title in the sidebar, as when this page sends
    page.wait_for_function(
        "(t) => document.querySelector('#sessions')?.innerText.includes(t)", arg=f"Grüß dich ({page.size})"
    )
    page.reload()  # what was streamed after the reload is what was kept
    page.wait_for_function("() => document.querySelector('#chat')?.innerText.includes('stopped')")
    assert bot_text(page) == shown


def test_what_cannot_be_sent_stays_in_the_box_with_the_reason_on_screen(app, page):  # noqa: F811
    goto(page, app.url)
    box, note = page.locator("#prompt textarea"), page.locator("#prompt-note")
    box.press("Enter")  # an empty box sends nothing
    oversized = "ё" * (app.service.max_prompt_chars + 2)
    box.fill(oversized)
    box.press("Enter")
    note.wait_for(state="visible")
    assert f"{app.service.max_prompt_chars + 2:,} characters" in note.inner_text()
    placed = note.bounding_box()
    assert placed and placed["y"] + placed["height"] <= page.viewport_size["height"]  # on screen
    page.locator("#prompt .submit-button").click()  # the button refuses it as well
    assert box.input_value() == oversized
    send(page, f"count to 5 ({page.size})")
    note.wait_for(state="hidden")  # shortened: the reason goes away
    page.wait_for_function("() => document.querySelector('#prompt .stop-button')")
    box.fill(oversized)
    box.press("Enter")  # during an answer: refused, not queued
    note.wait_for(state="visible")
    assert not page.locator("#queued-note").is_visible() and box.input_value() == oversized
    box.fill("")
    wait_idle(page, 1)
    users = [bubble.inner_text() for bubble in page.locator("[data-testid='user']").all()]
    assert users == [f"count to 5 ({page.size})"]


def test_an_analyst_to_writer_run_is_listed_searchable_and_opens_in_the_chat(app, page):  # noqa: F811
    goto(page, app.url)
    data = f"Wochenumsatz ({page.size}): 42, 57, 61, 48, 73"
    open_tab(page, "Analyst → writer")
    page.locator("#handoff-data textarea").fill(data)
    page.locator("#handoff-go").click()
    page.wait_for_function("() => document.querySelector('#handoff-note').innerText.includes('Done')")
    open_sidebar_on_phone(page)
    page.wait_for_function("() => document.querySelector('#sessions').innerText.includes('Analysis: Wochenumsatz')")
    page.locator("#search textarea, #search input").first.fill("numbers say")  # a phrase of the writer's article
    found = page.locator("#search-results label", has_text="Wochenumsatz")
    found.wait_for()
    found.click()  # from the analyst's tab: the chat it opens comes forward
    page.wait_for_function("(d) => document.querySelector('#chat')?.innerText.includes(d)", arg=data)
    assert page.locator("#chat").is_visible() and page.locator("#prompt textarea").is_visible()
    assert "56.20" in page.locator("#chat").inner_text()  # the analyst's mean, then the writer's article
    assert page.locator("[data-testid='bot']").count() == 2


def test_no_loading_spinner_flashes_over_the_box_or_the_sidebar_after_a_turn(app, page):  # noqa: F811
    goto(page, app.url)
    page.evaluate("""() => {
        window.__spinners = [];
        const watch = () => document.querySelectorAll("[data-testid='status-tracker']").forEach((tracker) => {
            const where = tracker.closest('#prompt, #sidebar, #sessions, #title, #usage');
            if (where && !tracker.classList.contains('hide')) window.__spinners.push(where.id + ' ' + tracker.className);
        });
        new MutationObserver(watch).observe(document.body, {subtree: true, attributes: true, childList: true});
    }""")
    send(page, f"Hola, soy Nuria ({page.size})")
    wait_idle(page, 1)
    page.wait_for_function("() => document.querySelector('#sessions')?.innerText.includes('Nuria')")
    page.wait_for_timeout(300)  # the events chained after the answer have run
    assert page.evaluate("() => window.__spinners") == []


def test_an_export_of_a_chinese_titled_chat_downloads_under_its_name(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, f"我叫小林，今年35岁。我住在大阪，喜欢拉面和咖喱（{page.size}）")
    wait_idle(page, 1)
    open_sidebar_on_phone(page)
    page.wait_for_function("() => document.querySelector('#sessions')?.innerText.includes('小林')")
    with page.expect_download() as download:
        row_menu(page, "小林", "export-json")
    name = download.value.suggested_filename
    assert name.startswith("我叫小林-今年35岁") and name.endswith(".json")
    assert name in page.locator("#sidebar-notice").inner_text()  # the page says what it saved
    saved = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert "拉面和咖喱" in json.dumps(saved, ensure_ascii=False)


def choose_file(page, path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("#import").click()
    chooser.value.set_files(str(path))


@pytest.fixture(scope="module")
def small_imports():
    settings = Settings(demo_first_token_delay=0.05, demo_tokens_per_second=200, warm_up=False, max_import_mb=0.02)
    with running_app(settings) as running:
        yield running


def test_a_file_over_the_import_limit_is_refused_with_a_sentence_and_nothing_stored(small_imports, page, tmp_path):
    goto(page, small_imports.url)
    send(page, f"Olá, tudo bem? ({page.size})")
    wait_idle(page, 1)
    open_sidebar_on_phone(page)
    page.wait_for_function("(t) => document.querySelector('#sessions')?.innerText.includes(t)", arg="Olá, tudo bem?")
    with page.expect_download() as download:
        row_menu(page, "Olá, tudo bem?", "export-json")
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    padded = tmp_path / "padded.json"
    padded.write_text(exported + " " * 30_000, encoding="utf-8")
    choose_file(page, padded)
    refusal = page.get_by_text("exceed the maximum allowed size")  # Gradio's own, before any upload
    refusal.first.wait_for()
    assert refusal.first.is_visible() and "padded.json" in refusal.first.inner_text()
    kept = tmp_path / "kept.json"
    kept.write_text(exported, encoding="utf-8")
    choose_file(page, kept)
    page.wait_for_function("() => document.querySelector('#sidebar-notice')?.innerText.includes('Imported 2 messages')")
    assert stored_prompts(small_imports, f"({page.size})") == [[f"Olá, tudo bem? ({page.size})"]] * 2


def test_every_tab_says_what_is_wrong_the_same_way_on_its_status_line(app, page):  # noqa: F811
    goto(page, app.url)
    for tab, box, go, status in (
        ("Recipe", "#dish", "#generate", "#recipe-counters"),
        ("Analyst → writer", "#handoff-data", "#handoff-go", "#handoff-note"),
        ("Stream inspector", "#probe", "#probe-go", "#probe-note"),
    ):
        open_tab(page, tab)
        page.locator(f"{box} textarea, {box} input").first.fill("   ")
        page.locator(go).click()
        page.wait_for_function("(s) => document.querySelector(s).innerText.startsWith('⚠️')", arg=status)
        assert page.locator(status).is_visible()
        assert page.locator(".toast-body").count() == 0  # no pop-up in one tab and a line in another


def test_copying_a_stopped_answer_copies_the_answer_without_its_label(app, page):  # noqa: F811
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    goto(page, app.url)
    send(page, "count to 4000")
    page.wait_for_function("() => document.querySelector(\"[data-testid='bot']\")?.innerText.includes('7')")
    stop(page)
    wait_idle(page, 1)
    assert "stopped" in bot_text(page)
    page.locator("[data-testid='bot']").last.hover()
    page.get_by_label("Copy message").last.click()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.startswith("1") and "7" in copied  # the answer as far as it went...
    assert "stopped" not in copied and "⏹" not in copied and not copied.endswith("\n")  # ...and nothing else


def test_stop_pressed_while_the_answer_waits_for_a_free_slot_ends_it_before_it_runs(browser, tmp_path):  # noqa: F811
    settings = Settings(
        max_concurrent_streams=1,
        demo_first_token_delay=0.05,
        demo_tokens_per_second=40,
        warm_up=False,
        db_path=str(tmp_path / "chat.db"),
    )
    with running_app(settings) as one_slot:
        busy = browser.new_page(viewport=SIZES["desktop"])
        goto(busy, one_slot.url)
        send(busy, "count to 3000")
        busy.wait_for_function("() => document.querySelector(\"[data-testid='bot']\")?.innerText.includes('3')")
        waiting = browser.new_page(viewport=SIZES["phone"])
        goto(waiting, one_slot.url)
        send(waiting, "count to 2000, s'il vous plaît")
        waiting.wait_for_function("() => document.querySelector('#prompt .stop-button')")
        assert len(one_slot.service.active) == 1  # only the other visitor's answer runs: this one is queued
        stop(waiting)
        stop(busy)  # the only slot comes free, and the waiting answer gets it
        wait_idle(waiting, 1)
        answer = bot_text(waiting)
        assert "stopped" in answer and not any(character.isdigit() for character in answer)  # ended as it began
        assert [["count to 2000, s'il vous plaît"]] == stored_prompts(one_slot, "s'il vous")  # the prompt is kept


def test_a_chat_answering_in_the_page_refuses_a_turn_from_the_api_and_the_page_answer_goes_on(app, browser):  # noqa: F811
    page = browser.new_page(viewport=SIZES["desktop"])
    goto(page, app.url)
    send(page, "count to 411")
    page.wait_for_function("() => document.querySelector(\"[data-testid='bot']\")?.innerText.includes('4')")
    chat = page.evaluate("() => new URLSearchParams(location.search).get('c')")
    # The page's own requests carry its visitor cookie: the same visitor, through the SSE API.
    refused = page.request.post(f"{app.url}api/chat", data={"message": "Wie alt bin ich?", "conversation_id": chat})
    assert refused.status == 409 and "still answering" in refused.json()["error"]
    wait_idle(page, 1)
    assert "411." in bot_text(page) and "stopped" not in bot_text(page)
    assert [["count to 411"]] == stored_prompts(app, "count to 411")
    page.close()


def test_a_tool_step_opens_to_show_its_arguments_and_result_and_is_the_same_after_a_reload(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, "Wie viel ist 1111 * 9?")
    wait_idle(page, 1)
    for shown in ("live", "reloaded"):
        step = page.get_by_text("🛠️ calculate", exact=True)
        step.wait_for()
        result = page.locator("pre", has_text="9999")  # the step's Result block, not the answer's bold 9999
        assert not result.is_visible(), shown  # a step starts folded: the answer is what is read first
        assert "9999" in bot_text(page)
        step.click()
        result.wait_for(state="visible")
        assert page.get_by_text('"expression": "1111 * 9"').is_visible(), shown
        page.wait_for_timeout(400)  # the step's opening animation, for the screenshot only
        page.screenshot(path=str(ARTIFACTS / f"tool-step-{page.size}-{shown}.png"))
        page.reload()  # what comes back is what is stored


def test_a_tool_that_needs_approval_asks_with_buttons_and_runs_once_approved(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, "Ideas for a vegetable garden")
    wait_idle(page, 1)
    goto(page, app.url)  # a new chat
    assert "vegetable garden" in page.locator("#sessions").text_content()
    send(page, "Delete my chat called Ideas for a vegetable garden")
    approve = page.get_by_role("button", name="✅ Approve")
    approve.wait_for()
    page.locator("#prompt .submit-button").wait_for()  # the asking turn has ended
    assert page.get_by_text("delete_my_conversation · ⏸ waiting for you").is_visible()
    page.screenshot(path=str(ARTIFACTS / f"tool-approval-{page.size}.png"))
    approve.click()
    page.wait_for_function("() => document.body.innerText.includes('Done: Deleted the chat')")
    page.wait_for_function("() => !document.querySelector('#sessions').textContent.includes('vegetable garden')")


def test_the_date_and_time_tool_answers_in_the_browsers_time_zone(app, browser):  # noqa: F811
    context = browser.new_context(timezone_id="America/Bogota", viewport=SIZES["phone"])
    page = context.new_page()
    goto(page, app.url)
    send(page, "¿Qué hora es?")
    page.wait_for_function("() => document.body.innerText.includes('(America/Bogota)')")
    context.close()
