"""A real browser (Playwright driving Debian's chromium) against the real app: type, send, watch, Stop."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from chat.config import Settings
from server import run_to_completion
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


@pytest.fixture
def opened(app, browser):
    """A new page on the app, ready to type in; closed after the test."""
    page = browser.new_page()
    goto(page, app.url)
    yield page
    page.close()


@pytest.fixture
def wide(app, browser):
    """A new 1300x1000 page on the app (room for a whole tab in a screenshot); closed after the test."""
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    goto(page, app.url)
    yield page
    page.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


def goto(page, url: str) -> None:
    """Open the chat page and wait until it is ready: the load events end by naming the chat in the address."""
    page.goto(url)
    page.wait_for_function("() => new URLSearchParams(location.search).has('c')")


def bot_text(page) -> str:
    bubbles = page.locator("[data-testid='bot']")
    return bubbles.last.inner_text() if bubbles.count() else ""


def send(page, text: str) -> None:
    page.locator("#prompt textarea").fill(text)
    page.locator("#prompt .submit-button").click()


def stop(page) -> None:
    page.locator("#prompt .stop-button").click()


def test_type_send_watch_it_grow_then_stop(app, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    goto(page, app.url)
    send(page, "count to 3000")
    page.wait_for_function(
        "() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b.length && b[b.length-1].innerText.includes('5'); }"
    )
    early = bot_text(page)
    page.wait_for_function(
        "(n) => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b[b.length-1].innerText.length > n + 20; }",
        arg=len(early),
    )
    grown = bot_text(page)
    assert grown.startswith(early.strip()[:5]) and len(grown) > len(early)
    stop(page)
    page.wait_for_function(
        "() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b[b.length-1].innerText.includes('stopped'); }"
    )
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


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}])
@pytest.mark.parametrize("own_route", ["answers", "unreachable"])
def test_stop_goes_by_the_apps_own_route_and_by_gradios_event_only_when_that_fails(app, browser, viewport, own_route):
    """Stop posts the answer's own stop request to `/api/chat/stop` (a fraction of Gradio's cost per event,
    ui/gradio_armour.py); when that stops nothing or cannot be reached, Gradio's Stop event does it."""
    import json

    import httpx

    config = httpx.get(f"{app.url}config").json()
    gradio_stop = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "stop")
    page = browser.new_page(viewport=viewport)
    own, gradio = [], []

    def record(request) -> None:
        if request.method != "POST":
            return
        if request.url.endswith("/api/chat/stop"):
            own.append(json.loads(request.post_data))
        elif "/run/predict" in request.url and json.loads(request.post_data).get("fn_index") == gradio_stop:
            gradio.append(request.url)

    page.on("request", record)
    if own_route == "unreachable":
        page.route("**/api/chat/stop", lambda route: route.abort())
    goto(page, app.url)
    send(page, "Zähl bitte: count to 2400")
    page.wait_for_function(
        "() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b.length && b[b.length-1].innerText.includes('9'); }"
    )
    stop(page)
    page.wait_for_function(
        "() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b[b.length-1].innerText.includes('stopped'); }"
    )
    stopped = bot_text(page)
    page.wait_for_timeout(400)
    assert bot_text(page) == stopped and "2400." not in stopped
    chat_id = page.evaluate("() => new URLSearchParams(location.search).get('c')")
    assert len(own) == 1 and own[0]["conversation_id"] == chat_id and own[0]["run"]
    assert len(gradio) == (0 if own_route == "answers" else 1)
    page.close()


def test_an_empty_prompt_is_not_sent(app, opened):
    page = opened
    page.locator("#prompt textarea").fill("   ")
    page.locator("#prompt textarea").press("Enter")
    page.wait_for_timeout(800)
    assert page.locator("[data-testid='user']").count() == 0


def test_memory_across_turns_in_chinese(app, opened):
    page = opened
    send(page, "我叫小王，今年28岁。")
    page.wait_for_function("() => document.querySelector('#usage').innerText.includes('total')")
    send(page, "我多大了？")
    page.wait_for_function(
        "() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b.length == 2 && b[1].innerText.includes('28'); }"
    )
    page.screenshot(path=str(ARTIFACTS / "chat-memory.png"), full_page=True)


