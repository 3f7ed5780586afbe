"""The Chat tab: model picker, streamed replies with Stop / Retry / Undo / Edit, settings, and the `chat` API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import gradio as gr

from backend import (
    Backend,
    ChatRequest,
    Conversation,
    ConversationStore,
    InvalidImageError,
    StaleConversationError,
    StoredMessage,
    SwitchboardError,
    TextDelta,
    TooManyRequestsError,
    VisitorLimits,
    model_messages,
    validate_image,
)

from . import history
from .identity import owner_of, visitor_of
from .reply import ReplyView, is_thought, message_text, stopped_marker
from .streaming import Pacer, batched

log = logging.getLogger(__name__)

LATEX: list[dict[str, str | bool]] = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
]

SMALL_MODEL_NOTICE = (
    "**You are chatting with the built-in offline model** (Gemma 3 270M, a tiny base model running on this "
    "machine): expect short, often wrong answers. For a real assistant add a provider to `config.toml` "
    "(OpenAI, Ollama, vLLM, a llama.cpp server...) as the README shows, and pick it above."
)


def build_chat_tab(backend: Backend, limits: VisitorLimits, pacer: Pacer):
    """Lay out the Chat tab inside the current Blocks context and wire its events. Returns the page-load handler
    and its outputs (the owner's conversation list), for the app to run when a page opens."""
    choices = [(choice.label, choice.id) for choice in backend.models.chat_choices()]
    default = backend.models.default_chat
    store = backend.conversations

    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=220, elem_id="sidebar"):
            new_chat = gr.Button("+ New chat", elem_id="new-chat")
            search = gr.Textbox(placeholder="Search chats", show_label=False, elem_id="chat-search")
            chats = gr.Radio(choices=[], label="Chats", elem_id="chat-list")
            with gr.Accordion("This chat", open=False, elem_id="chat-actions"):
                title_box = gr.Textbox(label="Title", elem_id="chat-title")
                rename = gr.Button("Rename", size="sm", elem_id="rename")
                with gr.Row():
                    export_md = gr.Button("Export .md", size="sm", elem_id="export-md")
                    export_json = gr.Button("Export .json", size="sm", elem_id="export-json")
                download = gr.File(label="Download", visible=False, interactive=False, elem_id="download")
                delete = gr.Button("Delete chat", variant="stop", size="sm", elem_id="delete")
                with gr.Row(visible=False) as confirm_row:
                    confirm = gr.Button("Yes, delete it", variant="stop", size="sm", elem_id="confirm-delete")
                    cancel = gr.Button("Keep it", size="sm", elem_id="cancel-delete")
            importer = gr.UploadButton(
                "Import chat (.json)", file_types=[".json"], file_count="single", size="sm", elem_id="import"
            )
        with gr.Column(scale=4):
            model = gr.Dropdown(choices=choices, value=default, label="Model", elem_id="model-picker", filterable=True)
            notice = gr.Markdown(SMALL_MODEL_NOTICE, visible=_is_bundled(backend, default), elem_id="small-model-note")
            chatbot = gr.Chatbot(
                elem_id="chatbot",
                height="62vh",
                buttons=["copy", "copy_all"],
                latex_delimiters=LATEX,
                editable="user",
                placeholder="Ask anything. Replies stream here; Stop ends one at once.",
                feedback_options=None,
            )
            with gr.Row(equal_height=True):
                textbox = gr.MultimodalTextbox(
                    placeholder="Message (Enter to send, Shift+Enter for a new line); attach images for vision models",
                    show_label=False,
                    file_types=["image"],
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
            with gr.Accordion("Settings", open=False):
                system = gr.Textbox(label="System prompt", lines=2, placeholder="You are a helpful assistant.")
                with gr.Row():
                    temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature")
                    top_p = gr.Slider(0, 1, value=1.0, step=0.01, label="Top p")
                    max_tokens = gr.Number(value=0, precision=0, minimum=0, label="Max tokens (0: model default)")
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
    current = gr.State(None)  # the open Conversation, or None before the first message
    # The open conversation's id, kept by the page: Gradio forgets a session's state when it evicts the session
    # (app.max_sessions) or restarts, and the tab must then go on with the same conversation, not a new one.
    open_id = gr.Textbox(visible=False, elem_id="open-chat-id")

    settings = [model, system, temperature, top_p, max_tokens, seed]

    async def reopened(conversation, conversation_id: str | None, owner: str) -> Conversation | None:
        """The open conversation: this session's copy, or the stored one the page names (never another owner's:
        the store looks only in `owner`'s conversations)."""
        if conversation is not None or not conversation_id:
            return conversation
        try:
            return await store.get(owner, conversation_id)
        except SwitchboardError:
            return None

    async def listed(owner: str, selected: str | None = None, query: str = ""):
        """The owner's chats matching the search box, with `selected` marked when it is among them."""
        found = await history.list_choices(backend, owner, query)
        return gr.update(choices=found, value=selected if any(selected == id_ for _, id_ in found) else None)

    async def save(
        owner: str, conversation, added: StoredMessage, model_id, system_prompt, temp, top, max_new, seed_value
    ) -> Conversation:
        """Store the conversation with `added` (its newest message) and the picker's settings; the conversation
        as stored (another one when another tab had changed it: see `_save_adding`)."""
        conversation.model = model_id
        conversation.settings = {
            "system_prompt": system_prompt or "",
            "temperature": temp,
            "top_p": top,
            "max_tokens": max_new,
            "seed": seed_value,
        }
        return await _save_adding(store, owner, conversation, added)

    async def respond(
        chat_history,
        conversation,
        model_id,
        system_prompt,
        temp,
        top,
        max_new,
        seed_value,
        query,
        request: gr.Request,
    ) -> AsyncIterator:
        owner = owner_of(request)
        if conversation is None:  # a forged call: there is no message to answer
            raise gr.Error("Open or start a chat first.")
        request_ = ChatRequest(
            model=model_id or default,
            messages=await model_messages(store, owner, conversation, system_prompt or ""),
            temperature=temp,
            top_p=top if top is not None and top < 1 else None,  # 1 is everyone's default; some APIs refuse it
            max_tokens=int(max_new) if max_new and max_new > 0 else None,
            seed=int(seed_value) if seed_value is not None and seed_value >= 0 else None,
        )
        reply = ReplyView(request_.model)
        yield chat_history + reply.messages(), gr.skip(), gr.skip()  # a "waiting" line at once
        try:
            with limits.hold(visitor_of(request)):  # counted when the message was saved
                async for batch in batched(backend.chat.stream(request_), pacer):
                    for event in batch:
                        reply.apply(event)
                    yield chat_history + reply.messages(), gr.skip(), gr.skip()
        except SwitchboardError as error:
            reply.fail(error)
        except Exception as error:  # a bug of ours must not leave the chat hanging
            log.exception("reply failed")
            reply.fail(SwitchboardError(f"internal error ({type(error).__name__}); see the server log"))
        reply.close()
        answer = reply.to_stored()
        conversation.messages.append(answer)
        await name_by_model(conversation)
        stored = await save(owner, conversation, answer, model_id, system_prompt, temp, top, max_new, seed_value)
        shown = chat_history + reply.messages() if stored is conversation else history.render(backend, owner, stored)
        yield shown, stored, await listed(owner, stored.id, query)

    async def name_by_model(conversation) -> None:
        """After the first exchange, let the configured title model name the chat (first words otherwise)."""
        model_id = backend.settings.defaults.title
        if not model_id or len(conversation.messages) != 2 or conversation.messages[1].status != "complete":
            return
        question, answer = (message.text for message in conversation.messages)
        title = await backend.chat.suggest_title(model_id, question, answer)
        if title:
            conversation.title = title

    def busy():
        stop_shown = gr.update(visible=True, interactive=True)
        return gr.update(value=None, interactive=False), gr.update(visible=False), stop_shown

    def idle():
        return gr.update(interactive=True), gr.update(visible=True), gr.update(visible=False, interactive=True)

    async def add_message(
        message: dict | None,
        chat_history: list,
        conversation,
        model_id,
        system_prompt,
        temp,
        top,
        max_new,
        seed_value,
        query,
        conversation_id,
        request: gr.Request,
    ):
        """Save the message (checked by `check_message` first) and show it; the reply follows. The message counts
        against the visitor's limits here, where it is saved: refused, nothing is kept."""
        text = ((message or {}).get("text") or "").strip()
        paths = [_file_path(file) for file in (message or {}).get("files") or []]
        if problem := _text_problem(backend, text):
            raise gr.Error(problem)
        try:
            limit = backend.settings.app.max_upload_bytes
            images = [await validate_image(path, max_bytes=limit) for path in paths]
            limits.count(visitor_of(request))
        except SwitchboardError as error:
            raise gr.Error(error.user_message()) from None
        owner = owner_of(request)
        conversation = await reopened(conversation, conversation_id, owner) or Conversation()
        question = await history.store_user_message(backend, owner, text, images)
        conversation.messages.append(question)
        stored = await save(owner, conversation, question, model_id, system_prompt, temp, top, max_new, seed_value)
        content = [{"type": "text", "text": text}, *({"path": path} for path in paths)] if paths else text
        listing = await listed(owner, stored.id, query)
        shown = [*chat_history, {"role": "user", "content": content}]
        if stored is not conversation:
            shown = history.render(backend, owner, stored)
        return shown, *busy(), stored, listing, stored.id

    async def check_message(
        message: dict | None,
        chat_history: list,
        conversation,
        model_id,
        system_prompt,
        temp,
        top,
        max_new,
        seed_value,
        query,
        conversation_id,
        request: gr.Request,
    ):
        """Refusals before anything is saved or sent, said at the message box, where the text and attachments
        stay. Gradio runs it on the server when the event joins its queue, with the event's inputs: hence the
        same parameters as add_message. (The reply checks limits, images and capabilities again on its way.)"""
        problem = await _message_problem(backend, limits, message, model_id or default, request)
        return _verdict(problem, inputs=11)

    def check_limits(chat_history: list, conversation, conversation_id, request: gr.Request):
        return _verdict(_limit_problem(limits, request), inputs=3)

    async def retry(chat_history: list, conversation, conversation_id, data: gr.RetryData, request: gr.Request):
        _count(limits, request)
        kept = _upto_user_message(chat_history, data.index)
        conversation = await reopened(conversation, conversation_id, owner_of(request))
        if conversation is not None:
            history.keep_through_user(conversation, history.users_in(kept, len(kept) - 1))
        return kept, *busy(), conversation, gr.skip(), gr.skip()

    async def edit(chat_history: list, conversation, conversation_id, data: gr.EditData, request: gr.Request):
        text = message_text(data.value)
        if problem := _text_problem(backend, text):
            raise gr.Error(problem)
        _count(limits, request)
        kept = chat_history[: _message_position(data.index) + 1]
        attachments = [part for part in _parts(kept[-1].get("content")) if part.get("type") == "file"]
        kept[-1] = {"role": "user", "content": [{"type": "text", "text": text}, *attachments] if attachments else text}
        conversation = await reopened(conversation, conversation_id, owner_of(request))
        if conversation is not None:
            history.keep_through_user(conversation, history.users_in(kept, len(kept) - 1))
            conversation.messages[-1].text = text
        return kept, *busy(), conversation, gr.skip(), gr.skip()

    async def undo(chat_history: list, conversation, conversation_id, data: gr.UndoData, request: gr.Request):
        kept = _upto_user_message(chat_history, data.index)
        if not kept:
            return kept, None, conversation
        owner = owner_of(request)
        conversation = await reopened(conversation, conversation_id, owner)
        if conversation is not None:
            history.keep_through_user(conversation, history.users_in(kept, len(kept) - 1) - 1)
            try:
                await store.save(owner, conversation)
            except StaleConversationError as error:  # another tab changed it: show what is stored, undo nothing
                gr.Warning(error.user_message())
                fresh = await store.get(owner, conversation.id)
                return history.render(backend, owner, fresh), gr.skip(), fresh
        content = kept[-1]["content"]
        files = [part["file"]["path"] for part in _parts(content) if part.get("type") == "file"]
        return kept[:-1], {"text": message_text(content), "files": files}, conversation

    async def finish(chat_history: list, conversation, model_id, request: gr.Request):
        """After a reply: re-enable input; if the reply did not end on its footer, it was stopped: say so, and
        keep what had arrived, marked as stopped."""
        last = chat_history[-1] if chat_history else {}
        if is_thought(last) and (last.get("metadata") or {}).get("status") == "done":
            return gr.skip(), *idle(), gr.skip(), gr.skip()
        settled = [_settle(message) for message in chat_history if not _is_pending_status(message)]
        shown = [*settled, stopped_marker()]
        if conversation is not None:
            owner = owner_of(request)
            provider, _, name = (model_id or default).partition("/")
            partial = _answer_after_last_user(settled)
            stopped = StoredMessage(role="assistant", text=partial, provider=provider, model=name, status="stopped")
            conversation.messages.append(stopped)
            stored = await _save_adding(store, owner, conversation, stopped)
            if stored is not conversation:
                shown, conversation = history.render(backend, owner, stored), stored
        return shown, *idle(), conversation, gr.skip()

    controls = [textbox, send, stop]
    private: dict[str, Any] = {"api_visibility": "private"}
    replies = []
    for trigger, prepare, check, inputs in (
        (textbox.submit, add_message, check_message, [textbox, chatbot, current, *settings, search, open_id]),
        (send.click, add_message, check_message, [textbox, chatbot, current, *settings, search, open_id]),
        (chatbot.retry, retry, check_limits, [chatbot, current, open_id]),
        (chatbot.edit, edit, check_limits, [chatbot, current, open_id]),
    ):
        outputs = [chatbot, *controls, current, chats, open_id]
        started = trigger(prepare, inputs, outputs, validator=check, **private)
        # Our own "waiting" line replaces Gradio's progress dots, which it places oddly after a stopped reply.
        reply = started.success(
            respond, [chatbot, current, *settings, search], [chatbot, current, chats], show_progress="hidden", **private
        )
        # Runs after the reply ends or, on Stop, after the cancellation: so the marker cannot be overwritten.
        # Without progress: it takes milliseconds, and Gradio's dots and overlays would flash on every reply's end.
        settled = [chatbot, *controls, current, chats]
        reply.then(finish, [chatbot, current, model], settled, show_progress="hidden", **private)
        replies.append(reply)
    chatbot.undo(undo, [chatbot, current, open_id], [chatbot, textbox, current], **private)
    # Stop cancels the reply; Send comes back with the step that settles it (finish), not before: a message sent
    # in between would race the stopped reply's saving.
    stop.click(lambda: gr.update(interactive=False), None, stop, cancels=replies, queue=False, **private)
    model.change(lambda m: gr.update(visible=_is_bundled(backend, m)), model, notice, queue=False, **private)

    # The sidebar.
    # Opening, starting or importing another chat also closes a pending "Yes, delete it": it was about the old one.
    hide_confirm = gr.update(visible=False)

    async def start_new(query: str, request: gr.Request):
        listing = await listed(owner_of(request), None, query)
        return [], None, listing, "", gr.update(value=None, visible=False), hide_confirm, ""

    async def open_chat(conversation_id: str | None, request: gr.Request):
        if not conversation_id:
            return (gr.skip(),) * 12
        owner = owner_of(request)
        try:
            conversation = await store.get(owner, conversation_id)
        except SwitchboardError as error:
            return _refused(error.user_message(), 12)
        saved = conversation.settings
        chosen_model = conversation.model if conversation.model in {id_ for _, id_ in choices} else default
        return (
            history.render(backend, owner, conversation),
            conversation,
            chosen_model,
            saved.get("system_prompt", ""),
            saved.get("temperature", 0.7),
            saved.get("top_p", 1.0),
            saved.get("max_tokens", 0),
            saved.get("seed", -1),
            conversation.title,
            gr.update(value=None, visible=False),
            hide_confirm,
            conversation.id,
        )

    async def find(query: str, conversation_id: str, request: gr.Request):
        return await listed(owner_of(request), conversation_id or None, query)

    async def rename_chat(title: str, conversation, conversation_id, query: str, request: gr.Request):
        owner = owner_of(request)
        conversation = await reopened(conversation, conversation_id, owner)
        if conversation is None or not (title or "").strip():
            return _refused("Open a chat and type its new title first.", 2)
        new_title = " ".join(title.split())[:120]
        conversation.title = new_title
        conversation = await _save_redoing(store, owner, conversation, lambda fresh: setattr(fresh, "title", new_title))
        return conversation, await listed(owner, conversation.id, query)

    def ask_to_delete(conversation_id: str):
        if not conversation_id:
            return _refused("Open a chat first.", 1)
        return gr.update(visible=True)

    async def delete_chat(conversation_id: str, query: str, request: gr.Request):
        owner = owner_of(request)
        if conversation_id:
            try:
                await store.delete(owner, conversation_id)
            except SwitchboardError as error:
                return _refused(error.user_message(), 6)
        return [], None, await listed(owner, None, query), "", hide_confirm, ""

    def export(kind: str):
        async def run(conversation, conversation_id: str, request: gr.Request):
            conversation = await reopened(conversation, conversation_id, owner_of(request))
            if conversation is None:
                return _refused("Nothing to export yet: open or start a chat.", 1)
            return gr.update(value=history.export_file(conversation, kind), visible=True)

        return run

    async def import_chat(path: str, query: str, request: gr.Request):
        owner = owner_of(request)
        try:
            with limits.admit(visitor_of(request)):  # one import at a time per visitor, counted like a message
                conversation = await history.import_file(backend, owner, path)
        except SwitchboardError as error:
            return _refused(f"Import failed: {error.user_message()}", 6)
        return (
            history.render(backend, owner, conversation),
            conversation,
            await listed(owner, conversation.id, query),
            conversation.title,
            hide_confirm,
            conversation.id,
        )

    quiet: dict[str, Any] = {"show_progress": "hidden", **private}
    new_chat_outputs = [chatbot, current, chats, title_box, download, confirm_row, open_id]
    new_chat.click(start_new, search, new_chat_outputs, **quiet)
    # The Chatbot's own clear (trash) button empties only the view; the next message would then reach the model
    # with a context the page no longer shows. Clearing starts a new chat instead; the old one stays in the list.
    chatbot.clear(start_new, search, new_chat_outputs, **quiet)
    chats.input(open_chat, chats, [chatbot, current, *settings, title_box, download, confirm_row, open_id], **quiet)
    search.change(find, [search, open_id], chats, **quiet)
    rename.click(rename_chat, [title_box, current, open_id, search], [current, chats], **quiet)
    delete.click(ask_to_delete, open_id, confirm_row, **quiet)
    cancel.click(lambda: hide_confirm, None, confirm_row, **quiet)
    confirm.click(delete_chat, [open_id, search], [chatbot, current, chats, title_box, confirm_row, open_id], **quiet)
    export_md.click(export("md"), [current, open_id], download, **quiet)
    export_json.click(export("json"), [current, open_id], download, **quiet)
    importer.upload(
        import_chat, [importer, search], [chatbot, current, chats, title_box, confirm_row, open_id], **quiet
    )

    async def load_chats(request: gr.Request):
        return await listed(owner_of(request))

    async def chat(message: str, model: str = default, request: gr.Request | None = None) -> AsyncIterator[str]:
        """Send one message (no history) to `model` (provider/model or a route; default: the configured default)
        and stream the reply text; each update is the whole text so far."""
        chat_request = ChatRequest(model=model or default, messages=[{"role": "user", "content": message}])
        text = ""
        try:
            with limits.admit(visitor_of(request)):
                async for batch in batched(backend.chat.stream(chat_request), pacer):
                    text += "".join(event.text for event in batch if isinstance(event, TextDelta))
                    yield text
        except SwitchboardError as error:
            raise gr.Error(error.user_message()) from None

    gr.api(chat, api_name="chat", concurrency_limit=backend.settings.app.concurrency)
    return load_chats, chats


async def _save_adding(
    store: ConversationStore, owner: str, conversation: Conversation, added: StoredMessage
) -> Conversation:
    """Store `conversation`, whose newest message is `added`; on a conflict, `added` goes at the end of what is
    stored now (see `_save_redoing`)."""

    def add(fresh: Conversation) -> None:
        fresh.messages.append(added)
        fresh.model, fresh.settings = conversation.model, conversation.settings

    return await _save_redoing(store, owner, conversation, add)


async def _save_redoing(
    store: ConversationStore, owner: str, conversation: Conversation, redo: Callable[[Conversation], None]
) -> Conversation:
    """Store `conversation`, changed by this page. When another tab (or page, or process) changed the stored
    conversation since this page read it, nothing of either is lost: `redo` makes this page's change to what is
    stored now, and that is what the page shows from then on (returned, a new object)."""
    try:
        await store.save(owner, conversation)
        return conversation
    except StaleConversationError:
        fresh = await store.get(owner, conversation.id)
        redo(fresh)
        await store.save(owner, fresh)
        gr.Info("This chat was changed in another tab meanwhile; it now shows both changes.")
        return fresh


def _refused(message: str, outputs: int):
    """Say why in a toast and change nothing. (Raising gr.Error would also cover every output of the event with
    Gradio's error badge until each is dismissed; use it only where the event chain must stop.)"""
    gr.Warning(message, duration=8)
    return gr.skip() if outputs == 1 else (gr.skip(),) * outputs


def _verdict(problem: str | None, *, inputs: int) -> list[dict]:
    """An event validator's answer: `problem` (if any) shown at the event's first input, the others fine."""
    return [gr.validate(problem is None, problem or ""), *(gr.validate(True, "") for _ in range(inputs - 1))]


def _limit_problem(limits: VisitorLimits, request: gr.Request | None) -> str | None:
    try:
        limits.check(visitor_of(request))
    except TooManyRequestsError as error:
        return error.user_message()
    return None


async def _message_problem(
    backend: Backend, limits: VisitorLimits, message: dict | None, model_id: str, request: gr.Request | None
) -> str | None:
    """Why a message cannot be sent as it is, in one sentence; None when it can."""
    text = ((message or {}).get("text") or "").strip()
    files = [_file_path(file) for file in (message or {}).get("files") or []]
    if not text and not files:
        return "Type a message first."
    problem = _text_problem(backend, text) or _limit_problem(limits, request)
    if problem or not files:
        return problem
    for path in files:
        try:
            # By content, not by name; off the event loop. Decoded once: the backend remembers what it prepared, so
            # the step that saves the message gets this result back.
            await validate_image(path, max_bytes=backend.settings.app.max_upload_bytes)
        except InvalidImageError as error:
            return f"{Path(path).name}: {error.user_message()}"
    try:
        reads_images = backend.models.info(model_id).vision
    except SwitchboardError as error:
        return error.user_message()
    if not reads_images:
        return f"{model_id} does not read images; pick a vision model, or send the text alone."
    return None


def _text_problem(backend: Backend, text: str) -> str | None:
    limit = backend.settings.app.max_message_chars
    if len(text) > limit:
        return f"The message has {len(text):,} characters; the limit here is {limit:,}."
    return None


def _count(limits: VisitorLimits, request: gr.Request | None) -> None:
    """Count a request that starts a reply (retry, edit) against the visitor's limits, or refuse it."""
    try:
        limits.count(visitor_of(request))
    except TooManyRequestsError as error:
        raise gr.Error(error.user_message()) from None


def _parts(content: Any) -> list[dict]:
    return [part for part in content if isinstance(part, dict)] if isinstance(content, list) else []


def _file_path(file: Any) -> str:
    return file.get("path", "") if isinstance(file, dict) else str(file)


def _message_position(index: Any) -> int:
    """The message an event's `index` points at (Gradio gives an int, or a tuple whose first item it is)."""
    return index[0] if isinstance(index, tuple | list) else int(index)


def _upto_user_message(history: list, index: Any) -> list:
    """History up to and including the last user message at or before `index`."""
    position = _message_position(index)
    for cut in range(min(position, len(history) - 1), -1, -1):
        if history[cut].get("role") == "user":
            return history[: cut + 1]
    return []


def _answer_after_last_user(chat_history: list) -> str:
    """The answer text shown after the last user message (what a stopped reply had streamed)."""
    text = []
    for message in reversed(chat_history):
        if message.get("role") == "user":
            break
        if not is_thought(message):
            text.append(message_text(message.get("content")))
    return "".join(reversed(text))


def _is_pending_status(message: dict) -> bool:
    metadata = message.get("metadata") or {}
    return is_thought(message) and metadata.get("status") == "pending" and not message_text(message.get("content"))


def _settle(message: dict) -> dict:
    metadata = message.get("metadata") or {}
    if metadata.get("status") == "pending":
        return {**message, "metadata": {**metadata, "status": "done"}}
    return message


def _is_bundled(backend: Backend, model_id: str | None) -> bool:
    """Whether `model_id` is the small offline model that ships with the app (the page then says what to expect)."""
    try:
        return backend.models.info(model_id or "").bundled
    except SwitchboardError:
        return False
