"""A visitor's conversations: list, open, rename, delete, search, export and import. Every call takes the owner."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from pydantic_ai.conversation import Conversation, ConversationTypeAdapter
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelRequest, UserPromptPart

from chat.errors import ConversationUnavailable, NoSuchConversation, StorageFull, VisitorMissing
from chat.imported import inert_history
from chat.quota import StoredDataQuota, readable_size
from chat.render import to_bubbles, to_markdown
from chat.text import join_surrogates, title_from_prompt
from chat.untrusted import plain_line, shortened
from storage.catalogue import CataloguedStore, CorruptConversation, SearchHit, SessionSummary, TurnEnd

MAX_TITLE_CHARS = 80
MAX_IMPORT_BYTES = 5_000_000
EXPORT_KINDS = {"json": "application/json", "md": "text/markdown"}


class ImportRejected(ValueError):
    """A file that is not a pydantic-ai conversation; nothing was stored."""


DATE_GROUPS = ("Today", "Yesterday", "Previous 7 days", "Previous 30 days", "Older")
"""The headings the sidebar lists chats under, newest first, as the common chat apps do."""


def zone_or_utc(name: str | None) -> tzinfo:
    """The visitor's time zone by its IANA name (the page sends its browser's), else UTC."""
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def date_group(moment: datetime, now: datetime, zone: tzinfo) -> str:
    """Under which heading a chat last changed at `moment` is listed, by calendar days in the visitor's zone."""
    days = (now.astimezone(zone).date() - moment.astimezone(zone).date()).days
    if days <= 0:
        return "Today"
    if days == 1:
        return "Yesterday"
    if days <= 7:
        return "Previous 7 days"
    if days <= 30:
        return "Previous 30 days"
    return "Older"


def by_date(summaries: Sequence[SessionSummary], now: datetime, zone: tzinfo) -> list[tuple[str, list[SessionSummary]]]:
    """The chats under their date headings, in `DATE_GROUPS` order, newest first in each; no empty heading."""
    groups: dict[str, list[SessionSummary]] = {heading: [] for heading in DATE_GROUPS}
    for summary in sorted(summaries, key=lambda s: s.updated_at, reverse=True):
        groups[date_group(summary.updated_at, now, zone)].append(summary)
    return [(heading, listed) for heading, listed in groups.items() if listed]


def with_answering(
    stored: Sequence[SessionSummary], answering: Mapping[str, str], now: datetime
) -> list[SessionSummary]:
    """The stored chats with those answering now first, as sending a message moves a chat up: a chat whose first
    answer is still being written is stored nowhere yet, and is listed under its prompt, as it will be named."""
    known = {summary.conversation_id: summary for summary in stored}
    first = [
        replace(known[conversation_id], updated_at=now)
        if conversation_id in known
        else SessionSummary(conversation_id, title_from_prompt(prompt), now, now, None)
        for conversation_id, prompt in answering.items()
    ]
    return first + [summary for summary in stored if summary.conversation_id not in answering]


def relative_time(moment: datetime, now: datetime | None = None) -> str:
    seconds = max(((now or datetime.now(UTC)) - moment).total_seconds(), 0)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


@dataclass(frozen=True)
class OpenedConversation:
    conversation_id: str
    title: str
    messages: list[ModelMessage]
    image_hosts: tuple[str, ...] = ()

    @property
    def bubbles(self) -> list[dict[str, str]]:
        return to_bubbles(self.messages, self.image_hosts)


@dataclass(frozen=True)
class Imported:
    """A file stored as a new conversation, and what of it was left out (a sentence each)."""

    conversation_id: str
    messages: int
    left_out: tuple[str, ...] = ()

    @property
    def notice(self) -> str:
        return " ".join([f"Imported {self.messages} messages.", *self.left_out])


@dataclass(frozen=True)
class Export:
    """A conversation as a file the visitor's browser saves: nothing is written on the server."""

    filename: str
    media_type: str
    text: str


