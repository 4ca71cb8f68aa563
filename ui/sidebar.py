"""The sidebar: a visitor's conversations. Each handler passes the owner down; an id alone opens nothing."""

from __future__ import annotations

import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from chat.config import Settings
from chat.errors import ConversationUnavailable
from chat.models import model_choices
from chat.render import Bubble
from chat.sessions import MAX_TITLE_CHARS, ImportRejected, Sessions, relative_time
from chat.turns import ChatService
from storage.sqlite_store import SessionSummary
from ui.visitors import Visitors, new_conversation_id

Choices = list[tuple[str, str]]

ASK_TO_DELETE = "Delete…"
KEEP_IT = "Keep it"
CONFIRM_DELETE = "Delete this conversation for good"


class SessionHandlers:
    def __init__(self, sessions: Sessions, service: ChatService, visitors: Visitors) -> None:
        self.sessions = sessions
        self.service = service
        self.visitors = visitors
        self._exports = Path(tempfile.mkdtemp(prefix="chat-exports-"))

    def session_choices(self, owner: str | None) -> Choices:
        if not owner:
            return []
        return [(session_label(summary), summary.conversation_id) for summary in self.sessions.list(owner)]

    def refresh(
        self,
        owner: str | None,
        answered_id: str | None,
        current_id: str | None,
        shown_title: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> tuple[Any, Any]:
        """The sidebar after a turn: the list (newest first, the current chat selected), and the title a
        chat's first turn just gave it. `answered_id` is the chat the page showed when the turn ended,
        `current_id` the one it shows now: a refresh that lands after a switch, or into a title being
        typed, leaves the title box alone."""
        listed, title = self._listing(self.visitors.owner(owner, request, profile), current_id)
        return listed, title if answered_id == current_id and not shown_title else gr.skip()

    def _listing(self, owner: str | None, conversation_id: str | None) -> tuple[Any, Any]:
        choices = self.session_choices(owner)
        current = conversation_id if conversation_id in {value for _, value in choices} else None
        title = self.sessions.store.session(conversation_id, owner).title if current and owner else ""
        return gr.update(choices=choices, value=current), title

    async def switch(
        self, owner: str | None, conversation_id: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, ...]:
        """Open a conversation from the list: the chat is re-read from the store, and it is the one highlighted."""
        owner = self.visitors.owner(owner, request, profile)
        if not conversation_id:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), "", gr.skip(), gr.skip()
        try:
            opened = await self.sessions.open(owner or "", conversation_id)
        except ConversationUnavailable as problem:
            damaged = self.sessions.store.session(conversation_id, owner or "")
            if damaged is None:
                return [], new_conversation_id(), "", "", f"⚠️ {problem}", gr.skip(), gr.skip()
            # Damaged but still this visitor's: it stays the current chat, so Delete and Export reach it.
            return [], conversation_id, damaged.title, "", f"⚠️ {problem}", gr.skip(), gr.update(value=conversation_id)
        policy = self.service.context_policy(owner or "", conversation_id).kind
        listed = gr.update(choices=self.session_choices(owner), value=conversation_id)
        return opened.bubbles, opened.conversation_id, opened.title, "", "", policy, listed

    def remember_policy(
        self, owner: str | None, conversation_id: str | None, policy: str, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> None:
        """Keep a conversation's context policy as soon as it is picked (a new chat takes it with its first turn)."""
        owner = self.visitors.owner(owner, request, profile)
        if owner and conversation_id and policy in self.service.context_choices:
            self.sessions.store.set_context_policy(conversation_id, owner, policy)

    def new_chat(self) -> tuple[list[Bubble], str, str, str, Any, str]:
        """An empty chat with its id already chosen, so a Stop pressed during its first answer finds it."""
        return [], new_conversation_id(), "", "", gr.update(value=None), ""

    async def open_from_url(
        self, token: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, ...]:
        """On page load: the chat named in the address (`?c=<id>`) if it is this visitor's, else a new one.

        Someone else's id, a deleted one and a made-up one all give the same new chat: no hint that it exists.
        """
        owner = self.visitors.owner(token, request, profile)
        wanted = dict(getattr(request, "query_params", None) or {}).get("c")
        choices = self.session_choices(owner)
        if owner and wanted and wanted in {value for _, value in choices}:
            try:
                opened = await self.sessions.open(owner, wanted)
            except ConversationUnavailable:
                pass
            else:
                policy = self.service.context_policy(owner, wanted).kind
                return opened.bubbles, wanted, opened.title, policy, gr.update(choices=choices, value=wanted)
        return [], new_conversation_id(), "", gr.skip(), gr.update(choices=choices, value=None)

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

    def rename(
        self, owner: str | None, conversation_id: str | None, title: str, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, str, str]:
        owner = self.visitors.owner(owner, request, profile)
        if not conversation_id:
            return gr.skip(), "", "Send a message first: a new chat is named after it."
        try:
            kept = self.sessions.rename(owner or "", conversation_id, title)
        except ConversationUnavailable as problem:
            return gr.skip(), gr.skip(), f"⚠️ {problem}"
        choices, _ = self._listing(owner, conversation_id)
        if kept == " ".join(title.split()):
            return choices, kept, "Renamed."
        return choices, kept, f"Renamed, shortened to fit: a title is one line of at most {MAX_TITLE_CHARS} visible characters."

    def ask_to_delete(self, conversation_id: str | None, asked: str | None) -> tuple[Any, Any, str]:
        """Delete… turns into "Keep it" and the confirmation appears right under it; a second press keeps it."""
        if not conversation_id:
            return gr.skip(), gr.update(visible=False), "Nothing to delete yet."
        if asked == KEEP_IT:
            return gr.update(value=ASK_TO_DELETE), gr.update(visible=False), ""
        return gr.update(value=KEEP_IT), gr.update(visible=True), ""

    def put_delete_away(self) -> tuple[Any, Any]:
        """Another chat shown: a confirmation asked for the previous one must not delete this one."""
        return gr.update(value=ASK_TO_DELETE), gr.update(visible=False)

    async def delete(
        self, owner: str | None, conversation_id: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, ...]:
        """Delete for good; the search results are cleared too, so the deleted chat is not offered again."""
        owner = self.visitors.owner(owner, request, profile)
        hidden = gr.update(visible=False)
        if not conversation_id:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), hidden, gr.skip(), gr.skip(), ""
        try:
            await self.sessions.delete(owner or "", conversation_id)
        except ConversationUnavailable as problem:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), hidden, gr.skip(), gr.skip(), f"⚠️ {problem}"
        no_results = gr.update(choices=[], value=None, visible=False)
        sessions = gr.update(choices=self.session_choices(owner), value=None)
        return [], None, sessions, "", hidden, no_results, "", "Deleted."

    def search(self, owner: str | None, query: str, request: gr.Request, profile: gr.OAuthProfile | None = None) -> Any:
        owner = self.visitors.owner(owner, request, profile)
        if not owner or not (query or "").strip():
            return gr.update(choices=[], value=None, visible=False)
        hits = self.sessions.search(owner, query)
        choices = [(f"{hit.title} — {hit.snippet}", hit.conversation_id) for hit in hits]
        label = f"{len(hits)} conversation{'s' if len(hits) != 1 else ''} found"
        return gr.update(choices=choices, value=None, visible=True, label=label)

    async def export_json(
        self, owner: str | None, conversation_id: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, str]:
        owner = self.visitors.owner(owner, request, profile)
        return await self._export(owner, conversation_id, "json")

    async def export_markdown(
        self, owner: str | None, conversation_id: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, str]:
        owner = self.visitors.owner(owner, request, profile)
        return await self._export(owner, conversation_id, "md")

    async def _export(self, owner: str | None, conversation_id: str | None, kind: str) -> tuple[Any, str]:
        if not conversation_id:
            return gr.update(visible=False), "Nothing to export yet."
        try:
            if kind == "json":
                text = await self.sessions.export_json(owner or "", conversation_id)
            else:
                text = await self.sessions.export_markdown(owner or "", conversation_id)
        except ConversationUnavailable as problem:
            return gr.update(visible=False), f"⚠️ {problem}"
        title = self.sessions.store.session(conversation_id, owner or "")
        stem = _file_stem(title.title if title else "conversation")
        folder = Path(tempfile.mkdtemp(dir=self._exports))
        path = folder / f"{stem}.{kind}"
        path.write_text(text, encoding="utf-8")
        return gr.update(value=str(path), visible=True), ""

    async def import_file(
        self, owner: str | None, upload: Any, request: gr.Request, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, ...]:
        owner = self.visitors.owner(owner, request, profile)
        if not owner or upload is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), "Nothing was imported."
        path = Path(upload if isinstance(upload, str) else getattr(upload, "name", ""))
        try:
            conversation_id = await self.sessions.import_json(owner, path.read_bytes())
        except ImportRejected as problem:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), f"⚠️ {problem}"
        opened = await self.sessions.open(owner, conversation_id)
        choices = gr.update(choices=self.session_choices(owner), value=conversation_id)
        return opened.bubbles, conversation_id, choices, opened.title, f"Imported {len(opened.messages)} messages."


