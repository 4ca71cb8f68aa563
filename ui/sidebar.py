"""The sidebar: a visitor's conversations under date headings, each row with its own menu (rename, export, delete).

The list is one `gr.HTML` drawn here from plain data (`chat.sessions.by_date`); a small page script
(ui/layout.py, `CHAT_LIST_SCRIPT`) opens a row's menu, asks before a delete, and sends each action as an event of
that component with the row's id. Each handler passes the owner down; an id alone opens nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr

from chat.config import Settings
from chat.errors import ConversationUnavailable
from chat.identity import TIME_ZONE_COOKIE
from chat.models import model_choices
from chat.sessions import (
    MAX_TITLE_CHARS,
    ImportRejected,
    Sessions,
    SessionSummary,
    by_date,
    kept_as_typed,
    relative_time,
    with_answering,
    zone_or_utc,
)
from chat.turns import ChatService
from chat.wings.context_policies import ContextPolicies
from ui.layout import CHAT_LIST_SCRIPT
from ui.visitors import Visitors, new_conversation_id

Choices = list[tuple[str, str]]


class SessionHandlers:
    def __init__(self, sessions: Sessions, service: ChatService, visitors: Visitors, context: ContextPolicies) -> None:
        self.sessions = sessions
        self.service = service
        self.visitors = visitors
        self.context = context

    async def listing(self, owner: str | None, current_id: str | None, request: gr.Request | None = None) -> str:
        """The chat list as the page shows it: the chats answering now and the stored ones, newest first under
        their date headings in the visitor's time zone, `current_id` marked as the one shown."""
        if not owner:
            return chat_list_html([], None)
        now = datetime.now(UTC)
        listed = with_answering(await self.sessions.list(owner), self.service.answering(owner), now)
        zone = zone_or_utc((getattr(request, "cookies", None) or {}).get(TIME_ZONE_COOKIE))
        return chat_list_html(by_date(listed, now, zone), current_id)

    async def refresh(
        self,
        owner: str | None,
        current_id: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> str:
        """The list after a turn: a new chat gets the title its first prompt gave it."""
        return await self.listing(self.visitors.owner(owner, request, profile), current_id, request)

    async def switch(
        self,
        owner: str | None,
        conversation_id: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> tuple[Any, ...]:
        """Open a conversation (a row, a search result): it is re-read from the store, shown in the pane (the
        chatbot, ChatInterface's copy of it and its value alike) and marked in the list."""
        owner = self.visitors.owner(owner, request, profile)
        if not conversation_id:
            return *shown(gr.skip()), gr.skip(), gr.skip(), "", gr.skip(), gr.skip()
        try:
            opened = await self.sessions.open(owner or "", conversation_id)
        except ConversationUnavailable as problem:
            damaged = await self.sessions.summary(owner, conversation_id)
            if damaged is None:
                fresh = new_conversation_id()
                return *shown([]), fresh, "", f"⚠️ {problem}", gr.skip(), await self.listing(owner, fresh, request)
            # Damaged but still this visitor's: it stays the current chat, so its menu's Delete and Export reach it.
            listed = await self.listing(owner, conversation_id, request)
            return *shown([]), conversation_id, "", f"⚠️ {problem}", gr.skip(), listed
        policy = (await self.context.policy_for(owner or "", conversation_id)).kind
        listed = await self.listing(owner, conversation_id, request)
        return *shown(opened.bubbles), opened.conversation_id, "", "", policy, listed

    async def open_picked(
        self, owner: str | None, picked: gr.EventData, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, ...]:
        """A row of the list was clicked."""
        return await self.switch(owner, _picked(picked, "id"), request, profile)

    async def remember_policy(
        self,
        owner: str | None,
        conversation_id: str | None,
        policy: str,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> None:
        """Keep a conversation's context policy as soon as it is picked (a new chat takes it with its first turn)."""
        owner = self.visitors.owner(owner, request, profile)
        if owner and conversation_id:
            await self.context.remember(owner, conversation_id, policy)

    async def new_chat(
        self, owner: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, ...]:
        """An empty chat with its id already chosen, so a Stop pressed during its first answer finds it."""
        owner = self.visitors.owner(owner, request, profile)
        return *shown([]), new_conversation_id(), "", await self.listing(owner, None, request), ""

    async def open_from_url(
        self, token: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, ...]:
        """On page load: the chat named in the address (`?c=<id>`) if it is this visitor's, else a new one.

        Someone else's id, a deleted one and a made-up one all give the same new chat: no hint that it exists.
        """
        owner = self.visitors.owner(token, request, profile)
        wanted = dict(getattr(request, "query_params", None) or {}).get("c")
        if (
            owner
            and wanted
            and self.service.live_turn(owner, wanted)
            and not await self.sessions.summary(owner, wanted)
        ):
            # A new chat whose first answer is still being written: nothing is stored yet, it streams in next.
            return [], wanted, gr.skip(), await self.listing(owner, wanted, request)
        if owner and wanted:
            try:
                opened = await self.sessions.open(owner, wanted)
            except ConversationUnavailable:
                pass
            else:
                policy = (await self.context.policy_for(owner, wanted)).kind
                return opened.bubbles, wanted, policy, await self.listing(owner, wanted, request)
        return [], new_conversation_id(), gr.skip(), await self.listing(owner, None, request)

    def model_menu(self) -> list[tuple[str, str]]:
        """The models the operator offers; one that cannot run says so in its label."""
        menu = []
        for name in model_choices(self.service.models.settings):
            problem = self.service.models.visitor_problem(name)
            menu.append((f"{name} (unavailable: {problem})" if problem else name, name))
        return menu

    def model_notice(self, model_name: str) -> str:
        problem = self.service.models.visitor_problem(model_name)
        return f"⚠️ **{model_name}** cannot answer here: {problem} Pick another model." if problem else ""

    async def rename(
        self,
        owner: str | None,
        current_id: str | None,
        picked: gr.EventData,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> tuple[Any, str]:
        """A row's Rename: the title as kept, in the list, and a sentence when it had to be cut or cleaned."""
        owner = self.visitors.owner(owner, request, profile)
        conversation_id, title = _picked(picked, "id"), _picked(picked, "title") or ""
        if not conversation_id:
            return gr.skip(), ""
        try:
            kept = await self.sessions.rename(owner or "", conversation_id, title)
        except ConversationUnavailable as problem:
            return await self.listing(owner, current_id, request), f"⚠️ {problem}"
        listed = await self.listing(owner, current_id, request)
        if kept_as_typed(title, kept):
            return listed, "Renamed."
        return (
            listed,
            f"Renamed, shortened to fit: a title is one line of at most {MAX_TITLE_CHARS} visible characters.",
        )

    async def delete(
        self,
        owner: str | None,
        current_id: str | None,
        picked: gr.EventData,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> tuple[Any, ...]:
        """A row's Delete, once confirmed in the row: that row's chat goes for good. Deleting the chat shown
        empties the pane into a new chat; deleting another leaves the pane as it is. The search results are
        cleared too, so the deleted chat is not offered again."""
        owner = self.visitors.owner(owner, request, profile)
        conversation_id = _picked(picked, "id")
        unchanged = (*shown(gr.skip()), gr.skip(), gr.skip())
        if not conversation_id:
            return *unchanged, gr.skip(), gr.skip(), gr.skip(), "Nothing to delete."
        try:
            await self.service.stop_and_wait(owner or "", conversation_id)  # its answer's save must not bring it back
            await self.sessions.delete(owner or "", conversation_id)
        except ConversationUnavailable as problem:
            listed = await self.listing(owner, current_id, request)
            return *unchanged, listed, gr.skip(), gr.skip(), f"⚠️ {problem}"
        no_results = gr.update(choices=[], value=None, visible=False)
        if conversation_id == current_id:
            fresh = new_conversation_id()
            return *shown([]), fresh, "", await self.listing(owner, fresh, request), no_results, "", "Deleted."
        return *unchanged, await self.listing(owner, current_id, request), no_results, "", "Deleted."

    async def search(
        self, owner: str | None, query: str, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> Any:
        owner = self.visitors.owner(owner, request, profile)
        if not owner or not (query or "").strip():
            return gr.update(choices=[], value=None, visible=False)
        hits = await self.sessions.search(owner, query)
        choices = [(f"{hit.title} — {hit.snippet}", hit.conversation_id) for hit in hits]
        label = f"{len(hits)} conversation{'s' if len(hits) != 1 else ''} found"
        return gr.update(choices=choices, value=None, visible=True, label=label)

    async def export_picked(
        self, owner: str | None, picked: gr.EventData, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, str]:
        """A row's Export JSON or Export Markdown."""
        kind = "md" if _picked(picked, "kind") == "md" else "json"
        return await self._export(self.visitors.owner(owner, request, profile), _picked(picked, "id"), kind)

    async def export_json(
        self,
        owner: str | None,
        conversation_id: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> tuple[Any, str]:
        return await self._export(self.visitors.owner(owner, request, profile), conversation_id, "json")

    async def export_markdown(
        self,
        owner: str | None,
        conversation_id: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> tuple[Any, str]:
        return await self._export(self.visitors.owner(owner, request, profile), conversation_id, "md")

    async def _export(self, owner: str | None, conversation_id: str | None, kind: str) -> tuple[Any, str]:
        """The file goes to the browser in the event's own answer, which only this visitor receives:
        no copy on the server's disk, no URL another visitor could fetch."""
        if not conversation_id:
            return gr.skip(), "Nothing to export yet."
        try:
            export = await self.sessions.export(owner or "", conversation_id, kind)
        except ConversationUnavailable as problem:
            return gr.skip(), f"⚠️ {problem}"
        payload = {"filename": export.filename, "type": export.media_type, "text": export.text}
        return payload, f"Downloading {export.filename}"

    async def import_file(
        self, owner: str | None, upload: Any, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, ...]:
        owner = self.visitors.owner(owner, request, profile)
        if not owner or upload is None:
            return *shown(gr.skip()), gr.skip(), gr.skip(), "Nothing was imported."
        path = Path(upload if isinstance(upload, str) else getattr(upload, "name", ""))
        try:
            self.sessions.check_import_size(path.stat().st_size)  # before reading it whole
            imported = await self.sessions.import_json(owner, path.read_bytes())
        except ImportRejected as problem:
            return *shown(gr.skip()), gr.skip(), gr.skip(), f"⚠️ {problem}"
        opened = await self.sessions.open(owner, imported.conversation_id)
        listed = await self.listing(owner, imported.conversation_id, request)
        return *shown(opened.bubbles), imported.conversation_id, listed, imported.notice


def shown(bubbles: Any) -> tuple[Any, Any]:
    """A chat shown in the pane: the chatbot, and ChatInterface's copy of it (the next Send's history)."""
    return bubbles, bubbles


def _picked(picked: gr.EventData | None, key: str) -> str | None:
    """A string the page's list script sent with its event (anyone can send anything: checked, never trusted)."""
    data = getattr(picked, "_data", None)
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def session_label(summary: SessionSummary) -> str:
    """How a stored recipe is listed: its title and how long ago it changed."""
    return f"{summary.title} · {relative_time(summary.updated_at)}"


def chat_list_html(groups: list[tuple[str, list[SessionSummary]]], current_id: str | None) -> str:
    """The chat list: a heading per date group, a row per chat (its link, its ⋯ menu, its delete question).

    Titles are the visitor's own text (or a model's, or an imported file's): always escaped, never markup."""
    # The row the page script copies for a chat whose first message was just sent (listed before the server's next
    # list arrives, as the common chat apps do).
    now = datetime.now(UTC)
    blank = f'<template class="chat-row-template">{_chat_row(SessionSummary("", "", now, now, None), True)}</template>'
    parts = ['<nav class="chat-list" aria-label="Your chats">', blank]
    if not groups:
        parts.append('<p class="chat-list-empty">Your chats will be listed here.</p>')
    for heading, summaries in groups:
        parts.append(f'<h3 class="chat-group">{escape(heading)}</h3><ul class="chat-rows">')
        parts.extend(_chat_row(summary, summary.conversation_id == current_id) for summary in summaries)
        parts.append("</ul>")
    parts.append("</nav>")
    return "".join(parts)


def _chat_row(summary: SessionSummary, current: bool) -> str:
    chat_id, title = escape(summary.conversation_id, quote=True), escape(summary.title, quote=True)
    marked = ' aria-current="page"' if current else ""
    return (
        f'<li class="chat-row" data-id="{chat_id}"{marked}>'
        f'<a class="chat-open" href="?c={chat_id}" title="{title}">{title}</a>'
        f'<button type="button" class="chat-menu-button" aria-label="Options for {title}"'
        ' aria-haspopup="menu" aria-expanded="false">⋯</button>'
        '<div class="chat-menu" role="menu" hidden>'
        '<button type="button" role="menuitem" data-action="rename">Rename</button>'
        '<button type="button" role="menuitem" data-action="export-json">Export JSON</button>'
        '<button type="button" role="menuitem" data-action="export-md">Export Markdown</button>'
        '<button type="button" role="menuitem" data-action="delete" class="chat-danger">Delete…</button>'
        "</div>"
        '<div class="chat-confirm" role="group" hidden>'
        f'<span class="chat-confirm-text">Delete “{title}” for good?</span>'
        '<button type="button" data-action="confirm-delete" class="chat-danger">Delete</button>'
        '<button type="button" data-action="cancel-delete">Cancel</button>'
        "</div></li>"
    )


@dataclass(frozen=True)
class SidebarParts:
    """The sidebar's components, for the page to wire to the chat they open."""

    new_chat: gr.Button
    search: gr.Textbox
    results: gr.Radio
    sessions: gr.HTML
    """The chat list: `select` opens a row's chat, `submit` renames it, `download` exports it, `delete` deletes it
    (each event's data names the row: `{"id": ...}`)."""
    export_payload: gr.JSON
    import_button: gr.UploadButton
    notice: gr.Markdown


def sidebar(settings: Settings) -> SidebarParts:
    """New chat, search, what the last action did, the chats (newest first under date headings), import."""
    with gr.Sidebar(label="Conversations", width=300, elem_id="sidebar"):
        if settings.storage_notice:
            gr.Markdown(f"⚠️ {settings.storage_notice}", elem_id="storage-notice")
        if settings.hf_login:
            gr.LoginButton(size="sm")
        new_chat = gr.Button("＋ New chat", variant="primary", elem_id="new-chat")
        search = gr.Textbox(
            placeholder="Search your conversations",
            label="Search your conversations",
            show_label=False,
            elem_id="search",
        )
        results = gr.Radio([], label="Found", visible=False, elem_id="search-results")
        sidebar_notice = gr.Markdown(elem_id="sidebar-notice")
        session_list = gr.HTML(chat_list_html([], None), js_on_load=CHAT_LIST_SCRIPT, elem_id="sessions")
        export_payload = gr.JSON(visible=False, elem_id="export-payload")
        import_button = gr.UploadButton("Import JSON", file_types=[".json"], size="sm", elem_id="import")
    return SidebarParts(new_chat, search, results, session_list, export_payload, import_button, sidebar_notice)
