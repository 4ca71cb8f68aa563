"""pydantic-ai chat: streaming, multi-turn chat in Gradio, offline by default.

Run it:   python app.py            (then open http://127.0.0.1:7860)
Options:  python app.py --help     (every flag also has an environment variable: chat/options.py)

This file only reads the settings and hands them to `server.run`, so `--help` and a wrong value answer at
once and write nothing. `demo` is built the first time it is asked for, from the environment, for
`gradio app.py` (reload mode).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from chat.options import parse_settings


def main(argv: Sequence[str] | None = None) -> None:
    """`python app.py` and the `pydantic-ai-chat` command."""
    settings = parse_settings(os.environ, sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO)
    from server import run  # Gradio and pydantic-ai take seconds to import: not before the settings are good

    run(settings)


def __getattr__(name: str) -> Any:
    if name not in ("demo", "service"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from server import build_app

    demo, services = build_app(parse_settings(os.environ))
    globals()["demo"], globals()["service"] = demo, services.page.chat
    return globals()[name]


if __name__ == "__main__":
    main()
