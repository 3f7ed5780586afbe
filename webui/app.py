"""The Gradio Blocks app: one tab per module, over a `Backend` built from the configuration."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import gradio as gr

from backend import Backend, VisitorLimits

from . import gradio_tuning  # noqa: F401  (before Gradio builds its queue)
from .chat import build_chat_tab
from .images import build_images_tab
from .streaming import Pacer
from .vision import build_vision_tab

# Forms in a reply can submit nowhere but here (the Content-Security-Policy, webui/server.py); they are not
# shown either, so nobody types into one.
CSS = """
#model-info #small-model-note { flex-basis: 100%; margin: 2px 0 0; font-size: 0.95em; }
footer { display: none !important; }
#chatbot [data-testid="bot"] form { display: none !important; }
/* The sidebar: new chat and search stay at its top, import at its foot; the chat list scrolls between them. */
/* A reply that failed: the error sentence in the error colour, its note framed in it (the partial text above). */
#chatbot .reply-error { color: #b91c1c; font-weight: 600; }
.dark #chatbot .reply-error { color: #fca5a5; }
#chatbot .thought-group:has(.reply-error) { border: 1px solid var(--error-border-color, #ef4444);
  background: var(--error-background-fill, #fef2f2); border-radius: var(--radius-md); }
/* Tables: the alignment each column asks for (Gradio's own rule puts every cell left); wide tables scroll
   sideways inside the chat, their cells breaking between words only. */
#chatbot .prose :is(th, td)[align="right"] { text-align: right; }
#chatbot .prose :is(th, td)[align="center"] { text-align: center; }
#chatbot .prose table { display: block; max-width: 100%; overflow-x: auto; }
#chatbot .prose :is(th, td) { overflow-wrap: normal; word-break: normal; min-width: 6em; }
/* A picker's long choice ends in "…" before its arrow, not under it. */
#model-row input[role="combobox"] { text-overflow: ellipsis; padding-right: 22px; }
/* The model line: what the model can do, and how much of its context the chat takes. */
#model-info { margin: -8px 0 -6px; }
#model-info .model-info { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; font-size: 0.85em;
  color: var(--body-text-color-subdued); }
#model-info .ability { padding: 0 8px; border-radius: 999px; border: 1px solid var(--border-color-primary); }
#model-info .context { margin-left: auto; display: inline-flex; align-items: center; gap: 6px; }
#model-info .bar { width: 80px; height: 6px; border-radius: 3px; overflow: hidden;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
#model-info .bar > span { display: block; height: 100%; background: var(--color-accent); }
#model-info .context.high .bar > span { background: #d97706; }
#model-info .context.full .bar > span { background: var(--error-text-color, #b91c1c); }
/* On a phone: the offline-model notice in one sentence, so the message box and Send stay on screen (the model and
   versions pickers share a line, each choice cut short with "…"). */
@media (max-width: 768px) {
  #small-model-note .more { display: none; }
}
/* The sidebar's handle: a whole pill, clear of the window's edges (Gradio draws half of one against the edge,
   which reads as cut off), and on a phone inside the open drawer, which takes the whole width. */
