"""Every event of the Chat tab, wired top to bottom: what triggers it, which handler of `ChatHandlers` runs (with
its inputs by name), what it may change, and what follows it.

The order is part of the page: Gradio numbers events in the order they are wired, and the page (and the tests
that drive it over HTTP) call them by number. Outputs are listed in full, even those a handler leaves alone:
Gradio shows an event's outputs as pending while it runs, and a handler may name only its event's outputs. A step
with a script (`js=`) runs it in the page first; the script gets the step's inputs in order (page_js.py).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from .handlers import ChatHandlers
from .page import ChatPage, Named
from .page_js import ADDRESS_JS, DOWNLOAD_JS, FOCUS_JS, SHOW_CHAT_JS, TAKEN_JS, ZONE_JS

PRIVATE: dict[str, Any] = {"api_visibility": "private"}  # the page's own events: not part of the app's API
QUIET: dict[str, Any] = {"show_progress": "hidden", **PRIVATE}


def wire_chat_tab(page: ChatPage, on: ChatHandlers, blocks: gr.Blocks, *, concurrency: int) -> None:
    """Wire the tab's events (`blocks`: the whole page, for what it does when it loads); `concurrency`: how many
    `chat` API calls run at once."""
    _wire_messages(page, on)
    _wire_turns(page, on)
    _wire_sidebar(page, on)
    _wire_compare(page, on)
    _wire_presets(page, on, blocks)
    # A page opened: its chats, the chat its address names, and that chat's reply if one is being written.
    loaded = blocks.load(
        on.load_page,
        inputs_kwargs={"offset_minutes": page.zone},
        outputs=[*_opened(page), page.chats],
        js=ZONE_JS,
        **QUIET,
    )
    loaded.then(on.follow_running, inputs_kwargs=_following(page), outputs=_followed(page) + _controls(page), **QUIET)
    gr.api(on.chat_endpoint(), api_name="chat", concurrency_limit=concurrency)


def _wire_messages(page: ChatPage, on: ChatHandlers) -> None:
    """A message sent (Enter or Send): checked at the box, saved with its reply, the reply followed to its end,
    Send back; what it sent taken out of the box."""
    sent: Named = {
        "message": page.message,
        "chat_history": page.chatbot,
        "conversation": page.current,
        **page.settings.named(),
        "query": page.search,
        "conversation_id": page.open_id,
    }
    added = [page.chatbot, page.versions, page.taken, page.send, page.stop, page.current, page.chats, page.open_id]
    for trigger in (page.message.submit, page.send.click):
        started = trigger(
            on.add_message,
            inputs_kwargs=sent,
            outputs=added,
            validator=on.check_message,
            # A message sent while a reply is written is not ignored (Gradio's default for a trigger whose last
            # event still runs): it is sent when that reply ends. No progress overlay meanwhile: the chat keeps
            # showing the reply.
            trigger_mode="multiple",
            show_progress="hidden",
            **PRIVATE,
        )
        # Our own "waiting" line replaces Gradio's progress dots, which it places oddly after a stopped reply. A
        # message sent while the previous reply is shown starts its own follow step (Gradio would drop a second
        # trigger of a step still running), which takes over from the earlier one.
        _follow(page, on, started, trigger_mode="multiple")
        started.success(None, [page.message, page.taken], page.message, js=TAKEN_JS, trigger_mode="multiple", **QUIET)


def _follow(page: ChatPage, on: ChatHandlers, started: Any, **mode: Any) -> None:
    """After a step that started a reply: the reply shown as it is written, then Send back (and the focus)."""
    followed = started.success(
        on.follow, inputs_kwargs=_following(page), outputs=_followed(page), show_progress="hidden", **mode, **PRIVATE
    )
    followed.then(
        on.finish, inputs_kwargs={"conversation": page.current}, outputs=_controls(page), js=FOCUS_JS, **mode, **QUIET
    )


def _wire_turns(page: ChatPage, on: ChatHandlers) -> None:
    """Retry, Edit and Undo on the chat's messages, the versions picker, Stop, the model line, the address."""
    answered: Named = {"chat_history": page.chatbot, "conversation": page.current, "conversation_id": page.open_id}
    again = [page.chatbot, page.versions, page.message, page.send, page.stop, page.current, page.chats, page.open_id]
    for trigger, handler in ((page.chatbot.retry, on.retry), (page.chatbot.edit, on.edit)):
        started = trigger(
            handler,
            inputs_kwargs={**answered, **page.settings.named()},
            outputs=again,
            validator=on.check_limits,
            **PRIVATE,
        )
        _follow(page, on, started)
    undone = [page.chatbot, page.versions, page.message, page.current]
    page.chatbot.undo(on.undo, inputs_kwargs={**answered, "draft": page.message}, outputs=undone, **PRIVATE)
    picked: Named = {"node": page.versions, "conversation": page.current, "conversation_id": page.open_id}
    page.versions.input(
        on.pick_version, inputs_kwargs=picked, outputs=[page.chatbot, page.versions, page.current], **QUIET
    )
    # Stop ends the reply on the server; the step showing it then ends by itself and gives Send back.
    page.stop.click(
        on.stop_reply,
        inputs_kwargs={"conversation_id": page.open_id},
        outputs=page.stop,
        queue=False,
        js=FOCUS_JS,
        **PRIVATE,
    )
    # The model line follows the picked model and the open chat (each change of it: a reply's end, another chat).
    described: Named = {"conversation": page.current, "model": page.settings.model}
    for changed in (page.settings.model, page.current):
        changed.change(on.describe_model, inputs_kwargs=described, outputs=page.model_line, queue=False, **PRIVATE)
    # The address bar names the open chat (?chat=ID), so a reload or a bookmark comes back to it; back and forward
    # reload the page at the address they move to (page_js.PAGE_JS).
    page.open_id.change(None, page.open_id, None, js=ADDRESS_JS, **PRIVATE)


