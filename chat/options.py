"""The command line and environment: one table of options, read into one `Settings`.

Each option is a flag, the environment variable that sets it when the flag is not given, and its help;
its default is the `Settings` field's. Flags win over the environment, which wins over the default.
Only the standard library is imported here, so `python app.py --help` answers at once and a bad value is
refused before anything is built or written.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from chat.config import POLICY_KINDS, Settings

SPACE_STORAGE = Path("/data")
EPHEMERAL_SPACE_NOTICE = (
    "This Space has no persistent storage: conversations are lost when it restarts. "
    "Its owner can enable persistent storage in the Space settings."
)
SPACE_MAX_RUNNING_PER_ADDRESS = 10
"""On a public Space a script can make a new visitor id per request: one network address may have this many
answers running. A workshop on a Space, whose room is often one address, sets 0."""
PRIVATE_NETWORKS = "127.0.0.1,::1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
"""A Space's own proxies: the visitor's address is the last one in X-Forwarded-For that is not among these, so
an address a client writes into the header itself is never the one counted."""


def _names(listed: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in listed.split(",") if name.strip())


def _switch(value: str) -> bool:
    if value.strip().lower() in ("", "0", "false", "no", "off"):
        return False
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    raise ValueError("on or off (1/0, true/false, yes/no)")


EXPECTED: dict[Callable[[str], Any], str] = {int: "a whole number", float: "a number"}
METAVARS: dict[Callable[[str], Any], str] = {int: "N", float: "X", _names: "A,B,...", _switch: "on|off"}


@dataclass(frozen=True)
class Option:
    flag: str
    environment: str
    field: str
    """The `Settings` field it sets (its default is the field's)."""
    help: str
    read: Callable[[str], Any] = str
    """Turns the text of a flag or a variable into the field's value; a `ValueError` says what was expected."""
    choices: tuple[str, ...] | None = None


OPTIONS = (
    Option(
        "--model",
        "CHAT_MODEL",
        "model",
        "the model selected when a page opens: demo (offline) or a pydantic-ai model string, e.g. openai-chat:gpt-4o-mini",
    ),
    Option(
        "--extra-models",
        "CHAT_EXTRA_MODELS",
        "extra_models",
        "comma-separated model strings to offer in the Model menu",
        _names,
    ),
    Option(
        "--allow-any-model",
        "CHAT_ALLOW_ANY_MODEL",
        "allow_any_model",
        "on: run any model string a client names, on your keys (for local use only)",
        _switch,
    ),
    Option(
        "--base-url",
        "CHAT_BASE_URL",
        "base_url",
        "an OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1; --model is then its model name",
    ),
    Option("--max-prompt-chars", "CHAT_MAX_PROMPT_CHARS", "max_prompt_chars", "longest prompt accepted", int),
    Option(
        "--max-answer-chars",
        "CHAT_MAX_ANSWER_CHARS",
        "max_answer_chars",
        "longest answer written and kept; the model is stopped there, labelled cut; 0: no limit",
        int,
    ),
    Option(
        "--request-timeout",
        "CHAT_REQUEST_TIMEOUT",
        "request_timeout",
        "seconds without data from the provider before a turn fails",
        float,
    ),
    Option("--max-streams", "CHAT_MAX_STREAMS", "max_concurrent_streams", "answers streamed at once", int),
    Option(
        "--max-running-per-visitor",
        "CHAT_MAX_RUNNING_PER_VISITOR",
        "max_running_per_visitor",
        "answers (chats, recipes, hand-offs) one visitor may have running at once; 0: no limit",
        int,
    ),
    Option(
        "--max-running-per-address",
        "CHAT_MAX_RUNNING_PER_ADDRESS",
        "max_running_per_address",
        "answers one network address may have running at once; 0: no limit (a workshop behind one NAT is one "
        f"address); on a Space {SPACE_MAX_RUNNING_PER_ADDRESS} by default",
        int,
    ),
    Option(
        "--max-messages-per-minute",
        "CHAT_MAX_MESSAGES_PER_MINUTE",
        "max_messages_per_minute",
        "answers (chats, recipes, hand-offs) one visitor may start in any minute; 0: no limit",
        int,
    ),
    Option(
        "--max-stored-mb-per-visitor",
        "CHAT_MAX_STORED_MB_PER_VISITOR",
        "max_stored_mb_per_visitor",
        "what one visitor's conversations may hold, in MB; 0: no limit",
        float,
    ),
    Option(
        "--max-import-mb",
        "CHAT_MAX_IMPORT_MB",
        "max_import_mb",
        "the largest conversation file a visitor may import, in MB",
        float,
    ),
    Option(
        "--shutdown-grace",
        "CHAT_SHUTDOWN_GRACE",
        "shutdown_grace",
        "on SIGTERM or Ctrl-C, seconds to let running answers stop and save",
        float,
    ),
    Option(
        "--recover-every",
        "CHAT_RECOVER_EVERY",
        "recover_every",
        "seconds between looks for answers a replica that died left unfinished (0: only at start)",
        float,
    ),
    Option(
        "--demo-delay", "CHAT_DEMO_DELAY", "demo_first_token_delay", "demo model: seconds before the first token", float
    ),
    Option(
        "--demo-tps",
        "CHAT_DEMO_TPS",
        "demo_tokens_per_second",
        "demo model: tokens per second, 0 for as fast as possible",
        float,
    ),
    Option(
        "--context",
        "CHAT_CONTEXT",
        "context_policy",
        "what a new conversation sends: the full history, a window of recent messages, or a summary",
        choices=POLICY_KINDS,
    ),
    Option(
        "--context-choices",
        "CHAT_CONTEXT_CHOICES",
        "context_choices",
        "comma-separated policies a visitor may pick (full sends the whole history on every turn)",
        _names,
    ),
    Option("--context-window", "CHAT_CONTEXT_WINDOW", "context_window", "messages kept by the window policy", int),
    Option(
        "--summary-threshold",
        "CHAT_SUMMARY_THRESHOLD",
        "summary_threshold",
        "messages after which the summary policy summarizes the older part",
        int,
    ),
    Option(
        "--image-hosts",
        "CHAT_IMAGE_HOSTS",
        "image_hosts",
        "comma-separated hosts whose images answers may show; others show as links",
        _names,
    ),
    Option(
        "--gradio-armour",
        "CHAT_GRADIO_ARMOUR",
        "gradio_armour",
        "off: a stock Gradio ChatInterface and an untuned process, without the workarounds of ui/gradio_armour.py "
        "(a usable box while answering, Stop through the app's route, speed under load)",
        _switch,
    ),
    Option("--db", "CHAT_DB", "db_path", "the SQLite file holding conversations, or a postgresql:// URL"),
    Option("--mcp", "CHAT_MCP", "mcp_config", "a JSON file of MCP servers (mcpServers) whose tools the chat may use"),
    Option("--host", "GRADIO_SERVER_NAME", "host", "the address to listen on (0.0.0.0: every interface)"),
    Option("--port", "GRADIO_SERVER_PORT", "port", "the port to listen on", int),
)


class OneLineErrors(argparse.ArgumentParser):
    """A wrong value is named on one line (argparse would print the whole usage above it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (--help lists every option)\n")


def on_a_space(environ: Mapping[str, str]) -> bool:
    """Hugging Face sets SPACE_ID in every Space: public, behind its proxies, with storage of its own."""
    return "SPACE_ID" in environ


def default_db_path(environ: Mapping[str, str], space_storage: Path = SPACE_STORAGE) -> tuple[str, str | None]:
    """Where the database lives by default, and a notice when that place does not survive a restart."""
    if not on_a_space(environ):
        return Settings.db_path, None
    if space_storage.is_dir() and os.access(space_storage, os.W_OK):
        return str(space_storage / "chat.db"), None
    return Settings.db_path, EPHEMERAL_SPACE_NOTICE


def space_proxies(environ: Mapping[str, str]) -> str | None:
    """What uvicorn should trust to forward the visitor's address (its `FORWARDED_ALLOW_IPS`), when it must be set.

    On a Space every request comes through Hugging Face's proxies, from a private address: trusting only
    127.0.0.1 (uvicorn's default), every visitor would be that proxy's address, one for the whole Space."""
    if not on_a_space(environ) or environ.get("FORWARDED_ALLOW_IPS"):
        return None
    return PRIVATE_NETWORKS


def parse_settings(environ: Mapping[str, str], argv: Sequence[str] = ()) -> Settings:
    """The settings from `argv` and `environ`; `--help` and a bad value exit here (argparse's usage error)."""
    default_db, storage_notice = default_db_path(environ)
    defaults = dataclasses.replace(Settings(), db_path=default_db)
    if on_a_space(environ):  # public by default: see SPACE_MAX_RUNNING_PER_ADDRESS
        defaults = dataclasses.replace(defaults, max_running_per_address=SPACE_MAX_RUNNING_PER_ADDRESS)
    parser = OneLineErrors(
        description="Streaming multi-turn chat with pydantic-ai in Gradio. Each flag's environment variable "
        "sets it when the flag is not given.",
    )
    for option in OPTIONS:
        default = getattr(defaults, option.field)
        shown = ",".join(default) if isinstance(default, tuple) else default
        parser.add_argument(
            option.flag,
            dest=option.field,
            choices=option.choices,
            metavar=None if option.choices else METAVARS.get(option.read, "TEXT"),
            **({"nargs": "?", "const": "on"} if option.read is _switch else {}),  # `--allow-any-model` alone: on
            help=f"{option.help} [{option.environment}; default: {'none' if shown in (None, '') else shown}]",
        )
    given = parser.parse_args(list(argv))
    values: dict[str, Any] = {}
    for option in OPTIONS:
        text = getattr(given, option.field)
        source = option.flag
        if text is None and environ.get(option.environment, "") != "":
            text, source = environ[option.environment], option.environment
        if text is None:
            continue
        if option.choices is not None and text not in option.choices:
            parser.error(f"{source}={text}: use one of {', '.join(option.choices)}")
        try:
            values[option.field] = option.read(text)
        except ValueError as wrong:
            expected = EXPECTED.get(option.read, str(wrong))
            parser.error(f"{source}={text}: expected {expected}")
    settings = dataclasses.replace(defaults, **values)
    return dataclasses.replace(
        settings,
        base_url=settings.base_url or None,
        api_key=environ.get("CHAT_API_KEY") or None,
        cookie_secret=environ.get("CHAT_SECRET") or None,
        context_choices=_offered_policies(settings.context_choices, settings.context_policy, parser),
        summary_keep_recent=max(settings.summary_threshold // 3, 2),
        hf_login=on_a_space(environ) and "OAUTH_CLIENT_ID" in environ,
        storage_notice=storage_notice if settings.db_path == default_db else None,
    )


def _offered_policies(listed: Sequence[str], default: str, parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """The policies offered, in menu order; the default policy is always one of them."""
    unknown = set(listed) - set(POLICY_KINDS)
    if unknown:
        parser.error(f"--context-choices: unknown {', '.join(sorted(unknown))}; use {', '.join(POLICY_KINDS)}")
    return tuple(kind for kind in POLICY_KINDS if kind in {*listed, default})
