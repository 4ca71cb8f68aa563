"""Page layout that Gradio's components do not set themselves: CSS and small page scripts."""

from __future__ import annotations

from chat.identity import TIME_ZONE_COOKIE

# The chat fills the window under a one-line header, so the message box is on screen at first load
# (1280x800 and 390x844 alike); the sidebar's toggle is a 44 px target.
CSS = """
#header { align-items: center; gap: 8px; flex-wrap: nowrap; }
#header #app-title { flex: 1 1 auto; min-width: 0; }
#header #app-title h3 { margin: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#header #model { flex: 0 1 260px; }
#model-notice:empty, #model-notice:has(.prose:empty) { display: none; }
#chat-tab { padding-top: 4px; }
#chat { height: calc(100dvh - 250px) !important; min-height: 240px; flex-grow: 1; }
/* Just above the message box, wherever the page is scrolled: the box sits at the bottom of the window. */
#queued-note, #prompt-note { display: none; }
#queued-note.visible, #prompt-note.visible {
    display: block; position: fixed; bottom: 116px; right: 24px; z-index: 50; max-width: min(520px, 80vw);
    padding: 6px 12px; border-radius: 8px; font-size: 0.9em;
    background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary);
    box-shadow: var(--shadow-drop-lg);
}
#prompt-note.visible { border-color: var(--error-border-color); color: var(--error-text-color); }
/* Gradio's file table gives the size column the room and hides the name: the name comes first. */
#download td.filename { width: 100%; }
#download td.download { width: auto; min-width: 0; padding-left: 8px; }
#usage { font-size: 0.85em; min-height: 1.2em; }
/* The usage line sits right under the message box, above the ChatInterface's Context accordion: below it, it
   was under the fold at 1280x800 (y=817). The ChatInterface's column lends its children to the tab's column,
   where the panels under the box come after the usage line. */
#chat-tab .column:has(> #context) { display: contents; }
#context, #inspector-box, #tools-box { order: 1; }
.sidebar .toggle-button, .sidebar-toggle, button[aria-label='Toggle Sidebar'] {
    min-width: 44px !important; min-height: 44px !important;
}
@media (max-width: 767px) {
    #chat { height: calc(100dvh - 230px) !important; }
    #header { padding-left: 40px; }  /* clear of the sidebar toggle */
    #queued-note.visible, #prompt-note.visible { bottom: 96px; right: 12px; }
    .gradio-container { padding-left: 4px !important; padding-right: 4px !important; }
}
"""

PHONE = "window.matchMedia('(max-width: 767px)').matches"

# On a phone the sidebar covers the chat: it starts closed, and closes again once a chat is picked.
# The visitor's time zone, for the chat's date and time tool: the server has no other way to know it.
SEND_TIME_ZONE = f"""(...args) => {{
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    // IANA names (Area/City_Name) are valid cookie values as they are; the server checks them anyway.
    if (zone) document.cookie = "{TIME_ZONE_COOKIE}=" + zone + "; path=/; SameSite=Lax";
    return args;
}}"""

PHONE_SIDEBAR = f"""(...args) => {{
    if ({PHONE}) {{
        const sidebar = document.querySelector('.sidebar');
        const toggle = sidebar && sidebar.querySelector('.toggle-button, button');
        if (sidebar && sidebar.classList.contains('open') && toggle) toggle.click();
    }}
    return args;
}}"""

# A chat picked from the sidebar (or a new one) is shown: the Chat tab comes forward, and on a phone
# the sidebar gets out of the way.
SHOW_PICKED_CHAT = f"""(...args) => {{
    const chatTab = document.querySelector('#chat-tab-button');
    if (chatTab && chatTab.getAttribute('aria-selected') !== 'true') chatTab.click();
    return ({PHONE_SIDEBAR})(...args);
}}"""

# Without the armour (ui/gradio_armour.py) switching chats cannot cancel the ChatInterface's answer events:
# it presses the answer's Stop first, whose cancel Gradio keeps.
STOP_THEN_SHOW_PICKED_CHAT = f"""(...args) => {{
    document.querySelector('#prompt .stop-button')?.click();
    return ({SHOW_PICKED_CHAT})(...args);
}}"""

# The address names the open chat (`?c=<id>`), so a reload or a bookmark reopens it.
SHOW_CONVERSATION_IN_URL = """(id) => {
    const url = new URL(window.location.href);
    if (id) url.searchParams.set('c', id); else url.searchParams.delete('c');
    window.history.replaceState(null, '', url);
}"""

# The browser saves the export from the event's answer itself: the server keeps no file and no URL to one.
SAVE_EXPORT = """(file) => {
    if (!file || !file.filename) return;
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([file.text], {type: file.type + ';charset=utf-8'}));
    link.download = file.filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}"""
