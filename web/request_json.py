"""How every route reads a request's JSON body: `read_json`, before any step of the turn, so a body that is not
JSON the app can hold is a 400 in the route's own words and never a 500 after the model ran.

pydantic-core's JSON reader (jiter, the one `model_validate_json` uses) refuses in one pass, each as a
`ValueError`, what Python's `json.loads` lets through or fails on with another exception:
- nesting past 200 levels (`json.loads` raises `RecursionError`, a 500, on 100,000 `[`);
- bytes that are not UTF-8, an encoded surrogate among them (`json.loads` decodes those with `surrogatepass`);
- a lone surrogate escape such as `"\\udc00"`, half of a character: `json.loads` keeps it in the string, which
  then cannot be encoded as UTF-8, so the stored prompt or the answer echoing it failed after the model ran.
  A pair of escapes (an emoji, `"\\ud83d\\ude00"`) is one character and reads as one.
"""

from __future__ import annotations

import codecs
from typing import Any

import pydantic_core

UNREADABLE_JSON = (
    "The body is not JSON this server reads: whole, in UTF-8, nested at most 200 levels deep and with no lone "
    "surrogate escape such as \\udc00 (half a character)."
)


class UnreadableJSON(ValueError):
    """A request body that is not JSON the app can hold; its text is what to send instead."""

    def __init__(self) -> None:
        super().__init__(UNREADABLE_JSON)


def read_json(raw: bytes) -> Any:
    """The body as JSON values, or `UnreadableJSON`. A leading UTF-8 byte order mark is skipped, as
    `json.loads` did before (RFC 8259 lets a reader ignore one; Windows tools write it)."""
    try:
        return pydantic_core.from_json(raw.removeprefix(codecs.BOM_UTF8))
    except ValueError:  # jiter's own words say where it stopped reading, nothing a client needs
        raise UnreadableJSON from None
