"""What every streaming route does before a chat turn streams: who is asking, and may this turn start now.

The SSE API, the Vercel AI route, the AG-UI route and `/v1` with a conversation id all run the page's own turn (`ChatService.run_turn`:
the same store, titles, context policy, limits, Stop and journal); they differ only in how they speak.
Each turns a `Refusal` into its protocol's error, with the status a client can act on. The recipe routes
start the recipe tab's run the same way (`start_recipe`).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import JSONResponse

from chat.errors import (
    ConversationBusy,
    OverLimit,
    PromptRejected,
    ServerClosing,
    StorageFull,
    StoreUnavailable,
    describe_failure,
)
from chat.identity import (
    COOKIE_NAME,
    TIME_ZONE_COOKIE,
    TIME_ZONE_HEADER,
    MalformedOwner,
    VisitorCookie,
    checked_owner,
    client_address,
    visitor,
)
from chat.models import ModelNotOffered
from chat.recipe_runs import RecipeService, RecipeUpdate
from chat.runs import ActiveTurns
from chat.turn_hooks import Turn
from chat.turns import ChatService, TurnUpdate

log = logging.getLogger(__name__)

OWNER_HEADER = "x-chat-owner"
NO_SUCH_CONVERSATION = "No such conversation."
_CLIENT_NAMED_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    retry_after: int | None = None

    @property
    def headers(self) -> dict[str, str] | None:
        return None if self.retry_after is None else {"Retry-After": str(self.retry_after)}


@dataclass(frozen=True)
class TurnAsk:
    message: str | None
    conversation_id: str | None = None
    model: str | None = None
    context: str | None = None
    shown_prompts: Sequence[str] | None = None
    """The prompts the client shows before this one; the stored conversation is cut back to them (an
    edited or regenerated message). None: the client shows the whole stored conversation."""


def ask_from_shown(
    conversation_id: str, shown: Sequence[tuple[str, str]], options: object, *, alone_continues: bool = False
) -> TurnAsk | Refusal:
    """What a client that sends the conversation it shows, as (role, text) pairs, asks: the last message,
    the user's, is the prompt; the user messages before it are what it shows of the stored conversation.
    `options` (a JSON object, or anything else for none) may name the `model` and the `context` policy.
    `alone_continues`: a lone message goes on from the stored conversation instead of starting it over
    (for clients that keep no history of their own)."""
    if not shown or shown[-1][0] != "user":
        return Refusal(400, "The last message must be the user's.")
    named = options if isinstance(options, dict) else {}
    model, context = named.get("model"), named.get("context")
    if not isinstance(model, str | None) or not isinstance(context, str | None):
        return Refusal(400, "`model` and `context` are names (strings).")
    earlier = [(role, text) for role, text in shown[:-1] if role not in ("system", "developer")]
    prompts = None if alone_continues and not earlier else [text for role, text in earlier if role == "user"]
    return TurnAsk(shown[-1][1], conversation_id, model, context, shown_prompts=prompts)


def caller(request: Request, cookies: VisitorCookie) -> str | Refusal:
    """The visitor: their `X-Chat-Owner` token, else the browser's signed cookie."""
    try:
        token = checked_owner(request.headers.get(OWNER_HEADER))
    except MalformedOwner as malformed:
        return Refusal(400, str(malformed))
    owner = visitor(token or cookies.verify(request.cookies.get(COOKIE_NAME)))
    if not owner:
        return Refusal(401, f"Send your owner token in an {OWNER_HEADER} header (POST /api/session gives you one).")
    return owner


STORE_AWAY = "The conversation store cannot be reached right now; nothing was sent or changed. Try again in a moment."
STORE_AWAY_RETRY_SECONDS = 5


async def store_away(request: Request, away: StoreUnavailable) -> JSONResponse:
    """Every route's answer while the database is away (a PostgreSQL restarting): a 503 a client can retry,
    instead of a bare 500. The cause goes to the server log, never to the client."""
    log.warning("%s %s: %s", request.method, request.url.path, away)
    return json_refusal(Refusal(503, STORE_AWAY, retry_after=STORE_AWAY_RETRY_SECONDS))


def json_refusal(refusal: Refusal) -> JSONResponse:
    """A refusal as a JSON body `{"error": sentence}`, with its status and `Retry-After`."""
    return JSONResponse({"error": refusal.message}, status_code=refusal.status, headers=refusal.headers)


async def limits_refusal(
    active: ActiveTurns, owner: str, run_id: str, address: str | None, *, paid: bool = False
) -> Refusal | None:
    """Why a run may not start now (the visitor's or the address's limits, a busy conversation, a server
    closing), with the status a client can act on; None when it may. The run checks again as it starts."""
    try:
        await active.check_can_start(owner, run_id, address, paid=paid)
    except ServerClosing as closing:  # draining for a restart: come back in a moment
        return Refusal(503, str(closing), retry_after=10)
    except OverLimit as too_many:
        return Refusal(429, str(too_many), retry_after=too_many.retry_after_seconds)
    except ConversationBusy as busy:
        return Refusal(409, str(busy))
    except StorageFull as full:  # waiting will not help: the visitor deletes some conversations first
        return Refusal(507, str(full))
    return None


