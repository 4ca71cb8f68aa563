"""What a chat does to its stored conversation besides answering: edit, retry and undo branch it, and a
turn's save appends after whatever another tab saved meanwhile. Every call is scoped to the owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from pydantic_ai.conversation import Conversation
from pydantic_ai.conversation_store import ConversationConflict
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart

from chat.errors import ConversationUnavailable, NoSuchConversation, PromptRejected, VisitorMissing
from chat.runs import ActiveTurns
from storage.catalogue import CataloguedStore, TurnEnd

_CLIENT_NAMES = uuid.UUID("5f0c2a52-8f7e-4d1e-9a36-2b6f0e7c9d41")
"""The namespace of the ids made from an owner and a name their client chose (`named_by_client`)."""


class ConversationEdits:
    def __init__(self, store: CataloguedStore, active: ActiveTurns) -> None:
        self.store = store
        self.active = active

    def check_idle(self, owner: str | None, conversation_id: str | None) -> None:
        """`PromptRejected` while this conversation is still streaming an answer for this visitor."""
        if owner and conversation_id and self.active.is_running(owner, conversation_id):
            raise PromptRejected("Still answering your last message: wait for it, or press Stop.")

    async def load_or_start(self, owner: str, conversation_id: str) -> Conversation:
        conversation = await self.store.load(conversation_id, scope=owner)
        if conversation is not None:
            return conversation
        if await self.store.read_record(conversation_id) is not None:
            # Same answer as for a conversation that never existed: an id alone reveals nothing.
            raise NoSuchConversation("Start a new chat.")
        return Conversation(conversation_id=conversation_id)

    async def load_messages(self, owner: str, conversation_id: str) -> list[ModelMessage]:
        conversation = await self.store.load(conversation_id, scope=required_owner(owner))
        return [] if conversation is None else list(conversation.messages)

    async def has_conversation(self, owner: str, conversation_id: str) -> bool:
        """Whether this owner has a chat of this id; anyone else's is exactly like one that does not exist."""
        return bool(owner) and await self.store.session(conversation_id, owner) is not None

    async def named_by_client(self, owner: str, name: str) -> str:
        """The stored id of the conversation a client means by a name it chose (the AI SDK's `id`, AG-UI's
        `threadId`, `/v1`'s `X-Conversation-Id`): the owner's conversation of that very id (one the page or
        the server made), else the owner's own conversation of that name.

        A name is the owner's alone: two visitors who both call a chat `my-first-chat` each get their own,
        and no one can take a name before another, nor learn that someone uses it."""
        if self.active.is_running(owner, name) or await self.has_conversation(owner, name):
            return name  # a first answer running is not stored yet
        return str(uuid.uuid5(_CLIENT_NAMES, f"{required_owner(owner)}\n{name}"))

    async def keep_shown(self, owner: str, conversation_id: str, shown_prompts: Sequence[str]) -> bool:
        """Cut the stored conversation back to the prompts the page still shows; True when something was cut.

        Editing any message, retrying or undoing in the chat leaves the page showing fewer prompts than
        the store holds: the conversation branches before the first stored prompt no longer shown, and the
        replaced messages stay stored as a branch. Prompts are matched in order, so a failed turn the page
        shows but the store never saved does not confuse the count.
        """
        owner = required_owner(owner)
        conversation = await self.store.load(conversation_id, scope=owner)
        if conversation is None:
            return False
        remaining = iter(_comparable(prompt) for prompt in shown_prompts)
        for index, message in enumerate(conversation.messages):
            prompt = prompt_of(message)
            # `any` consumes the shown prompts up to the match: an in-order (subsequence) match.
            if prompt is not None and not any(shown == _comparable(prompt) for shown in remaining):
                self.check_idle(owner, conversation_id)
                await self.store.branch(conversation_id, at=index, expected_revision=conversation.revision, scope=owner)
                return True
        return False

    async def rewind_to_last_prompt(self, owner: str, conversation_id: str) -> str:
        """Branch the conversation back to just before its last prompt, and return that prompt.

        Regenerate and edit start here: the answer they replace stays stored, as a branch.
        """
        owner = required_owner(owner)
        self.check_idle(owner, conversation_id)
        conversation = await self.store.load(conversation_id, scope=owner)
        if conversation is None:
            raise NoSuchConversation()
        for index in range(len(conversation.messages) - 1, -1, -1):
            prompt = prompt_of(conversation.messages[index])
            if prompt is not None:
                await self.store.branch(conversation_id, at=index, expected_revision=conversation.revision, scope=owner)
                return prompt
        raise ConversationUnavailable("There is no message to answer again yet.")

    async def save_turn(
        self, owner: str, conversation: Conversation, new_messages: Sequence[ModelMessage], end: TurnEnd
    ) -> None:
        """Save a turn's messages and `end` with them; if another tab saved this conversation meanwhile,
        append after its messages."""
        try:
            await self.store.save_turn(conversation, scope=owner, end=end)
            return
        except ConversationConflict:
            pass
        latest = await self.store.load(conversation.conversation_id, scope=owner)
        if latest is None:
            raise ConversationUnavailable("This conversation was deleted while the answer was streaming.")
        latest.messages.extend(new_messages)
        await self.store.save_turn(latest, scope=owner, end=end)


def prompt_of(message: ModelMessage) -> str | None:
    if isinstance(message, ModelRequest):
        for part in message.parts:
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                return part.content
    return None


def last_prompt(messages: Sequence[ModelMessage]) -> str | None:
    for message in reversed(messages):
        if (prompt := prompt_of(message)) is not None:
            return prompt
    return None


def _comparable(prompt: str) -> str:
    # The page shows a prompt with its common indentation stripped (Gradio's `inspect.cleandoc`).
    return " ".join(prompt.split())


def required_owner(owner: str | None) -> str:
    if not owner:
        raise VisitorMissing()
    return owner