def session_label(summary: SessionSummary) -> str:
    """How a stored conversation or recipe is listed: its title and how long ago it changed."""
    return f"{summary.title} · {relative_time(summary.updated_at)}"


def _file_stem(title: str, columns: int = 28) -> str:
    """A download's name from a title: words joined by '-', short enough to show whole in the sidebar.

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


@dataclass(frozen=True)
class SidebarParts:
    """The sidebar's components, for the page to wire to the chat they open."""

    new_chat: gr.Button
    search: gr.Textbox
    results: gr.Radio
    sessions: gr.Radio
    title: gr.Textbox
    rename: gr.Button
    export_json: gr.Button
    export_markdown: gr.Button
    download: gr.File
    delete: gr.Button
    confirm_delete: gr.Button
    import_button: gr.UploadButton
    notice: gr.Markdown


def sidebar(settings: Settings) -> SidebarParts:
    """Conversations, newest first, with search, and the tools for the one shown (rename, export, delete)."""
    with gr.Sidebar(label="Conversations", width=300, elem_id="sidebar"):
        if settings.storage_notice:
            gr.Markdown(f"⚠️ {settings.storage_notice}", elem_id="storage-notice")
        if settings.hf_login:
            gr.LoginButton(size="sm")
        new_chat = gr.Button("＋ New chat", variant="primary", elem_id="new-chat")
        search = gr.Textbox(placeholder="Search your conversations", show_label=False, elem_id="search")
        results = gr.Radio([], label="Found", visible=False, elem_id="search-results")
        session_list = gr.Radio([], label="Your conversations", elem_id="sessions")
        with gr.Accordion("This conversation", open=False, elem_id="conversation-tools"):
            title = gr.Textbox(label="Title", max_lines=1, elem_id="title")
            rename = gr.Button("Rename", size="sm", elem_id="rename")
            with gr.Row():
                export_json = gr.Button("Export JSON", size="sm", elem_id="export-json")
                export_markdown = gr.Button("Export Markdown", size="sm", elem_id="export-md")
            download = gr.File(label="Download", visible=False, interactive=False, elem_id="download")
            delete = gr.Button(ASK_TO_DELETE, variant="stop", size="sm", elem_id="delete")
            confirm_delete = gr.Button(
                CONFIRM_DELETE, variant="stop", size="sm", visible=False, elem_id="confirm-delete"
            )
        import_button = gr.UploadButton("Import JSON", file_types=[".json"], size="sm", elem_id="import")
        sidebar_notice = gr.Markdown(elem_id="sidebar-notice")
    return SidebarParts(
        new_chat,
        search,
        results,
        session_list,
        title,
        rename,
        export_json,
        export_markdown,
        download,
        delete,
        confirm_delete,
        import_button,
        sidebar_notice,
    )