async def start_turn(
    service: ChatService,
    request: Request,
    owner: str,
    ask: TurnAsk,
    default_model: str,
    *,
    client_names_new: bool = False,
    tag: str | None = None,
    stop_when_left: bool = False,
) -> tuple[str, AsyncIterator[TurnUpdate]] | Refusal:
    """The conversation id and the turn's updates, or why it cannot start (checked before anything is stored
    or any provider is asked; the run checks the limits again as it starts).

    `client_names_new`: the id is a name the client chose (the AI SDK, AG-UI and `/v1` name their chats
    themselves), the owner's own whoever else uses it (`ConversationEdits.named_by_client`), and an unknown
    one starts a new conversation. Else it is an id the server made: an unknown one is a 404, exactly like
    someone else's, and a missing one starts a new conversation. The id returned is the one the client sent. `stop_when_left`: a client that goes away stops the
    turn, as Stop does (for protocols whose only Stop is closing the stream); else it runs on to its end.
    """
    try:
        message = service.check_prompt(ask.message)
    except PromptRejected as rejected:
        return Refusal(400 if not (ask.message or "").strip() else 413, str(rejected))
    named = ask.conversation_id
    if named is not None and client_names_new and not _CLIENT_NAMED_ID.fullmatch(named):
        return Refusal(400, "A conversation id is 1 to 128 letters, digits, '.', '_' or '-'.")
    model_name = ask.model or default_model
    try:
        service.check_options(Turn(owner, named or "", message, model_name, ask.context))
        service.models.check_offered(model_name)
    except (PromptRejected, ModelNotOffered) as not_offered:
        return Refusal(400, describe_failure(not_offered, model_name))
    if named and client_names_new:
        conversation_id = await service.edits.named_by_client(owner, named)
    else:
        conversation_id = named or str(uuid.uuid4())
    address = client_address(request)
    # Right after a Stop its answer is saving; a client whose Stop is leaving may be here before it was seen leave.
    await service.active.settle(owner, conversation_id, asked_by_a_leaver=stop_when_left)
    paid = service.models.costs_money(model_name)
    over_limit = await limits_refusal(service.active, owner, conversation_id, address, paid=paid)
    if over_limit is not None:  # before the 404: a new chat's first answer is not stored yet (busy)
        return over_limit
    if named:  # a turn its replica left when it died is put back now, not at the next look
        await service.open_conversation(owner, conversation_id)
    if named and not client_names_new and not await service.edits.has_conversation(owner, conversation_id):
        return Refusal(404, NO_SUCH_CONVERSATION)
    updates = service.run_turn(
        owner,
        conversation_id,
        message,
        model_name,
        ask.context,
        shown_prompts=ask.shown_prompts,
        address=address,
        tag=tag,
        time_zone=request.headers.get(TIME_ZONE_HEADER) or request.cookies.get(TIME_ZONE_COOKIE),
        keep_running_when_left=not stop_when_left,
    )
    return named or conversation_id, updates


async def start_shown(
    service: ChatService,
    request: Request,
    owner: str,
    conversation_id: str,
    shown: Sequence[tuple[str, str]],
    options: object,
    default_model: str,
    tag: str | None = None,
    alone_continues: bool = False,
) -> tuple[str, AsyncIterator[TurnUpdate]] | Refusal:
    """The turn a client that names its conversation and shows it asks for (`ask_from_shown`), started as
    `start_turn` starts it: an unknown id is a new conversation of that id (the AI SDK, AG-UI and `/v1`
    name their chats themselves), and a client that leaves stops the turn (their Stop is leaving)."""
    ask = ask_from_shown(conversation_id, shown, options, alone_continues=alone_continues)
    if isinstance(ask, Refusal):
        return ask
    return await start_turn(
        service, request, owner, ask, default_model, client_names_new=True, tag=tag, stop_when_left=True
    )


async def start_recipe(
    recipes: RecipeService, request: Request, owner: str, dish: str | None, model: str | None, default_model: str
) -> tuple[str, AsyncIterator[RecipeUpdate]] | Refusal:
    """A recipe run's id (new, the server's) and its partial recipes, or why it cannot start. It is stored
    among the visitor's recipes, as one from the page's recipe tab; a client that leaves stops it."""
    try:
        dish = recipes.check_request(dish)
    except PromptRejected as rejected:
        return Refusal(400, str(rejected))
    model_name = model or default_model
    try:
        recipes.models.check_offered(model_name)
    except ModelNotOffered as not_offered:
        return Refusal(400, describe_failure(not_offered, model_name))
    run_id, address = str(uuid.uuid4()), client_address(request)
    paid = recipes.models.costs_money(model_name)
    over_limit = await limits_refusal(recipes.active, owner, run_id, address, paid=paid)
    if over_limit is not None:
        return over_limit
    return run_id, recipes.run(owner, run_id, dish, model_name, address=address)
