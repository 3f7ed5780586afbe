"""The Chat tab: model picker, streamed replies with Stop / Retry / Undo / Edit, versions, the sidebar of chats,
Compare, settings and presets, and the `chat` API endpoint.

- page.py: every component (`ChatPage`), laid out in the order the page shows them;
- settings.py: the chat settings, declared once (component, default, stored, sent);
- handlers.py: what each event does (`ChatHandlers`), returning the components it changes;
- checks.py: what is checked before anything is saved or sent;
- wiring.py: every event, top to bottom; page_js.py: the page's scripts;
- view.py, history.py, reply.py: a stored conversation as the page shows it; chat_list.py: the sidebar's list;
  compare.py, presets.py: Compare's and the presets' own parts.
"""

from __future__ import annotations

import gradio as gr

from backend import Backend, VisitorLimits

from ..streaming import Pacer
from .handlers import ChatHandlers
from .page import render_page
from .view import model_html
from .wiring import wire_chat_tab


def build_chat_tab(backend: Backend, limits: VisitorLimits, pacer: Pacer, blocks: gr.Blocks) -> gr.Sidebar:
    """Lay out the Chat tab inside the current Blocks context and wire its events, and what the page (`blocks`)
    does when it opens: list the owner's chats, open the one its address names, follow its reply if one is being
    written. The sidebar (the chat list) is returned unrendered, for the page to place outside its tabs: it stays
    where it is whichever tab is on show, and what is picked in it shows on the Chat tab (SHOW_CHAT_JS)."""
    choices = [(choice.label, choice.id) for choice in backend.models.chat_choices()]
    default = backend.models.default_chat
    page = render_page(choices, default, model_html(backend, default))
    handlers = ChatHandlers(backend, limits, pacer, page)
    wire_chat_tab(page, handlers, blocks, concurrency=backend.settings.app.concurrency)
    return page.sidebar


__all__ = ["build_chat_tab"]
