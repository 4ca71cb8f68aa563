"""The sidebar: a visitor's conversations. Each handler passes the owner down; an id alone opens nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from chat.config import Settings
from chat.errors import ConversationUnavailable
from chat.models import model_choices
from chat.render import Bubble
from chat.sessions import MAX_TITLE_CHARS, ImportRejected, Sessions, SessionSummary, kept_as_typed, relative_time
from chat.turns import ChatService
from chat.wings.context_policies import ContextPolicies
from ui.visitors import Visitors, new_conversation_id

Choices = list[tuple[str, str]]

ASK_TO_DELETE = "Delete…"
KEEP_IT = "Keep it"
CONFIRM_DELETE = "Delete this conversation for good"


class SessionHandlers:
    def __init__(self, sessions: Sessions, service: ChatService, visitors: Visitors, context: ContextPolicies) -> None:
        self.sessions = sessions
        self.service = service
        self.visitors = visitors
        self.context = context

    async def session_choices(self, owner: str | None) -> Choices:
        if not owner:
            return []
        return [(session_label(summary), summary.conversation_id) for summary in await self.sessions.list(owner)]

    async def refresh(
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
        listed, title = await self._listing(self.visitors.owner(owner, request, profile), current_id)
        return listed, title if answered_id == current_id and not shown_title else gr.skip()

    async def _listing(self, owner: str | None, conversation_id: str | None) -> tuple[Any, Any]:
        choices = await self.session_choices(owner)
        current = conversation_id if conversation_id in {value for _, value in choices} else None
        summary = await self.sessions.summary(owner, current) if current else None
        return gr.update(choices=choices, value=current), summary.title if summary else ""

    async def switch(
        self,
        owner: str | None,
        conversation_id: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> tuple[Any, ...]:
        """Open a conversation from the list: the chat is re-read from the store, and it is the one highlighted."""
        owner = self.visitors.owner(owner, request, profile)
        if not conversation_id:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), "", gr.skip(), gr.skip()
        try:
            opened = await self.sessions.open(owner or "", conversation_id)
        except ConversationUnavailable as problem:
            damaged = await self.sessions.summary(owner, conversation_id)
            if damaged is None:
                return [], new_conversation_id(), "", "", f"⚠️ {problem}", gr.skip(), gr.skip()
            # Damaged but still this visitor's: it stays the current chat, so Delete and Export reach it.
            return [], conversation_id, damaged.title, "", f"⚠️ {problem}", gr.skip(), gr.update(value=conversation_id)
        policy = (await self.context.policy_for(owner or "", conversation_id)).kind
        listed = gr.update(choices=await self.session_choices(owner), value=conversation_id)
        return opened.bubbles, opened.conversation_id, opened.title, "", "", policy, listed

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
        choices = await self.session_choices(owner)
        listed = wanted in {value for _, value in choices}
        if owner and wanted and not listed and self.service.live_turn(owner, wanted):
            # A new chat whose first answer is still being written: nothing is stored yet, it streams in next.
            return [], wanted, "", gr.skip(), gr.update(choices=choices, value=None)
        if owner and wanted and listed:
            try:
                opened = await self.sessions.open(owner, wanted)
            except ConversationUnavailable:
                pass
            else:
                policy = (await self.context.policy_for(owner, wanted)).kind
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

    async def rename(
        self,
        owner: str | None,
        conversation_id: str | None,
        title: str,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> tuple[Any, str, str]:
        owner = self.visitors.owner(owner, request, profile)
        if not conversation_id:
            return gr.skip(), "", "Send a message first: a new chat is named after it."
        try:
            kept = await self.sessions.rename(owner or "", conversation_id, title)
        except ConversationUnavailable as problem:
            return gr.skip(), gr.skip(), f"⚠️ {problem}"
        choices, _ = await self._listing(owner, conversation_id)
        if kept_as_typed(title, kept):
            return choices, kept, "Renamed."
        return (
            choices,
            kept,
            f"Renamed, shortened to fit: a title is one line of at most {MAX_TITLE_CHARS} visible characters.",
        )

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
        self,
        owner: str | None,
        conversation_id: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
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
        sessions = gr.update(choices=await self.session_choices(owner), value=None)
        return [], None, sessions, "", hidden, no_results, "", "Deleted."

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
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), "Nothing was imported."
        path = Path(upload if isinstance(upload, str) else getattr(upload, "name", ""))
        try:
            self.sessions.check_import_size(path.stat().st_size)  # before reading it whole
            imported = await self.sessions.import_json(owner, path.read_bytes())
        except ImportRejected as problem:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), f"⚠️ {problem}"
        opened = await self.sessions.open(owner, imported.conversation_id)
        choices = gr.update(choices=await self.session_choices(owner), value=imported.conversation_id)
        return opened.bubbles, imported.conversation_id, choices, opened.title, imported.notice


def session_label(summary: SessionSummary) -> str:
    """How a stored conversation or recipe is listed: its title and how long ago it changed."""
    return f"{summary.title} · {relative_time(summary.updated_at)}"


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
    export_payload: gr.JSON
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
            export_payload = gr.JSON(visible=False, elem_id="export-payload")
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
        export_payload,
        delete,
        confirm_delete,
        import_button,
        sidebar_notice,
    )
