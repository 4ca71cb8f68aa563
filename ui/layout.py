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
/* The chat list: date headings, one row per chat with its own ⋯ menu (ui/sidebar.py draws it). */
#sessions .chat-list { display: flex; flex-direction: column; gap: 2px; }
#sessions .chat-group {
    margin: 14px 8px 4px; font-size: 0.75rem; font-weight: 600; color: var(--body-text-color-subdued);
    text-transform: none; letter-spacing: 0.01em;
}
#sessions .chat-group:first-of-type { margin-top: 4px; }
#sessions .chat-rows { list-style: none; margin: 0; padding: 0; }
#sessions .chat-row {
    position: relative; display: flex; align-items: center; flex-wrap: wrap; margin: 0; padding: 0;
    border-radius: 8px;
}
#sessions .chat-row::before { content: none; }
#sessions .chat-row:hover, #sessions .chat-row:focus-within { background: var(--background-fill-secondary); }
#sessions .chat-row[aria-current='page'] { background: var(--color-accent-soft); }
#sessions .chat-open {
    display: block; flex: 1 1 0; min-width: 0; padding: 8px 4px 8px 10px; color: var(--body-text-color);
    text-align: left; text-decoration: none; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
    font-size: 0.9rem; font-weight: 400; line-height: 1.3;
}
#sessions .chat-row[aria-current='page'] .chat-open { font-weight: 600; }
#sessions .chat-title-input {
    flex: 1 1 0; min-width: 0; margin: 3px 4px 3px 6px; padding: 4px 6px; font: inherit; font-size: 0.9rem;
    border: 1px solid var(--color-accent); border-radius: 6px; background: var(--input-background-fill);
    color: var(--body-text-color);
}
#sessions .chat-menu-button {
    flex: 0 0 auto; width: 32px; height: 32px; margin-right: 2px; border: 0; border-radius: 6px;
    background: transparent; color: var(--body-text-color-subdued); font-size: 1.1rem; line-height: 1;
    cursor: pointer; opacity: 0;
}
#sessions .chat-row:hover .chat-menu-button, #sessions .chat-row:focus-within .chat-menu-button,
#sessions .chat-row[aria-current='page'] .chat-menu-button, #sessions .chat-menu-button[aria-expanded='true'] {
    opacity: 1;
}
#sessions .chat-menu-button:hover, #sessions .chat-menu-button[aria-expanded='true'] {
    background: var(--background-fill-primary); color: var(--body-text-color);
}
#sessions .chat-menu {
    position: absolute; top: calc(100% - 2px); right: 4px; z-index: 60; min-width: 170px; padding: 4px;
    display: flex; flex-direction: column; border-radius: 10px; background: var(--background-fill-primary);
    border: 1px solid var(--border-color-primary); box-shadow: var(--shadow-drop-lg);
}
#sessions .chat-menu[hidden], #sessions .chat-confirm[hidden] { display: none; }
#sessions .chat-menu button, #sessions .chat-confirm button {
    padding: 8px 10px; border: 0; border-radius: 6px; background: transparent; color: var(--body-text-color);
    text-align: left; font-size: 0.875rem; font-weight: 400; line-height: 1.3; cursor: pointer;
}
#sessions .chat-menu button:hover, #sessions .chat-menu button:focus-visible { background: var(--background-fill-secondary); }
#sessions .chat-menu .chat-danger { color: var(--error-text-color); }
#sessions .chat-confirm {
    flex: 1 0 100%; display: flex; flex-wrap: wrap; align-items: center; gap: 6px; padding: 0 8px 8px 10px;
    font-size: 0.85rem; text-align: left;
}
#sessions .chat-row:has(.chat-confirm:not([hidden])) { background: var(--background-fill-secondary); }
#sessions .chat-confirm-text { flex: 1 0 100%; overflow-wrap: anywhere; }
#sessions .chat-confirm button { border: 1px solid var(--border-color-primary); padding: 6px 12px; }
#sessions .chat-confirm .chat-danger {
    background: var(--button-cancel-background-fill); color: var(--button-cancel-text-color);
    border-color: transparent;
}
#sessions .chat-row.deleting { opacity: 0.5; pointer-events: none; }
#sessions .chat-list-empty { margin: 8px 10px; color: var(--body-text-color-subdued); font-size: 0.85rem; }
#sidebar-notice:empty, #sidebar-notice:has(.prose:empty) { display: none; }
/* A chat is deleted from its row's menu: the chat's own trash button only ever started a new chat. */
#chat button[aria-label='Clear'], #chat button[title='Clear'] { display: none !important; }
@media (hover: none) {
    #sessions .chat-menu-button { opacity: 1; width: 44px; height: 44px; }  /* no hover on a phone */
    #sessions .chat-open { padding-top: 12px; padding-bottom: 12px; }
}
/* Contrast of at least 4.5:1 (WCAG AA, checked by axe-core in tests/test_browser_a11y.py): Gradio's default
   theme writes white on orange-500 (2.8:1) and red-500 (3.8:1), and hints in neutral-400 on white (1.9:1). */
