"""What the chat's protocol routes share: reading a request (who is asking, its body as the protocol's input)
and starting the page's turn or the recipe tab's run from it, each refusal answered in the protocol's words.

Like pydantic-ai's `ui/` (one base, `_adapter.py`, and one subpackage per protocol), `ChatRoutes` is the
base and each protocol's module holds only what is its own: how its request is read, how a refusal and the
answer are written (web/sse.py, web/vercel_ai.py, web/ag_ui.py). `/v1` (web/openai_api.py) knows its
caller by an API key and its turns are optional, so it starts the page's turn with `turn_start.start_shown`,
the same step `ChatRoutes.start_shown` takes.

A step that cannot go on raises `Refused`; the route's `refused` words it, with the status, `Retry-After`
and message of `turn_start.Refusal`, and nothing of the exception behind it.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chat.identity import VisitorCookie
from chat.recipe_runs import RecipeService, RecipeUpdate
from chat.turns import ChatService, TurnUpdate
from web.request_json import UnreadableJSON, read_json
from web.turn_start import Refusal, TurnAsk, caller, start_recipe, start_shown, start_turn

T = TypeVar("T")
NO_RECIPES = "This server has no recipe route."
NO_DISH = "Name the dish in the last message, the user's."


class Refused(Exception):
    """A route's step that cannot go on, and the refusal to send for it."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def checked(value: T | Refusal) -> T:
    """`value`, or `Refused` when it is a `Refusal` (what the steps in web/turn_start.py return)."""
    if isinstance(value, Refusal):
        raise Refused(value)
    return value


class ChatRoutes(ABC):
    """One protocol's routes to the page's chat: the visitor's own conversations (`X-Chat-Owner`, else the
    browser's cookie), the page's turn (`ChatService.run_turn`) and, where the protocol has one, the recipe
    tab's run."""

    MALFORMED: ClassVar[str]
    """What to send instead of a body that is not this protocol's request."""

    def __init__(
        self, service: ChatService, cookies: VisitorCookie, default_model: str, recipes: RecipeService | None = None
    ) -> None:
        self.service = service
        self.cookies = cookies
        self.default_model = default_model
        self.recipes = recipes
        """The recipe tab's runs; None: the recipe route answers 404."""

    @abstractmethod
    def router(self) -> APIRouter: ...

    @abstractmethod
    def refused(self, refusal: Refusal) -> Response:
        """The refusal in this protocol's words, with its status and headers."""

    def routes(self, *routes: tuple[str, str, Callable[..., Awaitable[Response]]]) -> APIRouter:
        """A router of (method, path, handler); a `Refused` a handler raises is answered by `refused`."""
        router = APIRouter()
        for method, path, handler in routes:
            router.add_api_route(path, self._answering(handler), methods=[method], response_model=None)
        return router

    def _answering(self, handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
        @functools.wraps(handler)  # FastAPI reads the handler's own parameters through the wrapper
        async def answering(*args: object, **kwargs: object) -> Response:
            try:
                return await handler(*args, **kwargs)
            except Refused as refused:
                return self.refused(refused.refusal)

        return answering

    def caller(self, request: Request) -> str:
        """The visitor: their `X-Chat-Owner` token, else the browser's signed cookie (`turn_start.caller`)."""
        return checked(caller(request, self.cookies))

    def recipe_caller(self, request: Request) -> tuple[str, RecipeService]:
        """The visitor and the recipe runs; a 404 on a server without them."""
        owner = self.caller(request)
        if self.recipes is None:
            raise Refused(Refusal(404, NO_RECIPES))
        return owner, self.recipes

    async def body(self, request: Request, read: Callable[[Any], T], malformed: str | None = None) -> T:
        """The request's JSON body (`request_json.read_json`) as `read` reads it. Either failing (`ValueError`, a
        `ValidationError` among them) is a 400 saying what to send (`malformed`, else the protocol's
        `MALFORMED`), after what was wrong with the JSON itself when it was that."""
        what_to_send = malformed or self.MALFORMED
        try:
            return read(read_json(await request.body()))
        except UnreadableJSON as unreadable:
            raise Refused(Refusal(400, f"{unreadable} {what_to_send}")) from None
        except ValueError:
            raise Refused(Refusal(400, what_to_send)) from None

    async def start(
        self, request: Request, owner: str, ask: TurnAsk, tag: str
    ) -> tuple[str, AsyncIterator[TurnUpdate]]:
        """The page's turn as `ask` asks for it (`turn_start.start_turn`): an unknown conversation id is a 404,
        a missing one starts a new conversation, and a client that leaves does not stop the turn."""
        return checked(await start_turn(self.service, request, owner, ask, self.default_model, tag=tag))

    async def start_shown(
        self,
        request: Request,
        owner: str,
        conversation_id: str,
        shown: Sequence[tuple[str, str]],
        options: object,
        *,
        tag: str,
        alone_continues: bool = False,
    ) -> tuple[str, AsyncIterator[TurnUpdate]]:
        """The page's turn for a client that shows the conversation and names it (`turn_start.start_shown`)."""
        started = await start_shown(
            self.service, request, owner, conversation_id, shown, options, self.default_model, tag, alone_continues
        )
        return checked(started)

    async def start_recipe(
        self, request: Request, owner: str, recipes: RecipeService, shown: Sequence[tuple[str, str]], model: object
    ) -> tuple[str, AsyncIterator[RecipeUpdate]]:
        """The recipe tab's run for the dish the last message, the user's, names (`turn_start.start_recipe`)."""
        if not shown or shown[-1][0] != "user" or not isinstance(model, str | None):
            raise Refused(Refusal(400, NO_DISH))
        return checked(await start_recipe(recipes, request, owner, shown[-1][1], model, self.default_model))
