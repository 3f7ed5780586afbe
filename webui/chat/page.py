"""The Chat tab's components, in one object (`ChatPage`), laid out in the order the page shows them: the sidebar
(rendered by the page beside its tabs), the model row and model line, the chat, the message box with Send and
Stop, Compare, the Settings (presets, system prompt, sampling), and the hidden state the events share.

Tests and the page's scripts find components by their elem_id: those are part of the page's contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from backend import DOCUMENT_EXTENSIONS

from .chat_list import chat_list
from .compare import ComparePanel, render_compare
from .presets import PresetControls, render_presets
from .settings import ChatSettings, render_model, render_settings

# What a handler returns: each component (or layout block) it changes, with its new value or update (Gradio leaves
# the event's other outputs as they are).
Updates = dict[Block, Any]
# An event's inputs by the names of its handler's parameters (Gradio's `inputs_kwargs`).
Named = dict[str, Block]

# Maths between $$…$$, \(…\) and \[…\]. A single $ is not a delimiter: "$5 and $10" is money, not maths; an
# unambiguous inline $x^2$ is turned into \(x^2\) before it is shown (reply.inline_math).
LATEX: list[dict[str, str | bool]] = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
]


@dataclass
class ChatPage:
    """Every component of the Chat tab."""

    # The sidebar: new chat and search at its top, the chat list scrolling under them, import at its foot.
    sidebar: gr.Sidebar
    new_chat: gr.Button
    search: gr.Textbox
    chats: gr.HTML
    download: gr.File
    importer: gr.UploadButton
    # The model row (the model picker is settings.model), the model line, the chat.
    versions: gr.Dropdown
    model_line: gr.HTML
    chatbot: gr.Chatbot
    # The message box and its buttons.
    message: gr.MultimodalTextbox
    send: gr.Button
    stop: gr.Button
    compare: ComparePanel
    presets: PresetControls
    settings: ChatSettings
    # Hidden: the open conversation as this page shows it (a ShownChat, or None before the first message); its id,
    # kept by the page (and in its address, ?chat=ID); what the last message sent took from the box (TAKEN_JS);
    # the page's time zone (ZONE_JS).
    current: gr.State
    open_id: gr.Textbox
    taken: gr.Textbox
    zone: gr.Number


def render_page(choices: Sequence[tuple[str, str]], default: str, model_line: str) -> ChatPage:
    """Lay out the Chat tab in the current Blocks context: `choices` are the chat models offered (label, id),
    `default` the one picked at first, `model_line` what the model line says of it. The sidebar is not rendered:
    the page places it outside its tabs."""
    sidebar, new_chat, search, chats, download, importer = _render_sidebar()
    with gr.Row(equal_height=False):
        with gr.Column(scale=4):
            with gr.Row(equal_height=True, elem_id="model-row"):
                model = render_model(choices, default)
                versions = _render_versions()
            # What the picked model can do, and how much of its context the open chat takes.
            line = gr.HTML(model_line, elem_id="model-info")
            chatbot = _render_chatbot()
            with gr.Row(equal_height=True):
                message, send, stop = _render_composer()
            compare = render_compare(choices)
            with gr.Accordion("Settings", open=False):
                presets = render_presets()
                settings = render_settings(model)
    current, open_id, taken, zone = _render_state()
    return ChatPage(
        sidebar=sidebar,
        new_chat=new_chat,
        search=search,
        chats=chats,
        download=download,
        importer=importer,
        versions=versions,
        model_line=line,
        chatbot=chatbot,
        message=message,
        send=send,
        stop=stop,
        compare=compare,
        presets=presets,
        settings=settings,
        current=current,
        open_id=open_id,
        taken=taken,
        zone=zone,
    )


def _render_sidebar() -> tuple[gr.Sidebar, gr.Button, gr.Textbox, gr.HTML, gr.File, gr.UploadButton]:
    """Collapsible on a desktop; on a phone a drawer, closed at first (the chat and the message box come first)."""
    with gr.Sidebar(width=290, elem_id="sidebar", render=False) as sidebar:
        new_chat = gr.Button("+ New chat", elem_id="new-chat")
        # Empty text from the start: a box given no value is None in the page until it is drawn, and a message sent
        # before that would send None as the search.
        search = gr.Textbox("", placeholder="Search chats", show_label=False, elem_id="chat-search")
        chats = chat_list()
        # An export's file: in the page (hidden) for the download the page starts at once (DOWNLOAD_JS).
        download = gr.File(label="Export", visible="hidden", interactive=False, elem_id="download")
        importer = gr.UploadButton(
            "Import chat (.json)", file_types=[".json"], file_count="single", size="sm", elem_id="import"
        )
    return sidebar, new_chat, search, chats, download, importer


def _render_versions() -> gr.Dropdown:
    """Turns with more than one version (an edited question, a regenerated answer): pick one to show it and what
    followed it. Beside the model, so showing it moves nothing down the page. (A value outside the choices is
    allowed: a page whose session the server forgot still offers what it listed; the handler checks the pick
    against the stored chat.)"""
    return gr.Dropdown(
        choices=[], label="Versions", visible=False, elem_id="versions", scale=2, allow_custom_value=True
    )


def _render_chatbot() -> gr.Chatbot:
    return gr.Chatbot(
        elem_id="chatbot",
        show_label=False,
        autoscroll=False,  # the page follows a reply only while it is scrolled to the end (page_js.PAGE_JS)
        height="max(280px, calc(100dvh - 430px))",  # the message box and Settings stay in view
        buttons=["copy", "copy_all"],
        latex_delimiters=LATEX,
        editable="user",
        placeholder="Ask anything. Replies stream here; Stop ends one at once.",
        feedback_options=None,
    )


def _render_composer() -> tuple[gr.MultimodalTextbox, gr.Button, gr.Button]:
    """The message box, and Send, or Stop while a reply is written."""
    message = gr.MultimodalTextbox(
        placeholder="Message (Enter to send), or attach files",
        show_label=False,
        file_types=["image", *sorted(DOCUMENT_EXTENSIONS)],
        file_count="multiple",
        sources=["upload"],
        submit_btn=False,
        lines=1,
        max_lines=8,
        scale=8,
        autofocus=True,
        elem_id="message",
    )
    send = gr.Button("Send", variant="primary", scale=1, min_width=90, elem_id="send")
    stop = gr.Button("Stop", variant="stop", scale=1, min_width=90, visible=False, elem_id="stop")
    return message, send, stop


def _render_state() -> tuple[gr.State, gr.Textbox, gr.Textbox, gr.Number]:
    # The open conversation as this page shows it: a ShownChat (which one, the revision read, the branch on show),
    # or None before the first message. The conversation itself is shared by every page showing it.
    current = gr.State(None)
    # The open conversation's id, kept by the page: Gradio forgets a session's state when it evicts the session
    # (app.max_sessions) or restarts, and the tab must then go on with the same conversation, not a new one. In the
    # DOM (hidden), so its change can update the address bar (ADDRESS_JS).
    open_id = gr.Textbox(visible="hidden", elem_id="open-chat-id")
    taken = gr.Textbox(visible="hidden")  # what the last message sent took from the box (TAKEN_JS), as JSON
    zone = gr.Number(visible=False)  # the page's time zone, given by the page when it loads (ZONE_JS)
    return current, open_id, taken, zone