class Sessions:
    def __init__(
        self,
        store: CataloguedStore,
        image_hosts: tuple[str, ...] = (),
        max_import_bytes: int = MAX_IMPORT_BYTES,
        quota: StoredDataQuota | None = None,
    ) -> None:
        self.store = store
        self.image_hosts = image_hosts
        """Hosts whose images show inline; any other image in a chat shows as a link."""
        self.max_import_bytes = max_import_bytes
        self.quota = quota or StoredDataQuota(store, None)

    async def list(self, owner: str, *, limit: int = 50) -> list[SessionSummary]:
        return await self.store.list_sessions(_owner(owner), limit=limit)

    async def open(self, owner: str, conversation_id: str) -> OpenedConversation:
        """The conversation's messages; `ConversationUnavailable` for an id this owner does not have."""
        owner = _owner(owner)
        summary = await self.store.session(conversation_id, owner)
        if summary is None:
            raise NoSuchConversation()
        try:
            conversation = await self.store.load(conversation_id, scope=owner)
        except CorruptConversation as corrupt:
            raise ConversationUnavailable(str(corrupt)) from corrupt
        messages = [] if conversation is None else list(conversation.messages)
        return OpenedConversation(conversation_id, summary.title, messages, self.image_hosts)

    async def rename(self, owner: str, conversation_id: str, typed: str) -> str:
        """The title as kept: one line of visible characters, at most `MAX_TITLE_CHARS`, ending in "…" if cut."""
        title = shortened(plain_line(typed), MAX_TITLE_CHARS)
        if not title:
            raise ConversationUnavailable("A title cannot be empty.")
        if not await self.store.set_title(conversation_id, _owner(owner), title):
            raise NoSuchConversation()
        return title

    async def delete(self, owner: str, conversation_id: str) -> None:
        owner = _owner(owner)
        if await self.store.session(conversation_id, owner) is None:
            raise NoSuchConversation()
        await self.store.delete(conversation_id, scope=owner)

    async def summary(self, owner: str | None, conversation_id: str) -> SessionSummary | None:
        """The listed facts of this owner's conversation (title, times), even when its messages are damaged."""
        return await self.store.session(conversation_id, owner) if owner else None

    async def search(self, owner: str, query: str) -> list[SearchHit]:
        return await self.store.search(_owner(owner), query)

    async def export_json(self, owner: str, conversation_id: str) -> str:
        """The whole conversation as pydantic-ai writes it (messages and usage): lossless, and importable."""
        owner = _owner(owner)
        try:
            conversation = await self.store.load(conversation_id, scope=owner)
        except CorruptConversation:
            return await self._salvage(owner, conversation_id)
        if conversation is None:
            raise NoSuchConversation()
        conversation.revision = None
        return ConversationTypeAdapter.dump_json(conversation, indent=2).decode()

    async def _salvage(self, owner: str, conversation_id: str) -> str:
        """A damaged conversation's messages exactly as stored, so what is still readable can be rescued."""
        summary = await self.store.session(conversation_id, owner)
        if summary is None:
            raise NoSuchConversation()
        salvaged = {
            "damaged": "Some stored messages of this conversation could not be read; here they are as stored.",
            "title": summary.title,
            "stored_messages": await self.store.raw_messages(conversation_id, owner),
        }
        return json.dumps(salvaged, ensure_ascii=False, indent=2)

    async def export_markdown(self, owner: str, conversation_id: str) -> str:
        opened = await self.open(owner, conversation_id)
        return to_markdown(opened.title, opened.messages)

    async def export(self, owner: str, conversation_id: str, kind: str) -> Export:
        """The conversation as a `json` or `md` file named after its title."""
        if kind == "json":
            text = await self.export_json(owner, conversation_id)
        else:
            text = await self.export_markdown(owner, conversation_id)
        summary = await self.summary(owner, conversation_id)
        stem = file_stem(summary.title if summary else "conversation")
        return Export(f"{stem}.{kind}", EXPORT_KINDS[kind], text)

    def check_import_size(self, size: int) -> None:
        if size > self.max_import_bytes:
            raise ImportRejected(
                f"This file is {readable_size(size)}; this server imports files of at most "
                f"{readable_size(self.max_import_bytes)}. Nothing was imported."
            )

    async def import_json(self, owner: str, payload: bytes | str) -> Imported:
        """Store an exported conversation (or a bare pydantic-ai message list) as a new one.

        Only what was said and done comes in (chat/imported.py): an action the file left waiting for approval
        or unanswered, and anything else a run would act on, is left out and named in `Imported.left_out`.
        """
        owner = _owner(owner)
        self.check_import_size(len(payload))
        conversation = _parse_conversation(payload)
        inert = inert_history(conversation.messages)
        if not inert.messages:
            raise ImportRejected(
                " ".join(["This file holds no answered message.", *inert.left_out, "Nothing was imported."])
            )
        try:
            await self.quota.check(owner, adding=len(payload))
        except StorageFull as full:
            raise ImportRejected(f"{full} Nothing was imported.") from None
        # Messages and usage, never the file's `deferred_tool_requests`: the calls it waited on are not imported.
        imported = Conversation(messages=inert.messages, usage=conversation.usage, conversation_id=str(uuid.uuid4()))
        await self.store.save(imported, scope=owner)
        first_prompt = _first_prompt(imported.messages)
        # Named by the app, as a first prompt names a chat: the record's title stays the user's to set.
        title = "Imported: " + title_from_prompt(first_prompt or "chat")
        await self.store.describe(imported.conversation_id, owner, TurnEnd(title=title))
        return Imported(imported.conversation_id, len(imported.messages), inert.left_out)


