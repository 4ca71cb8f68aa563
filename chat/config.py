"""Settings: one frozen object built once in `app.py` and handed down; nothing below `ui/` reads the environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEMO_MODEL = "demo"
PolicyKind = Literal["full", "window", "summary"]
"""What a turn sends of its conversation: all of it, a window of recent messages, or a summary and the recent ones."""
POLICY_KINDS: tuple[PolicyKind, ...] = ("full", "window", "summary")


def policy_kind(name: str | None) -> PolicyKind | None:
    """The context policy of this name, or None for a name that is not one (an old stored value, a client's)."""
    return next((kind for kind in POLICY_KINDS if kind == name), None)


@dataclass(frozen=True)
class Settings:
    model: str = DEMO_MODEL
    """The model selected when a page opens: `demo` or any pydantic-ai model string."""
    extra_models: tuple[str, ...] = ()
    """More model strings offered in the model menu."""
    allow_any_model: bool = False
    """Run any model string a client names, not only the offered ones: for local use, never on a shared
    server, where every name runs on the operator's keys."""
    base_url: str | None = None
    """An OpenAI-compatible server (Ollama, vLLM, llama.cpp); `model` is then the name it serves."""
    api_key: str | None = None
    max_prompt_chars: int = 20_000
    max_answer_chars: int = 40_000
    """The longest answer (about 10,000 tokens of English): one visitor's "count to 999999" must not cost
    the server its memory. 0: no limit."""
    request_timeout: float = 60.0
    """Seconds without a byte from the provider before a turn fails."""
    provider_retries: int = 2
    """Retries of a failed request to an OpenAI-compatible server (the OpenAI client's own back-off)."""
    max_concurrent_streams: int = 200
    max_running_per_visitor: int = 3
    """Answers one visitor may have running at once (0: no limit), so no one visitor takes every slot."""
    max_messages_per_minute: int = 20
    """Answers one visitor may start in any minute (0: no limit): a script cannot fill the disk."""
    max_running_per_address: int = 0
    """Answers one network address may have running at once (0: no limit): a script can make a new visitor
    id per request, and is still one address. This and the three below are the per-address limits: 0 here,
    a server only this machine reaches; on by default once others can reach it (chat/options.py)."""
    max_visitors_per_address: int = 0
    """Different visitors (browsers, API owner tokens, `/v1` keys) one address may bring in any hour, and
    owner tokens `POST /api/session` hands it (0: no limit)."""
    max_messages_per_minute_per_address: int = 0
    """Answers one address may start in any minute, whichever visitors send them (0: no limit)."""
    max_tokens_per_day_per_address: int = 0
    """Tokens the answers for one address may use in any 24 hours on models that cost money
    (`ModelResolver.costs_money`; 0: no limit)."""
    per_address_limits: bool | None = None
    """Read by chat/options.py only: on, the per-address limits not set one by one get their defaults; off,
    none (a workshop room behind one address); None, on when others can reach the server."""
    forwarded_allow_ips: str = ""
    """The proxies whose `X-Forwarded-For` names the visitor's address (uvicorn's setting, which the app
    sets itself): empty, none, so a client cannot write its own address into the header."""
    max_stored_mb_per_visitor: float = 25.0
    """What one visitor's conversations may hold (0: no limit); at the limit they delete some before sending
    more. 25 MB is thousands of ordinary turns, or about 300 of the longest."""
    max_import_mb: float = 5.0
    """The largest conversation file a visitor may import (a 20,000-character turn is about 80 kB)."""
    shutdown_grace: float = 10.0
    """Seconds SIGTERM or Ctrl-C waits for running answers to stop and save before the process exits."""
    recover_every: float = 15.0
    """Seconds between looks for answers a replica that died left unfinished (0: only at start)."""
    demo_first_token_delay: float = 0.3
    demo_tokens_per_second: float = 30.0
    cookie_secret: str | None = None
    """Signs the visitor cookies; by default a random key made once and kept in the database."""
    warm_up: bool = True
    gradio_armour: bool = True
    """Work around Gradio 6.31's defaults where the app measured a difference (ui/gradio_armour.py): the box
    usable while an answer streams, one request per Send, Stop through the app's own route, the queue without
    its dashboard records, longer keep-alive, a tuned garbage collector and GIL. Off: a stock ChatInterface on
    a process left as Python starts it."""
    db_path: str = "data/chat.db"
    context_policy: PolicyKind = "window"
    """The context policy of a new conversation: full, window or summary."""
    context_choices: tuple[str, ...] = ("window", "summary")
    """The policies a visitor may pick; `full` sends the whole history, so every turn of a long chat costs
    more on the operator's key. The default policy is always among them."""
    context_window: int = 20
    summary_threshold: int = 30
    summary_keep_recent: int = 10
    image_hosts: tuple[str, ...] = ()
    """Hosts whose images an answer may show; any other image shows as a link and the browser is told not to
    fetch it, so a prompt-injected model cannot carry a conversation out in an image URL."""
    on_a_space: bool = False
    """Served as a Hugging Face Space: its visitors are not its operator, so the demo model's answers never
    tell them to run `python app.py` or set an API key."""
    hf_login: bool = False
    """Offer "Sign in with Hugging Face" (on a Space with `hf_oauth: true`); a signed-in visitor's
    conversations follow their account instead of their browser."""
    host: str = "127.0.0.1"
    """The address the server listens on; `0.0.0.0` for every interface (a container, a Space)."""
    port: int = 7860
    mcp_config: str | None = None
    """A JSON file of MCP servers (the common `mcpServers` format) whose tools the chat agent may call."""
    storage_notice: str | None = None
    """Shown on the page when conversations will not outlive the process (a Space without persistent storage)."""

    @property
    def max_stored_bytes_per_visitor(self) -> int | None:
        return int(self.max_stored_mb_per_visitor * 1_000_000) or None

    @property
    def max_import_bytes(self) -> int:
        return int(self.max_import_mb * 1_000_000)

    @property
    def default_model(self) -> str:
        """The menu entry selected when a page opens."""
        return self.compatible_model_label or self.model

    @property
    def compatible_model_label(self) -> str | None:
        """The menu label of the OpenAI-compatible server's model, when one is configured."""
        if not self.base_url:
            return None
        return f"compatible:{self.model}"
