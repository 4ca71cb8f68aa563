"""Chat tab handlers: thin, named, each checking the visitor itself (every event is also an API call)."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from chat.config import Settings
from chat.errors import ConversationUnavailable, PromptRejected
from chat.identity import visitor
from chat.render import FAILED_PREFIX, Bubble, format_context, format_stats, status_label, to_bubbles
from chat.turns import ChatService, TurnStatus

# While an answer streams, the usage line and the context panel show these rather than `gr.skip()`:
# Gradio 6.31 handles a skipped output by building a new component (tens of µs of `inspect.signature`
# each), on every streamed update, which made 50 simultaneous chats CPU-bound (benchmarks/ANALYSIS.md).
ANSWERING = "*Answering…*"
CONTEXT_AFTER_TURN = "*Shown when this answer ends.*"


def new_owner_token() -> str:
    """An opaque visitor id: 128 random bits, kept in the visitor's browser."""
    return secrets.token_urlsafe(16)


def new_conversation_id() -> str:
    return str(uuid.uuid4())


class ChatHandlers:
    """Event handlers; each one checks the visitor itself, since every event is also reachable as an API call."""

    def __init__(self, service: ChatService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self._minted: OrderedDict[str, str] = OrderedDict()
        self._minted_lock = threading.Lock()

    def browser_token(self, owner: str | None, request: gr.Request | None) -> str:
        """The browser's own token; on a first visit, one minted per page session.

        Page load and a quick first Send both find the browser state empty and run concurrently:
        minting per session makes them agree, so the first chat cannot land under a lost token.
        """
        if token := visitor(owner):
            return token
        session = getattr(request, "session_hash", None)
        if not session:
            return new_owner_token()
        with self._minted_lock:
            token = self._minted.setdefault(session, new_owner_token())
            self._minted.move_to_end(session)
            while len(self._minted) > 10_000:
                self._minted.popitem(last=False)
        return token

    def visitor_of(self, owner: str | None, request: gr.Request | None, profile: gr.OAuthProfile | None) -> str | None:
        """The owner scope of this event: the signed-in account, else the browser's (possibly new) token."""
        return visitor(self.browser_token(owner, request), profile)

    def ensure_owner(self, owner: str | None, request: gr.Request) -> str:
        """The browser's token, minted on the first visit; a logged-in account never replaces it."""
        return self.browser_token(owner, request)

    def check_model(self, model_name: str) -> str:
        problem = self.service.models.check(model_name)
        return f"⚠️ {problem}" if problem else ""

    async def send(
        self,
        message: str,
        model_name: str,
        owner: str | None,
        conversation_id: str | None,
        policy: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Send from the prompt box in one event: the prompt shows at once, then the answer streams.

        One event rather than an echo event chained to a streaming one: the chain cost a second
        queue round trip (about 40 ms) before the first token (benchmarks/ANALYSIS.md). The page
        empties the box itself; a prompt that is refused or fails comes back through the third
        output (a State), and `restore_prompt` puts it back in the box.
        """
        token = self.browser_token(owner, request)
        try:
            self.service.check_idle(visitor(token, profile), conversation_id)
            self.service.check_prompt(message)
        except PromptRejected as rejected:
            yield gr.skip(), f"⚠️ Not sent: {rejected}", message, token, gr.skip(), gr.skip()
            return
        updates = self.stream_reply(message, model_name, token, conversation_id, policy, request, profile)
        async for outputs in updates:
            yield outputs

    async def stream_reply(
        self,
        message: str,
        model_name: str,
        owner: str | None,
        conversation_id: str | None,
        policy: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Stream the answer into the last bubble; the chat above it is re-read from the store."""
        browser_token = self.browser_token(owner, request)
        owner = visitor(browser_token, profile)
        conversation_id = conversation_id or new_conversation_id()
        earlier = to_bubbles(await self.service.load_messages(owner, conversation_id))
        asked: list[Bubble] = [{"role": "user", "content": message}] if (message or "").strip() else []
        identity: tuple[Any, Any] = (browser_token, conversation_id)
        yield [*earlier, *asked], ANSWERING, gr.skip(), *identity, CONTEXT_AFTER_TURN  # before the model answers
        # The token again rather than gr.skip(): BrowserState is a component, rebuilt on every skip.
        identity = (browser_token, gr.skip())
        async for update in self.service.run_turn(owner, conversation_id, message, model_name, policy):
            if update.status is TurnStatus.FAILED:
                answer = [{"role": "assistant", "content": f"{FAILED_PREFIX}{update.error}"}]
                yield [*earlier, *asked, *answer], f"⚠️ {update.error}", message, *identity, CONTEXT_AFTER_TURN
                return
            label = status_label(update.status)
            answer = [{"role": "assistant", "content": update.text + label}] if update.text or label else []
            summary = format_stats(update.stats, update.status) if update.stats else ANSWERING
            context = format_context(update.context, update.stats) if update.context else CONTEXT_AFTER_TURN
            yield [*earlier, *asked, *answer], summary, gr.skip(), *identity, context

    def restore_prompt(self, returned: str | None, box: str | None) -> tuple[Any, None]:
        """Put a prompt that was not answered back in the box, unless the visitor has typed a new one."""
        # The box may still read as the returned prompt: the page empties it on Send, possibly after
        # this event read it.
        if returned and (not (box or "").strip() or box == returned):
            return returned, None
        return gr.skip(), None

    def stop_reply(
        self, owner: str | None, conversation_id: str | None, profile: gr.OAuthProfile | None = None
    ) -> None:
        owner = visitor(owner, profile)
        if owner and conversation_id:
            self.service.stop(owner, conversation_id)

    async def regenerate(
        self, owner: str | None, conversation_id: str | None, profile: gr.OAuthProfile | None = None
    ) -> tuple[list[Bubble], str]:
        """Answer the last prompt again; the old answer stays stored as a branch."""
        owner = visitor(owner, profile)
        prompt = await self._rewind(owner, conversation_id)
        return await self._shown_with(owner, conversation_id, prompt), prompt

    async def edit_last(
        self,
        owner: str | None,
        conversation_id: str | None,
        chatbot: list[Bubble],
        edit: gr.EditData,
        profile: gr.OAuthProfile | None = None,
    ) -> tuple[list[Bubble], str]:
        """Replace the last prompt and answer it; the earlier version stays stored as a branch."""
        owner = visitor(owner, profile)
        user_indexes = [i for i, bubble in enumerate(chatbot or []) if bubble.get("role") == "user"]
        if not user_indexes or edit.index != user_indexes[-1]:
            raise gr.Error("Only your last message can be edited.", title="Not edited")
        new_prompt = _plain_text(edit.value)
        try:
            new_prompt = self.service.check_prompt(new_prompt)
        except PromptRejected as rejected:
            raise gr.Error(str(rejected), title="Not edited") from rejected
        await self._rewind(owner, conversation_id)
        return await self._shown_with(owner, conversation_id, new_prompt), new_prompt

    async def _rewind(self, owner: str | None, conversation_id: str | None) -> str:
        if not owner or not conversation_id:
            raise gr.Error("There is no message to answer again yet.", title="Nothing to do")
        try:
            return await self.service.rewind_to_last_prompt(owner, conversation_id)
        except (ConversationUnavailable, PromptRejected) as problem:
            raise gr.Error(str(problem), title="Nothing to do") from problem

    async def _shown_with(self, owner: str | None, conversation_id: str | None, prompt: str) -> list[Bubble]:
        earlier = to_bubbles(await self.service.load_messages(owner or "", conversation_id or ""))
        return [*earlier, {"role": "user", "content": prompt}]


def _plain_text(value: Any) -> str:
    """Chatbot values arrive as a string, or as a list of `{"type": "text", "text": ...}` parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in value)
    return str(value or "")
