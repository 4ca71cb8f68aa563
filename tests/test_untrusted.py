from __future__ import annotations

import pytest

from chat.untrusted import escape_markdown, images_as_links, plain_line, shortened


@pytest.mark.parametrize(
    ("markdown", "shown"),
    [
        (
            "see ![chart](https://stats.example.org/p.png?q=ma%20clé)",
            "see [🖼 chart](https://stats.example.org/p.png?q=ma%20clé)",
        ),
        ('![](//cdn.example.net/x.gif "t")', "[🖼 image](//cdn.example.net/x.gif)"),
        ("a ![x](<http://10.0.0.7:8080/y.svg>) b", "a [🖼 x](http://10.0.0.7:8080/y.svg) b"),
        ("![icône](javascript:alert(1))", "[🖼 icône](javascript:alert(1))"),
    ],
)
def test_images_from_elsewhere_become_links(markdown, shown):
    assert images_as_links(markdown) == shown


@pytest.mark.parametrize(
    "markdown",
    [
        "![logo](/gradio_api/file=static/logo.png)",
        "![dot](data:image/png;base64,iVBORw0KGgo=)",
        "![ok](https://img.allowed.test/a.png)",
        "no images, only a [link](https://example.org) and an exclamation! [not](an image)",
    ],
)
def test_images_from_here_data_urls_and_allowed_hosts_stay(markdown):
    assert images_as_links(markdown, allowed_hosts={"img.allowed.test"}) == markdown


def test_an_allowed_host_is_matched_exactly_not_as_a_suffix():
    assert images_as_links("![x](https://img.allowed.test.evil.example/a.png)", {"img.allowed.test"}).startswith("[🖼")


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # a right-to-left override would show "invoiceexe.jpg"
        ("\u2067Budget\u2069 2027", "Budget 2027"),
        ("pass\u200bword\ufeff", "password"),
        ("  two\t\nlines  ", "two lines"),
        ("dev 👩\u200d💻 notes", "dev 👩\u200d💻 notes"),  # the joiner inside an emoji stays
        ("a\u200db", "ab"),
        ("مرحبا بالعالم", "مرحبا بالعالم"),  # right-to-left text itself is untouched
    ],
)
def test_plain_line_drops_invisible_controls_but_keeps_real_text(typed, shown):
    assert plain_line(typed) == shown


def test_a_shortened_text_says_it_was_cut():
    assert shortened("Säulen", 10) == "Säulen"
    assert shortened("x" * 12, 10) == "x" * 9 + "…" and len(shortened("y" * 500, 80)) == 80


def test_escaped_markdown_shows_literally():
    assert escape_markdown("<b>o1</b> **big**") == r"\<b\>o1\</b\> \*\*big\*\*"


def test_the_operators_image_hosts_reach_the_policy_and_a_route_with_its_own_policy_keeps_it():
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse
    from fastapi.testclient import TestClient

    from chat.options import parse_settings
    from web.content_policy import ImagesFromHereOnly

    hosts = parse_settings({"CHAT_IMAGE_HOSTS": "img.example.com, cdn.beispiel.de"}).image_hosts
    app = FastAPI()
    app.get("/page")(lambda: PlainTextResponse("hallo"))
    app.get("/own")(lambda: PlainTextResponse("x", headers={"content-security-policy": "default-src 'none'"}))
    app.add_middleware(ImagesFromHereOnly, allowed_hosts=hosts)
    client = TestClient(app)
    assert client.get("/page").headers["content-security-policy"] == (
        "img-src 'self' data: blob: img.example.com cdn.beispiel.de; media-src 'self' data: blob:"
    )
    assert client.get("/own").headers["content-security-policy"] == "default-src 'none'"
