"""The server: the services on one store, the page, the SSE API, and a launch that drains on SIGTERM.

`app.py` reads the settings and calls `run`; tests build and serve apps of their own with `build_app` and
`serve`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from pydantic_ai import FunctionToolset
from pydantic_ai.conversation import Conversation
from starlette.middleware import Middleware

from chat.address_limits import AddressLimits
from chat.agents import build_chat_agent
from chat.config import Settings
from chat.demo_model import DemoModel, DemoPace
from chat.errors import StoreUnavailable
from chat.identity import VisitorCookie
from chat.models import ModelResolver
from chat.quota import StoredDataQuota
from chat.recipe_runs import RecipeService
from chat.runs import ActiveTurns
from chat.sessions import Sessions
from chat.turn_hooks import TurnHooks
from chat.turns import ChatService
from chat.wings.approvals import Approvals
from chat.wings.completions import Completions
from chat.wings.context_policies import ContextPolicies
from chat.wings.handoff import HandoffService
from chat.wings.history import ContextPolicy
from chat.wings.journal import JournalledTurns, keep_recovering, recover_unfinished_turns
from chat.wings.mcp_servers import McpServers
from chat.wings.relay import AnswerRelay
from chat.wings.shutdown import drain, wait_for_stop_signal
from chat.wings.stop_everywhere import StopEverywhere
from chat.wings.stream_inspector import StreamInspector
from chat.wings.summaries import Summarizer
from chat.wings.tools import ChatDeps, ChatTools
from storage import open_store
from storage.catalogue import CataloguedStore, ServerStore
from storage.turn_journal import TurnJournal
from ui import ServicesShown, build_demo, launch_options
from ui.gradio_armour import NoteStopsBeforeJoin, StopsBeforeJoin, keep_connections_open, tune_for_many_streams
from web.ag_ui import AGUIChatAPI
from web.content_policy import ImagesFromHereOnly
from web.openai_api import OpenAICompatibleAPI
from web.sse import ChatStreamAPI
from web.turn_start import store_away
from web.vercel_ai import VercelAIChatAPI
from web.visitor_cookie import IssueVisitorCookie

log = logging.getLogger(__name__)


def run_to_completion(work: Coroutine[Any, Any, Any]) -> Any:
    """Run start-up work to its end, also when the caller already runs an event loop (a test, a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(1) as own_loop:
        return own_loop.submit(asyncio.run, work).result()


def database_connections(settings: Settings) -> int:
    """The store's pool on PostgreSQL: a stream holds a connection only for a load, a save or a
    checkpoint (milliseconds of a turn), so one per ten streams, within what one PostgreSQL serves to
    several replicas (100 connections by default)."""
    return max(4, min(settings.max_concurrent_streams // 10, 20))


@dataclass(frozen=True)
class Runtime:
    """What the server builds once and every front end shares: one store, one registry of running turns (Stop
    finds each, a shutdown drains all), the journal, and the services the page shows (the API routes use the
    same ones)."""

    settings: Settings
    store: ServerStore
    models: ModelResolver
    active: ActiveTurns
    journal: TurnJournal
    page: ServicesShown
    stops_before_join: StopsBeforeJoin = field(default_factory=StopsBeforeJoin)
    """Gradio's Stops sent before their answer joined the queue (the armour's `NoteStopsBeforeJoin` notes them)."""


def context_policies(settings: Settings, store: CataloguedStore, models: ModelResolver) -> ContextPolicies:
    default = ContextPolicy(
        kind=settings.context_policy,
        window=settings.context_window,
        summary_threshold=settings.summary_threshold,
        keep_recent=settings.summary_keep_recent,
        resummarize_after=max(settings.summary_threshold * 2 // 3, 2),
    )
    return ContextPolicies(store, Summarizer(models), default, settings.context_choices)


def chat_wings(
    store: CataloguedStore,
    context: ContextPolicies,
    *,
    mcp_servers: McpServers | None = None,
    journal: TurnJournal | None = None,
    tools: FunctionToolset[ChatDeps] | None = None,
    approvals: bool = True,
) -> list[TurnHooks]:
    """The chat's optional features, each a wing of the turn (chat/turn_hooks.py): leave one out and the chat
    runs without it (`approvals=False` also leaves out the tools that wait for one). Tools before approvals
    (which answer their calls), the journal last (it ends each turn's entry in the turn's own save)."""
    wings: list[TurnHooks] = [ChatTools(store, tools, ask_approval=approvals)]
    if mcp_servers is not None:
        mcp_servers.ask_approval = approvals  # the page's list of tools (the same object) then matches the turns'
        wings.append(mcp_servers)
    wings += [Approvals(), context] if approvals else [context]
    if journal is not None:
        wings.append(JournalledTurns(journal, store))
    return wings


def build_runtime(settings: Settings) -> Runtime:
    store = open_store(settings.db_path, max_connections=database_connections(settings))
    journal = store.turn_journal()
    # Before serving: answers a killed server was writing go back into their conversations, labelled.
    run_to_completion(recover_unfinished_turns(journal, store))
    models = ModelResolver(settings)
    active = ActiveTurns(
        max_per_owner=settings.max_running_per_visitor or None,
        starts_per_minute=settings.max_messages_per_minute or None,
        quota=StoredDataQuota(store, settings.max_stored_bytes_per_visitor),
        max_per_address=settings.max_running_per_address or None,
        addresses=AddressLimits(
            visitors_per_hour=settings.max_visitors_per_address or None,
            messages_per_minute=settings.max_messages_per_minute_per_address or None,
            tokens_per_day=settings.max_tokens_per_day_per_address or None,
        ),
    )
    mcp_servers = McpServers.load(settings.mcp_config)
    context = context_policies(settings, store, models)
    chat = ChatService(
        build_chat_agent(),
        store,
        models,
        wings=chat_wings(store, context, mcp_servers=mcp_servers, journal=journal),
        active=active,
        max_prompt_chars=settings.max_prompt_chars,
        max_answer_chars=settings.max_answer_chars or None,
        request_timeout=settings.request_timeout,
    )
    shared = {"request_timeout": settings.request_timeout, "active": active}
    page = ServicesShown(
        chat=chat,
        # The same stored-data limit on answers and on imports.
        sessions=Sessions(store, settings.image_hosts, max_import_bytes=settings.max_import_bytes, quota=active.quota),
        recipes=RecipeService(store, models, **shared),
        handoffs=HandoffService(store, models, **shared),
        inspector=StreamInspector(build_chat_agent(), models),
        visitor_cookie=visitor_cookie(settings, store),
        context=context,
        mcp_servers=mcp_servers,
    )
    return Runtime(settings, store, models, active, journal, page)


def warm_up(runtime: Runtime) -> None:
    """Stream one instant demo answer: the first run in a process pays ~0.5 s of one-off set-up."""

    async def run_once() -> None:
        async with runtime.page.chat.agent.run_stream(
            "hi", model=DemoModel(DemoPace.instant()), conversation=Conversation()
        ) as run:
            async for _ in run.stream_text(delta=True, debounce_by=None):
                pass

    run_to_completion(run_once())


def build_app(settings: Settings) -> tuple[gr.Blocks, Runtime]:
    """The page and what the server built for it; `serve` puts the APIs on the same runtime."""
    runtime = build_runtime(settings)
    if settings.warm_up:
        warm_up(runtime)
    return build_demo(runtime.page, settings, runtime.stops_before_join), runtime


def visitor_cookie(settings: Settings, store: ServerStore) -> VisitorCookie:
    """The signer of visitor cookies: CHAT_SECRET when set, else a key kept in the database (so visitors
    keep their chats across restarts, and replicas on one database agree)."""
    secret = settings.cookie_secret.encode() if settings.cookie_secret else store.server_secret("visitor-cookie")
    return VisitorCookie(secret)


def shut_down(demo: gr.Blocks, runtime: Runtime) -> None:
    """Drain (chat/wings/shutdown.py): refuse new turns, stop and save the running ones, then close the server."""
    drain(runtime.active, runtime.settings.shutdown_grace)
    demo.close()


def serve(demo: gr.Blocks, runtime: Runtime, settings: Settings, **launch: Any) -> None:
    """Launch the UI with the SSE chat API and its demo page on the same server and port, every route on the
    page's own services (one cookie signer, one recipe service, one registry of running turns).

    The API's routes go into the app as Gradio creates it, so they answer from the server's first request
    (added after `launch()`, they answered 404 for the moment between the two).
    """
    service, cookies, recipes = runtime.page.chat, runtime.page.visitor_cookie, runtime.page.recipes
    stops = StopEverywhere(runtime.active, runtime.store, runtime.journal)
    stops.listen()  # replicas on one PostgreSQL: a stop request that lands elsewhere reaches the turn here
    relay = AnswerRelay(service, runtime.store, runtime.journal)
    relay.listen()  # replicas on one PostgreSQL: an SSE client that comes back elsewhere resumes its answer
    api = ChatStreamAPI(service, cookies, default_model=settings.default_model, stops=stops, relay=relay)
    completions = Completions(
        build_chat_agent(),
        runtime.store,
        runtime.models,
        request_timeout=settings.request_timeout,
        active=runtime.active,  # one set of limits, one Stop, one drain for every route
    )
    openai_api = OpenAICompatibleAPI(completions, default_model=settings.default_model, chat=service)
    vercel_ai = VercelAIChatAPI(service, cookies, default_model=settings.default_model, recipes=recipes)
    ag_ui = AGUIChatAPI(service, cookies, default_model=settings.default_model, recipes=recipes)
    routes = [*api.router().routes, *openai_api.router().routes, *vercel_ai.router().routes, *ag_ui.router().routes]
    middleware = [
        Middleware(IssueVisitorCookie, cookies=cookies),
        Middleware(ImagesFromHereOnly, allowed_hosts=settings.image_hosts),
    ]
    if settings.gradio_armour:
        middleware.append(Middleware(NoteStopsBeforeJoin, stops=runtime.stops_before_join))
    # Gradio makes uvicorn's config without `forwarded_allow_ips`, so uvicorn reads this variable, and trusts
    # 127.0.0.1 when it is unset: any client on this machine could then name any address it liked.
    os.environ["FORWARDED_ALLOW_IPS"] = settings.forwarded_allow_ips
    demo.launch(
        prevent_thread_lock=True,
        app_kwargs={"routes": routes, "middleware": middleware, "exception_handlers": {StoreUnavailable: store_away}},
        **launch_options(settings),
        **launch,
    )
    if settings.gradio_armour:
        keep_connections_open(demo)


def run(settings: Settings) -> None:
    """Serve until SIGTERM or Ctrl-C, then drain: running answers are stopped and saved before the exit."""
    demo, runtime = build_app(settings)
    serve(demo, runtime, settings, server_name=settings.host, server_port=settings.port)
    if settings.gradio_armour:
        tune_for_many_streams()
    stop_recovering = threading.Event()
    if settings.recover_every > 0:
        keep_recovering(runtime.journal, runtime.store, stop_recovering, settings.recover_every)
    log.info("stopping on %s", wait_for_stop_signal().name)
    stop_recovering.set()
    shut_down(demo, runtime)