def test_an_oversized_prompt_stays_in_the_box_with_a_message(app, opened):
    page = opened
    huge = "x" * (app.service.max_prompt_chars + 1)
    send(page, huge)
    page.get_by_text("the limit here is").first.wait_for()
    assert page.get_by_text("the limit here is").first.is_visible()  # on screen, beside the box
    page.wait_for_function("(n) => document.querySelector('#prompt textarea').value.length == n", arg=len(huge))
    assert page.locator("#prompt textarea").input_value() == huge  # back in the box, nothing lost
    assert page.locator("[data-testid='user']").count() == 0


def test_closing_the_tab_mid_stream_lets_the_answer_finish_and_saves_it_whole(app, browser):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    async def answers_to(prompt: str) -> list[tuple[str, str]]:
        answers = []
        for record in await app.service.store.read_records():
            conversation = await app.service.store.load(record.conversation_id, scope=record.scope)
            if prompt in str(conversation.messages[-2].parts[0].content):
                answers.append((conversation.messages[-1].state, conversation.messages[-1].parts[0].content))
        return answers

    page = browser.new_page()
    goto(page, app.url)
    send(page, "count to 170, s'il vous plaît")
    page.wait_for_function(
        "() => { const b = document.querySelectorAll(\"[data-testid='bot']\"); return b.length && b[b.length-1].innerText.includes('9'); }"
    )
    page.close()
    deadline = time.monotonic() + 60

    def read_store() -> list[tuple[str, str]]:
        # Playwright's sync API owns this thread's event loop; read the store from another thread.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, answers_to("count to 170, s'il")).result()

    while not (answers := read_store()):
        assert time.monotonic() < deadline, "the answer of the closed tab was not saved"
        time.sleep(0.2)
    [(state, text)] = answers
    assert state == "complete" and text.startswith("1 2 3") and text.rstrip(".").endswith("169 170")


def _wait_answered(page, answers: int) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll(\"[data-testid='bot']\").length >= n"
        " && document.querySelector('#usage').innerText.includes('total')",
        arg=answers,
    )


def _session_labels(page) -> list[str]:
    return [row.inner_text() for row in page.locator("#sessions .chat-open").all()]


def test_sessions_journey_survives_reload_and_restart(browser, tmp_path):
    settings = Settings(
        demo_first_token_delay=0.05, demo_tokens_per_second=200, warm_up=False, db_path=str(tmp_path / "chat.db")
    )
    from tests.apps import free_port

    port = free_port()
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    with running_app(settings, port=port) as app:
        goto(page, app.url)
        send(page, "我想做麻婆豆腐")
        _wait_answered(page, 1)
        page.locator("#new-chat").click()
        page.wait_for_function("() => document.querySelectorAll(\"[data-testid='bot']\").length == 0")
        send(page, "My name is Sam and I am 41.")
        _wait_answered(page, 1)
        page.wait_for_function("() => document.querySelectorAll('#sessions .chat-row').length == 2")

        page.locator("#sessions .chat-open", has_text="麻婆豆腐").click()
        page.wait_for_function("() => document.querySelector('#chat').innerText.includes('我想做麻婆豆腐')")
        assert "Sam" not in page.locator("#chat").inner_text()

        from tests.test_browser_chat import row_menu

        row_menu(page, "麻婆豆腐", "rename")
        title_box = page.locator("#sessions input.chat-title-input")
        title_box.fill("")
        title_box.press_sequentially("Tofu night <img src=x onerror=window.__pwned=1>", delay=5)  # as people type
        title_box.press("Enter")
        page.wait_for_function("() => document.querySelector('#sidebar-notice').innerText.includes('Renamed')")
        page.wait_for_function("() => document.querySelector('#sessions').innerText.includes('Tofu night')")
        assert page.evaluate("() => window.__pwned") is None  # the title is shown as text, never run

        page.reload()
        page.wait_for_function("() => document.querySelectorAll('#sessions .chat-row').length == 2")
    with running_app(settings, port=port) as app:
        page.reload()
        page.wait_for_function("() => document.querySelectorAll('#sessions .chat-row').length == 2")
        assert any("Tofu night <img" in label for label in _session_labels(page))

        page.locator("#search textarea, #search input").first.fill("豆腐")
        page.wait_for_function("() => document.querySelector('#search-results')?.innerText.includes('Tofu night')")
        page.locator("#search-results label").first.click()
        page.wait_for_function("() => document.querySelector('#chat').innerText.includes('我想做麻婆豆腐')")

        row_menu(page, "Tofu night", "delete")
        page.locator("#sessions .chat-row", has_text="Tofu night").locator("[data-action='confirm-delete']").click()
        page.wait_for_function("() => document.querySelectorAll('#sessions .chat-row').length == 1")
        assert "Sam" in _session_labels(page)[0]
        assert "Tofu night" not in page.locator("body").inner_text()  # gone from the search results too
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "sessions.png"))
        assert len(run_to_completion(app.service.store.list_sessions(next(iter(_owners(app)))))) == 1
    page.close()


