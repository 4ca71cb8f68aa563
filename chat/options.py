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
PER_ADDRESS_DEFAULTS = {
    "max_running_per_address": 10,
    "max_visitors_per_address": 20,
    "max_messages_per_minute_per_address": 30,
    "max_tokens_per_day_per_address": 200_000,
}
"""On a server others can reach, a script can make a new visitor id per request: what one network address
may do, whoever it claims to be. A household or an office sharing an address stays well inside them; a
workshop room behind one address sets --per-address-limits off."""
LOOPBACK = ("127.0.0.1", "::1", "localhost")
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
        "--max-messages-per-minute",
        "CHAT_MAX_MESSAGES_PER_MINUTE",
        "max_messages_per_minute",
        "answers (chats, recipes, hand-offs) one visitor may start in any minute; 0: no limit",
        int,
    ),
    Option(
        "--per-address-limits",
        "CHAT_PER_ADDRESS_LIMITS",
        "per_address_limits",
        "what one network address may do, whatever visitor ids it sends (the four options below); off: none, "
        "for a workshop room behind one address; by default on once others can reach the server (a Space, "
        "--host other than 127.0.0.1, or --forwarded-allow-ips set)",
        _switch,
    ),
    Option(
        "--max-running-per-address",
        "CHAT_MAX_RUNNING_PER_ADDRESS",
        "max_running_per_address",
        f"answers one address may have running at once; 0: no limit [with per-address limits on: "
        f"{PER_ADDRESS_DEFAULTS['max_running_per_address']}]",
        int,
    ),
    Option(
        "--max-visitors-per-address",
        "CHAT_MAX_VISITORS_PER_ADDRESS",
        "max_visitors_per_address",
        "different visitors (browsers, API owner tokens, /v1 keys, POST /api/session) one address may bring in "
        f"any hour; 0: no limit [with per-address limits on: {PER_ADDRESS_DEFAULTS['max_visitors_per_address']}]",
        int,
    ),
    Option(
        "--max-messages-per-minute-per-address",
        "CHAT_MAX_MESSAGES_PER_MINUTE_PER_ADDRESS",
        "max_messages_per_minute_per_address",
        "answers one address may start in any minute, whoever sends them; 0: no limit [with per-address limits "
        f"on: {PER_ADDRESS_DEFAULTS['max_messages_per_minute_per_address']}]",
        int,
    ),
    Option(
        "--max-tokens-per-day-per-address",
        "CHAT_MAX_TOKENS_PER_DAY_PER_ADDRESS",
        "max_tokens_per_day_per_address",
        "tokens the answers for one address may use in any 24 hours on models that cost money (not demo, not a "
        "--base-url server without CHAT_API_KEY); 0: no limit [with per-address limits on: "
        f"{PER_ADDRESS_DEFAULTS['max_tokens_per_day_per_address']}]",
        int,
    ),
    Option(
        "--forwarded-allow-ips",
        "FORWARDED_ALLOW_IPS",
        "forwarded_allow_ips",
        "comma-separated addresses or networks of your proxies, whose X-Forwarded-For names the visitor's "
        "address (uvicorn's setting); none by default, so a client cannot forge its address; on a Space the "
        "private networks of its proxies",
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


def reached_by_others(settings: Settings, environ: Mapping[str, str]) -> bool:
    """A Space, a server listening beyond this machine, or one behind a proxy: then strangers can reach it, and
    a script among them can make a new visitor id per request. A server on 127.0.0.1 alone is one person's."""
    return on_a_space(environ) or settings.host not in LOOPBACK or bool(settings.forwarded_allow_ips)


def with_per_address_limits(settings: Settings, given: set[str], environ: Mapping[str, str]) -> Settings:
    """The per-address limits not `given` one by one: their defaults when per-address limits are on (by default
    once others can reach the server), 0 when off."""
    on = settings.per_address_limits
    if on is None:
        on = reached_by_others(settings, environ)
    limits = {field: value if on else 0 for field, value in PER_ADDRESS_DEFAULTS.items() if field not in given}
    return dataclasses.replace(settings, per_address_limits=on, **limits)


def parse_settings(environ: Mapping[str, str], argv: Sequence[str] = ()) -> Settings:
    """The settings from `argv` and `environ`; `--help` and a bad value exit here (argparse's usage error)."""
    default_db, storage_notice = default_db_path(environ)
    defaults = dataclasses.replace(Settings(), db_path=default_db)
    if on_a_space(environ):
        # Every request comes through Hugging Face's proxies, from a private address: the visitor's address is
        # the last one in X-Forwarded-For that is not among them, never one the client wrote into the header.
        defaults = dataclasses.replace(defaults, forwarded_allow_ips=PRIVATE_NETWORKS)
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
    settings = with_per_address_limits(dataclasses.replace(defaults, **values), set(values), environ)
    return dataclasses.replace(
        settings,
        base_url=settings.base_url or None,
        api_key=environ.get("CHAT_API_KEY") or None,
        cookie_secret=environ.get("CHAT_SECRET") or None,
        context_choices=_offered_policies(settings.context_choices, settings.context_policy, parser),
        summary_keep_recent=max(settings.summary_threshold // 3, 2),
        on_a_space=on_a_space(environ),
        hf_login=on_a_space(environ) and "OAUTH_CLIENT_ID" in environ,
        storage_notice=storage_notice if settings.db_path == default_db else None,
    )


def _offered_policies(listed: Sequence[str], default: str, parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """The policies offered, in menu order; the default policy is always one of them."""
    unknown = set(listed) - set(POLICY_KINDS)
    if unknown:
        parser.error(f"--context-choices: unknown {', '.join(sorted(unknown))}; use {', '.join(POLICY_KINDS)}")
    return tuple(kind for kind in POLICY_KINDS if kind in {*listed, default})