#sidebar .toggle-button { border: 1px solid var(--border-color-primary); border-radius: 999px; }
#sidebar:not(.open) .toggle-button { transform: translateX(2px); }
@media (max-width: 768px) {
  #sidebar.open .toggle-button { transform: translateX(-6px) rotate(180deg); }
}
/* The empty chat's hint, centred with room on each side (on a phone it ran against the frame). */
#chatbot .placeholder { margin: auto; padding: 0 20px; text-align: center; }
#sidebar .sidebar-content { height: 100%; display: flex; flex-direction: column; }
#sidebar .sidebar-content > .column { flex: 1 1 auto; min-height: 0; flex-wrap: nowrap; }
#sidebar .sidebar-content > .column > * { flex-shrink: 0; }
#sidebar #chat-list { flex: 1 1 0; min-height: 120px; overflow-y: auto !important; overscroll-behavior: contain; }
"""


# Back and forward move between chats opened in this tab (each has its address, ?chat=ID): the page is loaded
# again at the address moved to, which opens that chat.
#
# The chat follows a streaming reply only while it is scrolled to its end: scroll up to read, and it stays where you
# are until you scroll back down; sending a message always brings it (and the reply) into view.
PAGE_JS = """() => {
  window.addEventListener("popstate", () => window.location.reload());
  // Copying a message or the conversation gives what was said, not the notes beside it (provenance, reasoning,
  // errors): the Chatbot copies each note as its title and content, which webui/reply.py wraps in asides.
  const clipboard = navigator.clipboard;
  if (clipboard && !clipboard.switchboardPlain) {
    const write = clipboard.writeText.bind(clipboard);
    const aside = "<!-- aside -->[^]*?<!-- /aside -->";
    const turn = new RegExp(`(^|\\n\\n)assistant: ${aside}`, "g");  // Copy conversation: a note is a turn
    const note = new RegExp(`(^|\\n)[^\\n]*\\n  ${aside}\\n?`, "g");  // Copy message: its title, then it
    clipboard.writeText = (text) => {
      const plain = String(text).includes("<!-- aside -->")
        ? String(text).replace(turn, "").replace(note, "$1").trim()
        : text;
      return write(plain);
    };
    clipboard.switchboardPlain = true;
  }
  // On a phone the sidebar is a drawer, closed at first (and when a window narrows to a phone's width, or New chat
  // is pressed in it): the chat and the message box are what the page shows.
  const narrow = window.matchMedia("(max-width: 768px)");
  const fold = () => document.querySelector("#sidebar.open")?.querySelector(".toggle-button")?.click();
  if (narrow.matches) fold();
  narrow.addEventListener("change", (change) => { if (change.matches) fold(); });
  document.addEventListener("click", (click) => {
    if (narrow.matches && click.target.closest?.("#new-chat")) fold();
  });
  let force = false;
  const follow = () => { force = true; };
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && e.target.closest && e.target.closest("#message")) follow();
  }, true);
  document.addEventListener("click", (e) => { if (e.target.closest && e.target.closest("#send")) follow(); }, true);
  const watch = (wrap) => {
    if (wrap.dataset.following) return;
    wrap.dataset.following = "1";
    // At the end before this change (measured against the height before it, so a scroll that has not been
    // reported yet still counts): then stay at the end.
    let last = wrap.scrollHeight;
    new MutationObserver(() => {
      if (force || wrap.scrollTop + wrap.clientHeight >= last - 48) wrap.scrollTop = wrap.scrollHeight;
      force = false;
      last = wrap.scrollHeight;
    }).observe(wrap, {childList: true, subtree: true, characterData: true});
    wrap.scrollTop = wrap.scrollHeight;
  };
  const find = () => { const wrap = document.querySelector("#chatbot .bubble-wrap"); if (wrap) watch(wrap); };
  new MutationObserver(find).observe(document.body, {childList: true, subtree: true});
  find();
}"""


def prepare(backend: Backend, owners: Iterable[str] = ()) -> None:
    """Start loading local models in the background, open the conversation store (ConfigError when it cannot be
    used; `owners`' conversations of an earlier version are imported) and ask providers without a model list
    what they serve."""
    backend.warm_up()

    async def ready() -> None:
        await backend.open_store(owners)
        await backend.models.refresh()

    asyncio.run(ready())


def visitor_limits(backend: Backend, *, exposed: bool) -> VisitorLimits:
    """Per-visitor limits when the app is `exposed` (logins, a share link, a non-loopback address); none for a
    local single-user app."""
    app = backend.settings.app
    if not exposed:
        return VisitorLimits.off()
    relay = backend.replies.relay
    if relay is not None:  # replicas: one allowance per visitor across all of them
        return relay.limits(app.max_concurrent_per_visitor, app.max_requests_per_minute)
    return VisitorLimits(app.max_concurrent_per_visitor, app.max_requests_per_minute)


def build_app(backend: Backend, *, exposed: bool = False, limits: VisitorLimits | None = None) -> gr.Blocks:
    """The whole UI. Call `prepare(backend)` first so the model picker lists every model.

    Per-visitor limits (`app.max_concurrent_per_visitor`, `app.max_requests_per_minute`) apply when the app has
    logins or is `exposed` (a share link, a non-loopback address); a local single-user app has none. `limits`:
    the ones the app's API counts against too (one allowance per visitor across both)."""
    settings = backend.settings
    if limits is None:
        limits = visitor_limits(backend, exposed=exposed or settings.auth.enabled)
    # One pace for every streaming reply of the app, whichever tab or API call it comes from.
    pacer = Pacer(settings.app.stream_interval_ms / 1000, settings.app.updates_per_second)
    with gr.Blocks(title="Switchboard", fill_height=True, analytics_enabled=False) as app:
        with gr.Tabs():
            with gr.Tab("Chat", id="chat", elem_id="chat-tab"):
                sidebar = build_chat_tab(backend, limits, pacer, app)
            with gr.Tab("Images", id="images") as images_tab:
                refresh_history, history = build_images_tab(backend, limits)
            with gr.Tab("Vision", id="vision"):
                build_vision_tab(backend, limits, pacer)
        sidebar.render()  # beside the tabs, not in one: on show whichever tab is (the tabs stay where they are)
        images_tab.select(refresh_history, None, history, api_visibility="private")
    # Queue estimates once a second, not to every waiting visitor each time any event starts (O(n²) messages
    # when many arrive together; here events rarely wait at all).
    app.queue(default_concurrency_limit=backend.settings.app.concurrency, status_update_rate=1.0)
    return app
