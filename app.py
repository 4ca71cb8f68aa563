"""pydantic-ai chat: streaming, multi-turn chat in Gradio, offline by default.

Run it:   python app.py            (then open http://127.0.0.1:7860)
Options:  python app.py --help     (every flag also has a CHAT_* environment variable)

`demo` is built at import time without launching, so `gradio app.py` reload mode and the tests
can import it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic_ai.conversation import Conversation
from starlette.middleware import Middleware

from chat.agents import build_chat_agent
from chat.config import Settings
from chat.demo_model import DemoModel, DemoPace
from chat.handoff import HandoffService
from chat.history import POLICY_KINDS, ContextPolicy
from chat.identity import VisitorCookie
from chat.journal import recover_unfinished_turns
from chat.models import ModelResolver
from chat.quota import StoredDataQuota
from chat.recipe_runs import RecipeService
from chat.runs import ActiveTurns
from chat.sessions import Sessions
from chat.shutdown import drain, wait_for_stop_signal
from chat.stream_inspector import StreamInspector
from chat.turns import ChatService
from storage import open_store
from storage.sqlite_store import SQLiteConversationStore
from storage.turn_journal import TurnJournal
from ui import ServicesShown, build_demo, launch_options
from web.content_policy import ImagesFromHereOnly
from web.sse import ChatStreamAPI
from web.visitor_cookie import IssueVisitorCookie

SPACE_STORAGE = Path("/data")
EPHEMERAL_SPACE_NOTICE = (
    "This Space has no persistent storage: conversations are lost when it restarts. "
    "Its owner can enable persistent storage in the Space settings."
)


def default_db_path(environ: Mapping[str, str], space_storage: Path = SPACE_STORAGE) -> tuple[str, str | None]:
    """Where the database lives by default, and a notice when that place does not survive a restart."""
    if "SPACE_ID" not in environ:
        return "data/chat.db", None
    if space_storage.is_dir() and os.access(space_storage, os.W_OK):
        return str(space_storage / "chat.db"), None
    return "data/chat.db", EPHEMERAL_SPACE_NOTICE


def parse_settings(environ: Mapping[str, str], argv: Sequence[str] = ()) -> Settings:
    """Flags override `CHAT_*` environment variables, which override the defaults."""
    defaults = Settings()
    db_path, storage_notice = default_db_path(environ)
    parser = argparse.ArgumentParser(description="Streaming multi-turn chat with pydantic-ai in Gradio.")
    parser.add_argument(
        "--model",
        default=environ.get("CHAT_MODEL", defaults.model),
        help="demo (default, offline) or a pydantic-ai model string, e.g. openai-chat:gpt-4o-mini [CHAT_MODEL]",
    )
    parser.add_argument(
        "--extra-models",
        default=environ.get("CHAT_EXTRA_MODELS", ""),
        help="comma-separated model strings to offer in the Model menu [CHAT_EXTRA_MODELS]",
    )
    parser.add_argument(
        "--allow-any-model",
        action="store_true",
        default=environ.get("CHAT_ALLOW_ANY_MODEL", "") not in ("", "0", "false"),
        help="run any model string a client names, on your keys; for local use only [CHAT_ALLOW_ANY_MODEL]",
    )
    parser.add_argument(
        "--base-url",
        default=environ.get("CHAT_BASE_URL"),
        help="an OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1; --model is then its model name [CHAT_BASE_URL]",
    )
    parser.add_argument(
        "--max-prompt-chars",
        type=int,
        default=int(environ.get("CHAT_MAX_PROMPT_CHARS", defaults.max_prompt_chars)),
        help="longest prompt accepted [CHAT_MAX_PROMPT_CHARS]",
    )
    parser.add_argument(
        "--max-answer-chars",
        type=int,
        default=int(environ.get("CHAT_MAX_ANSWER_CHARS", defaults.max_answer_chars)),
        help="longest answer written and kept; the model is stopped there, labelled cut; 0: no limit "
        "[CHAT_MAX_ANSWER_CHARS]",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=float(environ.get("CHAT_REQUEST_TIMEOUT", defaults.request_timeout)),
        help="seconds without data from the provider before a turn fails [CHAT_REQUEST_TIMEOUT]",
    )
    parser.add_argument(
        "--max-streams",
        type=int,
        default=int(environ.get("CHAT_MAX_STREAMS", defaults.max_concurrent_streams)),
        help="answers streamed at once [CHAT_MAX_STREAMS]",
    )
    parser.add_argument(
        "--max-running-per-visitor",
        type=int,
        default=int(environ.get("CHAT_MAX_RUNNING_PER_VISITOR", defaults.max_running_per_visitor)),
        help="answers (chats, recipes, hand-offs) one visitor may have running at once; 0: no limit "
        "[CHAT_MAX_RUNNING_PER_VISITOR]",
    )
    parser.add_argument(
        "--max-running-per-address",
        type=int,
        default=int(environ.get("CHAT_MAX_RUNNING_PER_ADDRESS", defaults.max_running_per_address)),
        help="answers one network address may have running at once; 0: no limit (a workshop behind one NAT "
        "is one address) [CHAT_MAX_RUNNING_PER_ADDRESS]",
    )
    parser.add_argument(
        "--max-messages-per-minute",
        type=int,
        default=int(environ.get("CHAT_MAX_MESSAGES_PER_MINUTE", defaults.max_messages_per_minute)),
        help="answers (chats, recipes, hand-offs) one visitor may start in any minute; 0: no limit "
        "[CHAT_MAX_MESSAGES_PER_MINUTE]",
    )
    parser.add_argument(
        "--max-stored-mb-per-visitor",
        type=float,
        default=float(environ.get("CHAT_MAX_STORED_MB_PER_VISITOR", defaults.max_stored_mb_per_visitor)),
        help="what one visitor's conversations may hold, in MB; 0: no limit [CHAT_MAX_STORED_MB_PER_VISITOR]",
    )
    parser.add_argument(
        "--max-import-mb",
        type=float,
        default=float(environ.get("CHAT_MAX_IMPORT_MB", defaults.max_import_mb)),
        help="the largest conversation file a visitor may import, in MB [CHAT_MAX_IMPORT_MB]",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=float(environ.get("CHAT_SHUTDOWN_GRACE", defaults.shutdown_grace)),
        help="on SIGTERM or Ctrl-C, seconds to let running answers stop and save [CHAT_SHUTDOWN_GRACE]",
    )
    parser.add_argument(
        "--demo-delay",
        type=float,
        default=float(environ.get("CHAT_DEMO_DELAY", defaults.demo_first_token_delay)),
        help="demo model: seconds before the first token [CHAT_DEMO_DELAY]",
    )
    parser.add_argument(
        "--demo-tps",
        type=float,
        default=float(environ.get("CHAT_DEMO_TPS", defaults.demo_tokens_per_second)),
        help="demo model: tokens per second, 0 for as fast as possible [CHAT_DEMO_TPS]",
    )
    parser.add_argument(
        "--context",
        choices=POLICY_KINDS,
        default=environ.get("CHAT_CONTEXT", defaults.context_policy),
        help="what a new conversation sends: full history, a window of recent messages, or a summary [CHAT_CONTEXT]",
    )
    parser.add_argument(
        "--context-choices",
        default=environ.get("CHAT_CONTEXT_CHOICES", ",".join(defaults.context_choices)),
        help="comma-separated policies a visitor may pick (full sends the whole history on every turn) "
        "[CHAT_CONTEXT_CHOICES]",
    )
    parser.add_argument(
        "--context-window",
        type=int,
        default=int(environ.get("CHAT_CONTEXT_WINDOW", defaults.context_window)),
        help="messages kept by the window policy [CHAT_CONTEXT_WINDOW]",
    )
    parser.add_argument(
        "--summary-threshold",
        type=int,
        default=int(environ.get("CHAT_SUMMARY_THRESHOLD", defaults.summary_threshold)),
        help="messages after which the summary policy summarizes the older part [CHAT_SUMMARY_THRESHOLD]",
    )
    parser.add_argument(
        "--image-hosts",
        default=environ.get("CHAT_IMAGE_HOSTS", ""),
        help="comma-separated hosts whose images answers may show; others show as links [CHAT_IMAGE_HOSTS]",
    )
    parser.add_argument(
        "--db", default=environ.get("CHAT_DB", db_path), help="the SQLite file holding conversations [CHAT_DB]"
    )
    args = parser.parse_args(list(argv))
    return Settings(
        model=args.model,
        extra_models=tuple(name.strip() for name in args.extra_models.split(",") if name.strip()),
        allow_any_model=args.allow_any_model,
        base_url=args.base_url or None,
        api_key=environ.get("CHAT_API_KEY"),
        max_prompt_chars=args.max_prompt_chars,
        max_answer_chars=args.max_answer_chars,
        request_timeout=args.request_timeout,
        max_concurrent_streams=args.max_streams,
        max_running_per_visitor=args.max_running_per_visitor,
        max_running_per_address=args.max_running_per_address,
        max_messages_per_minute=args.max_messages_per_minute,
        max_stored_mb_per_visitor=args.max_stored_mb_per_visitor,
        max_import_mb=args.max_import_mb,
        shutdown_grace=args.shutdown_grace,
        demo_first_token_delay=args.demo_delay,
        demo_tokens_per_second=args.demo_tps,
        cookie_secret=environ.get("CHAT_SECRET") or None,
        db_path=args.db,
        context_policy=args.context,
        context_choices=context_choices(args.context_choices, args.context, parser),
        context_window=args.context_window,
        summary_threshold=args.summary_threshold,
        summary_keep_recent=max(args.summary_threshold // 3, 2),
        image_hosts=tuple(host.strip() for host in args.image_hosts.split(",") if host.strip()),
        hf_login="SPACE_ID" in environ and "OAUTH_CLIENT_ID" in environ,
        storage_notice=storage_notice if args.db == db_path else None,
    )


def context_choices(listed: str, default: str, parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """The policies offered, in menu order; the default policy is always one of them."""
    wanted = {name.strip() for name in listed.split(",") if name.strip()} | {default}
    unknown = wanted - set(POLICY_KINDS)
    if unknown:
        parser.error(f"--context-choices: unknown {', '.join(sorted(unknown))}; use {', '.join(POLICY_KINDS)}")
    return tuple(kind for kind in POLICY_KINDS if kind in wanted)


def run_to_completion(work: Coroutine[Any, Any, Any]) -> Any:
    """Run start-up work to its end, also when the caller already runs an event loop (a test, a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(1) as own_loop:
        return own_loop.submit(asyncio.run, work).result()


def build_service(settings: Settings) -> ChatService:
    store = open_store(settings.db_path)
    journal = TurnJournal(store)
    # Before serving: answers a killed server was writing go back into their conversations, labelled.
    run_to_completion(recover_unfinished_turns(journal, store))
    return ChatService(
        build_chat_agent(),
        store,
        ModelResolver(settings),
        journal=journal,
        active=ActiveTurns(
            max_per_owner=settings.max_running_per_visitor or None,
            starts_per_minute=settings.max_messages_per_minute or None,
            quota=StoredDataQuota(store, settings.max_stored_bytes_per_visitor),
            max_per_address=settings.max_running_per_address or None,
        ),
        max_prompt_chars=settings.max_prompt_chars,
        max_answer_chars=settings.max_answer_chars or None,
        request_timeout=settings.request_timeout,
        context_choices=settings.context_choices,
        default_policy=ContextPolicy(
            kind=settings.context_policy,  # type: ignore[arg-type]
            window=settings.context_window,
            summary_threshold=settings.summary_threshold,
            keep_recent=settings.summary_keep_recent,
            resummarize_after=max(settings.summary_threshold * 2 // 3, 2),
        ),
    )


def warm_up(service: ChatService) -> None:
    """Stream one instant demo answer: the first run in a process pays ~0.5 s of one-off set-up."""

    async def run_once() -> None:
        async with service.agent.run_stream(
            "hi", model=DemoModel(DemoPace.instant()), conversation=Conversation()
        ) as run:
            async for _ in run.stream_text(delta=True, debounce_by=None):
                pass

    run_to_completion(run_once())


def build_app(settings: Settings) -> tuple[gr.Blocks, ChatService]:
    service = build_service(settings)
    if settings.warm_up:
        warm_up(service)
    # One registry of running turns for chats, recipes and hand-offs: Stop finds each, a shutdown drains all.
    shared = {"request_timeout": settings.request_timeout, "active": service.active}
    shown = ServicesShown(
        chat=service,
        sessions=Sessions(
            service.store,
            settings.image_hosts,
            max_import_bytes=settings.max_import_bytes,
            quota=service.active.quota,  # the same limit on answers and on imports
        ),
        recipes=RecipeService(service.store, service.models, **shared),
        handoffs=HandoffService(service.store, service.models, **shared),
        inspector=StreamInspector(service.agent, service.models),
        visitor_cookie=visitor_cookie(settings, service.store),
    )
    return build_demo(shown, settings), service


def visitor_cookie(settings: Settings, store: SQLiteConversationStore) -> VisitorCookie:
    """The signer of visitor cookies: CHAT_SECRET when set, else a key kept in the database (so visitors
    keep their chats across restarts, and replicas on one database agree)."""
    secret = settings.cookie_secret.encode() if settings.cookie_secret else store.server_secret("visitor-cookie")
    return VisitorCookie(secret)


def shut_down(demo: gr.Blocks, service: ChatService, settings: Settings) -> None:
    """Drain (chat/shutdown.py): refuse new turns, stop and save the running ones, then close the server."""
    drain(service.active, settings.shutdown_grace)
    demo.close()


KEEP_ALIVE_SECONDS = 75
"""Longer than the idle time of browsers' and HTTP clients' pools and of proxies (nginx, load balancers: 60 s)."""


def serve(demo: gr.Blocks, service: ChatService, settings: Settings, **launch: Any) -> None:
    """Launch the UI with the SSE chat API and its demo page on the same server and port.

    The API's routes go into the app as Gradio creates it, so they answer from the server's first request
    (added after `launch()`, they answered 404 for the moment between the two).
    """
    cookies = visitor_cookie(settings, service.store)
    api = ChatStreamAPI(service, cookies, default_model=settings.default_model)
    middleware = [
        Middleware(IssueVisitorCookie, cookies=cookies),
        Middleware(ImagesFromHereOnly, allowed_hosts=settings.image_hosts),
    ]
    demo.launch(
        prevent_thread_lock=True,
        app_kwargs={"routes": api.router().routes, "middleware": middleware},
        **launch_options(settings),
        **launch,
    )
    # Uvicorn, as Gradio starts it, closes an idle connection after 5 s; a busy client reusing one it
    # believes open sends its request into a closing socket (about 1 in 100 failed at 200 chats). Each
    # new connection reads this setting, so from here on the server outlasts any client's idle time.
    demo.server.config.timeout_keep_alive = KEEP_ALIVE_SECONDS


demo, service = build_app(parse_settings(os.environ))

if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    settings = parse_settings(os.environ, sys.argv[1:])
    if settings != parse_settings(os.environ):
        demo, service = build_app(settings)
    serve(demo, service, settings)
    logging.getLogger(__name__).info("stopping on %s", wait_for_stop_signal().name)
    shut_down(demo, service, settings)