def _wire_sidebar(page: ChatPage, on: ChatHandlers) -> None:
    """What the visitor does in the sidebar. What they do in the chat list (open, rename, export, delete) arrives
    as an action in the list's value, through one event of the list per kind (chat_list.ACTIONS)."""
    new_chat = [page.chatbot, page.versions, page.current, page.chats, page.download, page.open_id]
    query: Named = {"query": page.search}
    page.new_chat.click(on.start_new, inputs_kwargs=query, outputs=new_chat, js=SHOW_CHAT_JS, **QUIET)
    # The Chatbot's own clear (trash) button empties only the view; the next message would then reach the model
    # with a context the page no longer shows. Clearing starts a new chat instead; the old one stays in the list.
    page.chatbot.clear(on.start_new, inputs_kwargs=query, outputs=new_chat, **QUIET)
    # A chat opened while its reply is being written shows the reply live (from its start) to its end.
    opened = page.chats.select(
        on.open_listed, inputs_kwargs={"value": page.chats}, outputs=_opened(page), js=SHOW_CHAT_JS, **QUIET
    )
    opened.then(on.follow_running, inputs_kwargs=_following(page), outputs=_followed(page) + _controls(page), **QUIET)
    page.search.change(on.find, inputs_kwargs={**query, "conversation_id": page.open_id}, outputs=page.chats, **QUIET)
    renamed: Named = {"value": page.chats, "conversation": page.current, "conversation_id": page.open_id, **query}
    page.chats.edit(on.rename_chat, inputs_kwargs=renamed, outputs=[page.current, page.chats], **QUIET)
    replaced = [page.chatbot, page.versions, page.current, page.chats, page.open_id]  # the open chat, the list
    deleted: Named = {"value": page.chats, "conversation_id": page.open_id, **query}
    page.chats.delete(on.delete_chat, inputs_kwargs=deleted, outputs=replaced, **QUIET)
    # The export is downloaded at once.
    exported = page.chats.download(on.export_chat, inputs_kwargs={"value": page.chats}, outputs=page.download, **QUIET)
    exported.then(None, js=DOWNLOAD_JS, **PRIVATE)
    imported: Named = {"path": page.importer, **query}
    page.importer.upload(on.import_chat, inputs_kwargs=imported, outputs=replaced, js=SHOW_CHAT_JS, **QUIET)


def _wire_compare(page: ChatPage, on: ChatHandlers) -> None:
    """Compare: one prompt to several models side by side; the answer picked continues the chat."""
    panel = page.compare
    panel.models.change(
        on.show_columns,
        inputs_kwargs={"model_ids": panel.models},
        outputs=[*panel.columns, *panel.panes],
        queue=False,
        **PRIVATE,
    )
    buttons = [panel.run, panel.stop]
    compared: Named = {
        "model_ids": panel.models,
        "prompt": panel.prompt,
        "conversation": page.current,
        "conversation_id": page.open_id,
        "system_prompt": page.settings.system_prompt,
    }
    running = panel.run.click(
        on.start_compare,
        inputs_kwargs=compared,
        outputs=buttons,
        validator=on.check_compare,
        show_progress="hidden",
        **PRIVATE,
    )
    answers = running.then(
        on.compare,
        inputs_kwargs=compared,
        outputs=[*panel.panes, *panel.picks, panel.results],
        show_progress="hidden",
        **PRIVATE,
    )
    answers.then(on.end_compare, outputs=buttons, queue=False, **PRIVATE)
    answers.failure(on.end_compare, outputs=buttons, queue=False, **PRIVATE)
    panel.stop.click(None, None, None, cancels=[answers], **PRIVATE)
    picked: Named = {
        "outcome": panel.results,
        "conversation": page.current,
        "conversation_id": page.open_id,
        "query": page.search,
    }
    continued = [page.chatbot, page.versions, page.current, page.open_id, page.chats, *panel.picks, panel.results]
    for number, button in enumerate(panel.picks):
        button.click(on.continue_with(number), inputs_kwargs=picked, outputs=continued, js=FOCUS_JS, **QUIET)


def _wire_presets(page: ChatPage, on: ChatHandlers, blocks: gr.Blocks) -> None:
    presets, system_prompt = page.presets, page.settings.system_prompt
    blocks.load(on.list_presets, None, presets.picker, **QUIET)
    presets.picker.input(on.use_preset, inputs_kwargs={"name": presets.picker}, outputs=system_prompt, **QUIET)
    saved: Named = {"name": presets.name, "text": system_prompt}
    presets.save.click(on.save_preset, inputs_kwargs=saved, outputs=[presets.picker, presets.name], **QUIET)
    presets.delete.click(on.delete_preset, inputs_kwargs={"name": presets.picker}, outputs=presets.picker, **QUIET)


def _following(page: ChatPage) -> Named:
    """What following a reply reads: the chat as the page shows it, the open chat, the search box."""
    return {"chat_history": page.chatbot, "conversation": page.current, "query": page.search}


def _followed(page: ChatPage) -> list[Block]:
    return [page.chatbot, page.versions, page.current, page.chats]


def _controls(page: ChatPage) -> list[Block]:
    return [page.send, page.stop]


def _opened(page: ChatPage) -> list[Block]:
    """What opening a chat shows: the chat, its versions, its model and settings."""
    return [page.chatbot, page.versions, page.current, *page.settings.components(), page.download, page.open_id]