def _owners(app) -> set[str]:
    return {row[0] for row in app.service.store.db.execute("SELECT DISTINCT scope FROM conversations")}


def test_a_second_browser_sees_none_of_the_first_ones_conversations(app, browser):
    first = browser.new_context()
    page = first.new_page()
    goto(page, app.url)
    send(page, "a private thought about 麻婆豆腐")
    page.wait_for_function("() => document.querySelector('#sessions').innerText.includes('private thought')")
    second = browser.new_context()  # another browser profile: its own localStorage, its own visitor id
    other = second.new_page()
    goto(other, app.url)
    other.wait_for_timeout(1000)
    assert "private thought" not in other.locator("#sessions").inner_text()
    other.locator("#search textarea, #search input").first.fill("private")
    other.wait_for_timeout(800)
    assert "private thought" not in other.locator("body").inner_text()
    first.close()
    second.close()


def test_retry_answers_again_and_keeps_the_old_answer_as_a_branch(app, opened):
    page = opened
    send(page, "<img src=x onerror=window.__pwned=1> count to 3 <script>window.__ran=1</script>")
    page.wait_for_function("() => document.querySelector('#sessions').innerText.includes('count to 3')")
    assert page.evaluate("() => [window.__pwned, window.__ran]") == [None, None]  # message HTML is inert
    # The usage line says 'total' from the first answer until the retry's first update: the page is watched
    # from before the click for the retry to start (the old answer gone, or the line saying it answers), and
    # then for it to end, however slowly it comes under load.
    page.evaluate(
        """() => { window.__retryStarted = false; new MutationObserver(() => {
            const bots = document.querySelectorAll("[data-testid='bot']");
            if (!bots.length || document.querySelector('#usage').innerText.includes('Answering'))
                window.__retryStarted = true;
        }).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""
    )
    page.locator("#chat button[aria-label='Retry']").click()
    page.wait_for_function(
        "() => window.__retryStarted && document.querySelector('#usage').innerText.includes('total')"
    )
    page.wait_for_timeout(500)
    assert page.locator("[data-testid='bot']").count() == 1
    assert "1 2 3." in bot_text(page)

    def branches() -> list:
        rows = app.service.store.db.execute(
            "SELECT branches_json FROM conversations WHERE title LIKE '%pwned=1> count to 3%'"
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    import json

    deadline = time.monotonic() + 10
    while not (found := branches()) or not found[0]:
        assert time.monotonic() < deadline, "the regenerated answer did not leave a branch"
        time.sleep(0.1)
    assert len(found[0]) == 1


def test_editing_the_last_message_answers_the_new_text(app, opened):
    page = opened
    send(page, "count to 3")
    page.wait_for_function("() => document.querySelector('#usage').innerText.includes('total')")
    page.locator("#chat button[aria-label='Edit']").click()
    page.locator("#chat textarea").fill("count to 5")
    page.locator("#chat button[aria-label='Submit']").click()
    page.wait_for_function("() => document.querySelector('#chat').innerText.includes('1 2 3 4 5.')")
    assert "count to 3" not in page.locator("#chat").inner_text()


RECORD_CARD_RENDERS = """() => {
    window.__cards = [];
    const card = document.querySelector('#recipe-card');
    new MutationObserver(() => window.__cards.push(card.innerText)).observe(
        card, {subtree: true, childList: true, characterData: true});
}"""


def test_the_recipe_card_fills_in_live_and_stop_leaves_it_incomplete(app, wide):
    page = wide
    page.get_by_role("tab", name="Recipe").click()
    page.evaluate(RECORD_CARD_RENDERS)
    page.locator("#dish textarea, #dish input").first.fill("麻婆豆腐")
    page.locator("#generate").click()
    page.wait_for_function("() => document.querySelector('#recipe-counters').innerText.includes('Completed')")
    renders = [text for text in dict.fromkeys(page.evaluate("() => window.__cards")) if "麻婆豆腐" in text]
    assert len(renders) >= 4  # at least three distinct partial cards before the final one
    assert "嫩豆腐" in renders[-1] and "葱花" in renders[-1]
    assert any("嫩豆腐" in text and "出锅" not in text for text in renders)  # ingredients came before steps
    assert '"name": "麻婆豆腐"' in page.locator("#recipe-json").inner_text()
    counted = re.search(
        r"(\d+) partial recipes(?:, (\d+) of them drawn)?", page.locator("#recipe-counters").inner_text()
    )
    assert counted and 0 < int(counted[2] or counted[1]) <= int(counted[1])  # never more shown than received
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "recipe.png"), full_page=True)

    page.locator("#dish textarea, #dish input").first.fill("pancakes")
    page.locator("#generate").click()
    page.wait_for_function("() => document.querySelector('#recipe-card').innerText.includes('milk')")
    page.locator("#stop-recipe").click()
    page.wait_for_function("() => document.querySelector('#recipe-counters').innerText.includes('Stopped')")
    assert "incomplete" in page.locator("#recipe-card").inner_text()


def test_the_inspector_shows_the_summary_once_past_the_threshold(browser, tmp_path):
    settings = Settings(
        demo_first_token_delay=0.02,
        demo_tokens_per_second=0,
        warm_up=False,
        context_policy="summary",
        summary_threshold=6,
        summary_keep_recent=2,
        db_path=str(tmp_path / "chat.db"),
    )
    with running_app(settings) as app:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        goto(page, app.url)
        page.locator("#inspector-box").get_by_text("What the last answer was sent").click()
        prompts = ["我叫小王，今年28岁。", "Tell me about bread", "And about rice", "What about noodles?", "我多大了？"]
        for number, prompt in enumerate(prompts, start=1):
            send(page, prompt)
            page.wait_for_function(
                "(n) => document.querySelectorAll(\"[data-testid='bot']\").length >= n"
                " && document.querySelector('#inspector').innerText.includes('of ' + (2 * n - 1) + ' messages')",
                arg=number,
            )
        inspector = page.locator("#inspector").inner_text()
        assert "Summary standing for the first" in inspector and "小王" in inspector
        assert "Sent: " in inspector and "of 9 messages" in inspector
        assert "28" in bot_text(page)  # the fact from the summarized part is still known
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "inspector.png"), full_page=True)
        page.close()


def test_the_sse_demo_page_streams_events_into_the_visitors_own_sidebar(app, browser):
    context = browser.new_context()
    page = context.new_page()
    goto(page, app.url)
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    visitor = cookies["chat_visitor"]  # the server's signed id: no page script can read it, or change it
    assert (
        visitor["httpOnly"] and visitor["sameSite"] == "Lax" and "chat_visitor" not in page.evaluate("document.cookie")
    )
    page.goto(f"{app.url}sse-demo")
    page.locator("#message").fill("我叫小王,今年 28。")
    page.locator("#send").click()
    page.wait_for_function("() => document.querySelector('#events').innerText.includes('event: done')")
    events = page.locator("#events").inner_text()
    assert "event: start" in events and "event: delta" in events
    assert "小王" in page.locator("#answer").inner_text()
    page.locator("#message").fill("count to 3000")
    page.locator("#send").click()
    page.wait_for_function("() => document.querySelector('#answer').innerText.includes(' 30 ')")
    page.locator("#message").fill("我叫什么?")  # sent while the count streams: it is stopped, then this answers
    page.locator("#send").click()
    page.wait_for_function("() => document.querySelector('#events').innerText.split('event: done').length == 3")
    events = page.locator("#events").inner_text()
    assert 'stop pressed  data: {"stopped":true}' in events and "refused" not in events
    assert "小王" in page.locator("#answer").inner_text()
    page.screenshot(path=str(ARTIFACTS / "sse-demo.png"), full_page=True)
    goto(page, app.url)
    page.wait_for_function("() => document.querySelector('#sessions')?.innerText.includes('我叫小王')")
    context.close()


def test_the_analyst_to_writer_tab_runs_end_to_end_with_no_key(app, wide):
    page = wide
    page.get_by_role("tab", name="Analyst → writer").click()
    page.locator("#handoff-data textarea").fill("Monthly sales: 120, 135, 128, 160, 190")
    page.locator("#handoff-go").click()
    page.wait_for_function("() => document.querySelector('#handoff-note').innerText.includes('Done')")
    assert "Mean: 146.60" in page.locator("#analysis").inner_text()
    assert "What the numbers say" in page.locator("#article").inner_text()
    page.screenshot(path=str(ARTIFACTS / "handoff.png"), full_page=True)


def test_the_stream_inspector_lists_deltas_beside_the_cumulative_text(app, wide):
    page = wide
    page.get_by_role("tab", name="Stream inspector").click()
    page.locator("#probe-go").click()
    page.wait_for_function("() => document.querySelector('#probe-note').innerText.includes('no debounce')")
    table = page.locator("#probe-table").inner_text()
    assert "cumulative (delta=False)" in table and "1 2 3 4 5" in table
    page.screenshot(path=str(ARTIFACTS / "stream-inspector.png"), full_page=True)


def test_an_earlier_recipe_can_be_reopened_from_your_recipes(app, wide):
    page = wide
    page.get_by_role("tab", name="Recipe").click()
    page.locator("#dish textarea, #dish input").first.fill("pancakes")
    page.locator("#generate").click()
    page.wait_for_function("() => document.querySelector('#recipe-counters').innerText.includes('Completed')")
    page.locator("#generate").wait_for()  # Generate is back in Stop's place
    page.locator("#dish textarea, #dish input").first.fill("麻婆豆腐")
    page.locator("#generate").click()
    page.wait_for_function(
        "() => document.querySelector('#recipe-card').innerText.includes('即可')"
        " && document.querySelector('#recipe-counters').innerText.includes('Completed')"
    )
    # The list is refreshed after a recipe ends: opened before that, it shows the old choices, and a click
    # picks by position among the new ones. Open it once it lists the newest recipe.
    for _ in range(20):
        page.locator("#saved-recipes input").click()
        if page.get_by_role("option", name="麻婆豆腐").count():
            break
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
    page.get_by_role("option", name="Fluffy pancakes").first.click()
    page.wait_for_function("() => document.querySelector('#recipe-counters').innerText.includes('Reopened')")
    assert "Fluffy pancakes" in page.locator("#recipe-card").inner_text()


def test_the_sse_demo_page_shows_tool_steps_and_answers_an_approval_with_its_buttons(app, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{app.url}sse-demo")
    page.locator("#message").fill("Combien font 12 * 12 ?")
    page.locator("#send").click()
    page.wait_for_function("() => document.querySelector('#events').innerText.includes('event: done')")
    assert "🛠️ calculate" in page.locator("#steps").inner_text() and "→ 144" in page.locator("#steps").inner_text()
    page.reload()  # a new conversation, which asks to delete the first one
    page.locator("#message").fill("delete my chat called Combien font 12 * 12 ?")
    page.locator("#send").click()
    page.locator("#steps button", has_text="Approve").click()
    page.wait_for_function("() => document.querySelector('#answer').innerText.includes('Done: Deleted the chat')")
    context.close()
