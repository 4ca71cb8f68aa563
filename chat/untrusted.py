"""Text the app did not write (a model's answer, a visitor's title) shown without letting it act.

The page's Content-Security-Policy (web/content_policy.py) is what stops a browser from fetching an
image from another host; here the same image is shown as a link instead of a broken picture, and
text that must stay text is escaped or stripped of the characters that make it lie about itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from urllib.parse import urlsplit

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-!|<>~])")

# ![alt](url "title"): an image the browser would fetch as soon as the Markdown is shown.
_MARKDOWN_IMAGE = re.compile(r"!\[(?P<alt>[^\]\n]*)\]\(\s*<?(?P<url>[^)\s>]*)>?(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)")

# Bidi embeddings, overrides and isolates, direction marks, and invisible spaces and joiners: in a title
# they reorder or hide what the sidebar shows (U+202E before "gpj.exe" shows it as "exe.jpg").
_INVISIBLE_CONTROLS = re.compile("[\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_JOINER = "\u200d"


def escape_markdown(text: str) -> str:
    """Shown literally, never as Markdown or HTML."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def images_as_links(markdown: str, allowed_hosts: Collection[str] = ()) -> str:
    """Images from this app, `data:` URLs and `allowed_hosts` stay images; any other becomes a link.

    A prompt-injected model can put a conversation into an image URL; the browser fetching it is the leak.
    """
    if "![" not in markdown:
        return markdown

    def relink(match: re.Match[str]) -> str:
        url = match["url"]
        if _loads_from_here(url, allowed_hosts):
            return match[0]
        label = match["alt"].strip() or "image"
        return f"[🖼 {label}]({url})"

    return _MARKDOWN_IMAGE.sub(relink, markdown)


def _loads_from_here(url: str, allowed_hosts: Collection[str]) -> bool:
    if url.lower().startswith("data:image/"):
        return True
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc:
        return True  # relative: this app's own files
    return parts.scheme in ("http", "https") and (parts.hostname or "") in allowed_hosts


def plain_line(text: str) -> str:
    """One line of visible text: whitespace runs become one space, invisible controls go.

    A zero-width joiner stays between two pictographs, where it builds one emoji (👩‍💻).
    """
    text = _INVISIBLE_CONTROLS.sub("", text or "")
    if _JOINER in text:
        text = "".join(
            char
            for index, char in enumerate(text)
            if char != _JOINER or (_pictograph(text[index - 1 : index]) and _pictograph(text[index + 1 : index + 2]))
        )
    return " ".join(text.split())


def _pictograph(char: str) -> bool:
    # Emoji are "So"; a variation selector (U+FE0F) or skin tone (Sk) may sit before the joiner.
    return bool(char) and (unicodedata.category(char) in ("So", "Sk") or char == "\ufe0f")


def shortened(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending in "…" when it was cut, so the cut shows."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