:root {
    --button-primary-background-fill: var(--primary-700);
    --button-primary-background-fill-hover: var(--primary-800);
    --button-cancel-background-fill: #b91c1c;
    --button-cancel-background-fill-hover: #991b1b;
    --body-text-color-subdued: var(--neutral-600);
}
:root.dark, :root .dark {
    --button-primary-background-fill: var(--primary-700);
    --button-primary-background-fill-hover: var(--primary-800);
}
body:not(.dark) [role='tab'].selected { color: var(--primary-700); }
/* Gradio's code highlighting on white is 2-2.8:1: in the light theme the live JSON is in the text colour. */
body:not(.dark) #recipe-json .cm-content span { color: var(--body-text-color); }
/* A step's arguments and results wrap rather than scroll sideways: a region that scrolls needs a keyboard stop. */
#chat pre, #chat pre code { white-space: pre-wrap; overflow-wrap: anywhere; }
#chat pre code { color: var(--body-text-color); }
/* Touch targets of at least 44 px on a phone (Gradio draws a message's actions 18 px square). */
@media (max-width: 767px), (pointer: coarse) {
    #chat button, #prompt button, #chat .thought-group .title[role='button'], [role='tab'] {
        min-width: 44px; min-height: 44px;
    }
}
@media (max-width: 767px) {
    #chat { height: calc(100dvh - 300px) !important; }  /* under two rows of tabs */
    [role='tablist'] { background: none !important; }  /* Gradio's row lines are drawn for 32 px tabs */
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

# The chat list's page script (gr.HTML `js_on_load`: `element` is the list, `trigger` sends one of its events).
# A row's link opens its chat (a plain link with a modifier key or the middle button: another tab); its ⋯ opens
# its menu; Rename edits the title in place (Enter or leaving the box keeps it, Escape does not); Delete… asks in
# the row, and only Delete there sends it. Deleting the chat shown is `clear` (wired to stop its answer first),
# any other `delete`. A chat whose first message was just sent is listed at once from the row template, until
# the server's next list comes.
CHAT_LIST_SCRIPT = """
const root = element;
const rowOf = (node) => (node && node.closest ? node.closest('.chat-row') : null);
const closeMenus = () => root.querySelectorAll('.chat-menu:not([hidden])').forEach((menu) => {
    menu.hidden = true;
    menu.parentElement.querySelector('.chat-menu-button')?.setAttribute('aria-expanded', 'false');
});
const closeQuestions = () => root.querySelectorAll('.chat-confirm:not([hidden])').forEach((question) => {
    question.hidden = true;
});
const rename = (row) => {
    const link = row.querySelector('.chat-open');
    const input = document.createElement('input');
    input.className = 'chat-title-input';
    input.value = link.textContent;
    input.setAttribute('aria-label', 'New title');
    link.hidden = true;
    link.after(input);
    input.focus();
    input.select();
    let done = false;
    const finish = (keep) => {
        if (done) return;
        done = true;
        const title = input.value.trim();
        input.remove();
        link.hidden = false;
        if (keep && title && title !== link.textContent) {
            link.textContent = title;
            link.title = title;
            trigger('submit', {id: row.dataset.id, title});
        }
        link.focus();
    };
    input.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' && !event.isComposing) { event.preventDefault(); finish(true); }
        else if (event.key === 'Escape') { event.preventDefault(); finish(false); }
    });
    input.addEventListener('blur', () => finish(true));
};
root.addEventListener('click', (event) => {
    const row = rowOf(event.target);
    if (!row || !root.contains(row)) return;
    const id = row.dataset.id;
    if (event.target.closest('.chat-open')) {
        if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
        event.preventDefault();
        closeMenus();
        root.querySelectorAll('.chat-row[aria-current]').forEach((other) => other.removeAttribute('aria-current'));
        row.setAttribute('aria-current', 'page');
        trigger('select', {id});
        return;
    }
    const button = event.target.closest('button');
    if (!button) return;
    if (button.classList.contains('chat-menu-button')) {
        const menu = row.querySelector('.chat-menu');
        const opening = menu.hidden;
        closeMenus();
        closeQuestions();
        menu.hidden = !opening;
        button.setAttribute('aria-expanded', String(opening));
        if (opening) menu.querySelector('button')?.focus();
        return;
    }
    const action = button.dataset.action;
    if (!action) return;
    closeMenus();
    if (action === 'rename') rename(row);
    else if (action === 'export-json' || action === 'export-md')
        trigger('download', {id, kind: action === 'export-md' ? 'md' : 'json'});
    else if (action === 'delete') {
        closeQuestions();
        row.querySelector('.chat-confirm').hidden = false;
        row.querySelector("[data-action='cancel-delete']").focus();
    } else if (action === 'cancel-delete') {
        row.querySelector('.chat-confirm').hidden = true;
        row.querySelector('.chat-menu-button').focus();
    } else if (action === 'confirm-delete') {
        row.classList.add('deleting');
        trigger(row.getAttribute('aria-current') === 'page' ? 'clear' : 'delete', {id});
    }
});
root.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    const row = rowOf(event.target);
    closeMenus();
    closeQuestions();
    row?.querySelector('.chat-menu-button')?.focus();
});
document.addEventListener('click', (event) => {
    if (!rowOf(event.target) || !root.contains(event.target)) closeMenus();
}, true);
setInterval(() => {
    const id = new URLSearchParams(location.search).get('c');
    const asked = document.querySelector("#chat [data-testid='user']");
    const list = root.querySelector('.chat-list');
    const template = root.querySelector('template.chat-row-template');
    if (!id || !asked || !list || !template) return;
    if ([...root.querySelectorAll('.chat-row')].some((row) => row.dataset.id === id)) return;
    const title = asked.innerText.trim().split('\\n')[0].slice(0, 80);
    const row = template.content.firstElementChild.cloneNode(true);
    row.dataset.id = id;
    const link = row.querySelector('.chat-open');
    link.textContent = title;
    link.title = title;
    link.href = '?c=' + encodeURIComponent(id);
    row.querySelector('.chat-menu-button').setAttribute('aria-label', 'Options for ' + title);
    row.querySelector('.chat-confirm-text').textContent = 'Delete “' + title + '” for good?';
    root.querySelectorAll('.chat-row[aria-current]').forEach((other) => other.removeAttribute('aria-current'));
    root.querySelector('.chat-list-empty')?.remove();
    let today = list.querySelector('.chat-group');
    if (!today || today.textContent !== 'Today') {
        const heading = document.createElement('h3');
        heading.className = 'chat-group';
        heading.textContent = 'Today';
        const rows = document.createElement('ul');
        rows.className = 'chat-rows';
        list.insertBefore(rows, today);
        list.insertBefore(heading, rows);
        today = heading;
    }
    today.nextElementSibling.prepend(row);
}, 250);
"""

# With the armour, switching chats (New chat, a row, a search result, deleting the chat shown) first stops the
# answer the page is showing through its own Stop and waits for its last update: Gradio's cancel of the answer
# event reached the server only seconds later under load, and the updates the answer sent meanwhile landed
# after the new chat and put the old one back on screen (issue 36).
STOP_AND_WAIT_THEN_SHOW_PICKED_CHAT = f"""async (...args) => {{
    // Requests the page has sent and not yet had answered: what Gradio chains after an answer (it copies the
    // chat into ChatInterface's history) must have landed before the chat picked is written over it.
    if (!window.__chatRequests) {{
        window.__chatRequests = 0;
        const send = window.fetch.bind(window);
        window.fetch = (...request) => {{
            window.__chatRequests += 1;
            return send(...request).finally(() => {{ window.__chatRequests -= 1; }});
        }};
    }}
    const answering = () => (document.querySelector('#usage')?.innerText || '').includes('Answering');
    const stop = document.querySelector('#prompt .stop-button');
    if (stop && answering()) {{
        stop.click();
        const until = Date.now() + 15000;
        let quiet = 0;
        while (quiet < 3 && Date.now() < until) {{
            await new Promise((done) => setTimeout(done, 50));
            quiet = answering() || window.__chatRequests > 0 ? 0 : quiet + 1;
        }}
    }}
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

# Gradio 6.31 draws some controls with no name a screen reader can announce, or in markup axe-core rejects,
# and has no parameter for it: Send and Stop in the message box are bare icons; a tool step's fold arrow is a
# button with an empty label nested inside the step's own button (whose text already names it); the examples
# are buttons in a `role=list` without list items; a message being edited is an unlabelled box. This one
# script names them as Gradio draws them (a MutationObserver: Send and Stop swap, steps and edits come and go).
# tests/test_browser_a11y.py has a canary for the markup it reads.
NAME_GRADIO_CONTROLS = """() => {
    if (window.__namedControls) return;
    window.__namedControls = true;
    const name = (selector, label) => {
        for (const el of document.querySelectorAll(selector))
            if (el.getAttribute('aria-label') !== label) el.setAttribute('aria-label', label);
    };
    const fix = () => {
        name('#prompt .submit-button', 'Send');
        name('#prompt .stop-button', 'Stop');
        name('#chat textarea.edit-textarea', 'Edit your message');
        // The step's own button is the one to press: inert, the arrow is neither focused nor announced,
        // and a click on it lands on the step.
        for (const arrow of document.querySelectorAll('#chat .thought-group .title .arrow:not([inert])')) arrow.inert = true;
        for (const step of document.querySelectorAll('#chat .thought-group .title[role="button"]')) {
            const open = String(step.classList.contains('expanded'));
            if (step.getAttribute('aria-expanded') !== open) step.setAttribute('aria-expanded', open);
        }
        for (const examples of document.querySelectorAll('#chat .examples[role="list"]')) {
            examples.setAttribute('role', 'group');
            examples.setAttribute('aria-label', 'Examples');
        }
    };
    fix();
    new MutationObserver(fix).observe(document.body, {subtree: true, childList: true, attributeFilter: ['class']});
}"""