def kept_as_typed(typed: str, kept: str) -> bool:
    """Whether a rename kept the title as typed, apart from the spaces around and between its words."""
    return kept == " ".join((typed or "").split())


def file_stem(title: str, columns: int = 28) -> str:
    """A download's name from a title: words joined by '-', short enough to show whole.

    Chinese and Japanese characters are twice as wide as Latin ones, so the cut counts columns.
    """
    words = re.sub(r"[\W_]+", "-", title, flags=re.UNICODE).strip("-")
    stem, width = "", 0
    for char in words:
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        if width > columns:
            break
        stem += char
    if len(stem) < len(words) and "-" in stem[len(stem) // 2 :]:
        stem = stem[: stem.rfind("-")]  # on a word boundary when there is one
    return stem.strip("-") or "conversation"


def _parse_conversation(payload: bytes | str) -> Conversation:
    payload = _without_lone_surrogates(payload)
    errors = []
    try:
        conversation = ConversationTypeAdapter.validate_json(payload)
    except pydantic.ValidationError as error:
        errors.append(error)
        try:
            conversation = Conversation(messages=ModelMessagesTypeAdapter.validate_json(payload))
        except pydantic.ValidationError as second:
            errors.append(second)
            first_problem = errors[0].errors()[0]
            where = ".".join(str(p) for p in first_problem.get("loc", ())) or "the top level"
            raise ImportRejected(
                "This file is not a conversation exported from this app (pydantic-ai JSON): "
                f"{first_problem.get('msg', 'invalid')} at {where}. Nothing was imported."
            ) from second
    if not conversation.messages:
        raise ImportRejected("This file holds no messages. Nothing was imported.")
    return conversation


def _without_lone_surrogates(payload: bytes | str) -> bytes | str:
    """An exported file may hold an escaped lone surrogate (`\\ud800`, half an emoji): pydantic's JSON reader
    refuses the whole file for it, Python's reads it. Each one becomes U+FFFD and the rest imports."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    if "\\ud" not in text.lower():
        return payload
    try:
        return json.dumps(_repaired(json.loads(text)))
    except ValueError:
        return payload  # not JSON at all: the validation below says so


def _repaired(value: Any) -> Any:
    if isinstance(value, str):
        return join_surrogates(value)
    if isinstance(value, list):
        return [_repaired(item) for item in value]
    if isinstance(value, dict):
        return {key: _repaired(item) for key, item in value.items()}
    return value


def _first_prompt(messages: Sequence[ModelMessage]) -> str | None:
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return None


def _owner(owner: str | None) -> str:
    if not owner:
        raise VisitorMissing()
    return owner
