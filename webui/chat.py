"""The Chat tab: model picker, streamed replies with Stop / Retry / Undo / Edit, settings, and the `chat` API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gradio as gr

from backend import Backend, ChatRequest, InvalidImageError, SwitchboardError, TextDelta
from backend.media import load_image

from .reply import ReplyView, conversation, is_thought, message_text, stopped_marker
from .streaming import batched

log = logging.getLogger(__name__)

LATEX = [
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


def build_chat_tab(backend: Backend) -> None:
    """Lay out the Chat tab inside the current Blocks context and wire its events."""
    interval = backend.settings.app.stream_interval_ms / 1000
    choices = [(choice.label, choice.id) for choice in backend.models.chat_choices()]
    default = backend.models.default_chat

    model = gr.Dropdown(choices=choices, value=default, label="Model", elem_id="model-picker", filterable=True)
    notice = gr.Markdown(SMALL_MODEL_NOTICE, visible=_is_bundled_model(backend, default), elem_id="small-model-note")
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

    settings = [model, system, temperature, top_p, max_tokens, seed]

    async def respond(history, model_id, system_prompt, temp, top, max_new, seed_value) -> AsyncIterator:
        request = ChatRequest(
            model=model_id or default,
            messages=conversation(history, system_prompt, max_image_bytes=backend.settings.app.max_upload_bytes),
            temperature=temp,
            top_p=top if top is not None and top < 1 else None,  # 1 is everyone's default; some APIs refuse it
            max_tokens=int(max_new) if max_new and max_new > 0 else None,
            seed=int(seed_value) if seed_value is not None and seed_value >= 0 else None,
        )
        reply = ReplyView(request.model)
        yield history + reply.messages()  # a "waiting" line at once, before the first token
        try:
            async for batch in batched(backend.chat.stream(request), interval):
                for event in batch:
                    reply.apply(event)
                yield history + reply.messages()
        except SwitchboardError as error:
            reply.fail(error)
        except Exception as error:  # a bug of ours must not leave the chat hanging
            log.exception("reply failed")
            reply.fail(SwitchboardError(f"internal error ({type(error).__name__}); see the server log"))
        reply.close()
        yield history + reply.messages()

    def busy():
        return gr.update(value=None, interactive=False), gr.update(visible=False), gr.update(visible=True)

    def idle():
        return gr.update(interactive=True), gr.update(visible=True), gr.update(visible=False)

    def add_message(message: dict | None, history: list, model_id: str):
        text = ((message or {}).get("text") or "").strip()
        files = (message or {}).get("files") or []
        if not text and not files:
            raise gr.Error("Type a message first.", duration=3)
        images = [_checked_image(backend, _file_path(file)) for file in files]
        if images:
            _check_reads_images(backend, model_id or default)
        content = [{"type": "text", "text": text}, *({"path": path} for path in images)] if images else text
        return [*history, {"role": "user", "content": content}], *busy()

    def retry(history: list, data: gr.RetryData):
        return _upto_user_message(history, data.index), *busy()

    def edit(history: list, data: gr.EditData):
        kept = history[: data.index + 1]
        attachments = [part for part in _parts(kept[-1].get("content")) if part.get("type") == "file"]
        text = message_text(data.value)
        kept[-1] = {"role": "user", "content": [{"type": "text", "text": text}, *attachments] if attachments else text}
        return kept, *busy()

    def undo(history: list, data: gr.UndoData):
        kept = _upto_user_message(history, data.index)
        if not kept:
            return kept, None
        content = kept[-1]["content"]
        files = [part["file"]["path"] for part in _parts(content) if part.get("type") == "file"]
        return kept[:-1], {"text": message_text(content), "files": files}

    def finish(history: list):
        """After a reply: re-enable input; if the reply did not end on its footer, it was stopped: say so."""
        last = history[-1] if history else {}
        if is_thought(last) and (last.get("metadata") or {}).get("status") == "done":
            return gr.skip(), *idle()
        settled = [_settle(message) for message in history if not _is_pending_status(message)]
        return [*settled, stopped_marker()], *idle()

    controls = [textbox, send, stop]
    private = {"api_visibility": "private"}
    replies = []
    for trigger, prepare, inputs in (
        (textbox.submit, add_message, [textbox, chatbot, model]),
        (send.click, add_message, [textbox, chatbot, model]),
        (chatbot.retry, retry, [chatbot]),
        (chatbot.edit, edit, [chatbot]),
    ):
        # Queued: Gradio shows a gr.Error raised by an unqueued event as a bare "Error" label, without its message.
        started = trigger(prepare, inputs, [chatbot, *controls], **private)
        # Our own "waiting" line replaces Gradio's progress dots, which it places oddly after a stopped reply.
        reply = started.success(respond, [chatbot, *settings], chatbot, show_progress="hidden", **private)
        # Runs after the reply ends or, on Stop, after the cancellation: so the marker cannot be overwritten.
        reply.then(finish, chatbot, [chatbot, *controls], queue=False, **private)
        replies.append(reply)
    chatbot.undo(undo, chatbot, [chatbot, textbox], queue=False, **private)
    stop.click(idle, None, controls, cancels=replies, queue=False, **private)
    model.change(lambda m: gr.update(visible=_is_bundled_model(backend, m)), model, notice, queue=False, **private)

    async def chat(message: str, model: str = default) -> AsyncIterator[str]:
        """Send one message (no history) to `model` (provider/model or a route; default: the configured default)
        and stream the reply text; each update is the whole text so far."""
        request = ChatRequest(model=model or default, messages=[{"role": "user", "content": message}])
        text = ""
        try:
            async for batch in batched(backend.chat.stream(request), interval):
                text += "".join(event.text for event in batch if type(event) is TextDelta)
                yield text
        except SwitchboardError as error:
            raise gr.Error(error.user_message()) from None

    gr.api(chat, api_name="chat", concurrency_limit=backend.settings.app.concurrency)


def _parts(content: Any) -> list[dict]:
    return [part for part in content if isinstance(part, dict)] if isinstance(content, list) else []


def _file_path(file: Any) -> str:
    return file.get("path", "") if isinstance(file, dict) else str(file)


def _checked_image(backend: Backend, path: str) -> str:
    """`path` if it holds a usable image (checked by content, not by name); else a one-line error."""
    try:
        load_image(path, max_bytes=backend.settings.app.max_upload_bytes)
    except InvalidImageError as error:
        raise gr.Error(f"{Path(path).name}: {error.user_message()}", duration=6) from None
    return path


def _check_reads_images(backend: Backend, model_id: str) -> None:
    """A clear refusal, before anything is sent, when the chosen model cannot read the attached images."""
    probe = ChatRequest(model=model_id, messages=[{"role": "user", "content": [_PIXEL]}])
    try:
        backend.chat.plan(probe)
    except SwitchboardError as error:
        raise gr.Error(f"{error.user_message()} Your message is still in the box.", duration=8) from None


_PIXEL = {"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}


def _upto_user_message(history: list, index: Any) -> list:
    """History up to and including the last user message at or before `index`."""
    position = index[0] if isinstance(index, tuple | list) else int(index)
    for cut in range(min(position, len(history) - 1), -1, -1):
        if history[cut].get("role") == "user":
            return history[: cut + 1]
    return []


def _is_pending_status(message: dict) -> bool:
    metadata = message.get("metadata") or {}
    return is_thought(message) and metadata.get("status") == "pending" and not message_text(message.get("content"))


def _settle(message: dict) -> dict:
    metadata = message.get("metadata") or {}
    if metadata.get("status") == "pending":
        return {**message, "metadata": {**metadata, "status": "done"}}
    return message


def _is_bundled_model(backend: Backend, model_id: str | None) -> bool:
    try:
        targets = backend.models.resolve(model_id or "")
    except SwitchboardError:
        return False
    config = targets[0][0].config
    return config.kind == "llama_cpp" and config.model_path is None
