"""What the Chat tab checks before it saves or sends anything: a message's text and attachments, a text's length, the
visitor's limits. Each check answers with the one sentence that refuses (None when all is well) and touches no page:
the handlers say the sentence where it belongs (at the message box, in a toast).

A message sent from the page is Gradio's MultimodalTextbox value: `{"text": ..., "files": [...]}`, each file a
path or a dict with its `path` and the name it was attached under (`orig_name`); anything in it may be forged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend import (
    Backend,
    Document,
    InvalidImageError,
    SwitchboardError,
    TooManyRequestsError,
    VisitorLimits,
    check_fits,
    is_document,
    validate_image,
)

from ..refusals import too_long

EMPTY_MESSAGE = "Type a message first."


def sent_text(message: dict[str, Any] | None) -> str:
    """A message's text, without the spaces around it."""
    return ((message or {}).get("text") or "").strip()


def file_path(file: Any) -> str:
    return file.get("path", "") if isinstance(file, dict) else str(file)


def file_paths(message: dict[str, Any] | None) -> list[str]:
    """The paths of the files attached to a message (what the page takes out of the box once it is sent)."""
    return [file_path(file) for file in (message or {}).get("files") or []]


def attachments(message: dict[str, Any] | None) -> tuple[list[str], list[tuple[str, str]]]:
    """A message's attached files: the pictures' paths, and the documents' (path, name as attached). A file is a
    document by its name (backend.is_document); any other is a picture, checked as one by its content."""
    pictures, documents = [], []
    for file in (message or {}).get("files") or []:
        path = file_path(file)
        name = (file.get("orig_name") if isinstance(file, dict) else None) or Path(path).name
        if is_document(name):
            documents.append((path, name))
        else:
            pictures.append(path)
    return pictures, documents


def text_problem(text: str | None, limit: int, what: str = "message") -> str | None:
    """Why a text (a message, the system prompt) cannot be sent: longer than `limit` (app.max_message_chars)."""
    return too_long(text, limit, what)


def system_prompt_problem(text: str | None, limit: int) -> str | None:
    """Why a system prompt cannot be kept or sent: it is stored with the chat's settings and sent with every
    reply, so it may be no longer than a message."""
    return text_problem(text, limit, "system prompt")


def edit_problem(text: str, limit: int) -> str | None:
    """Why an edited question cannot replace the one it edits: nothing left of it, or too long."""
    return EMPTY_MESSAGE if not text else text_problem(text, limit)


async def limit_problem(limits: VisitorLimits, visitor: str) -> str | None:
    """Why the visitor may not start another request now (too many at once, or this minute); None when they may."""
    try:
        await limits.check(visitor)
    except TooManyRequestsError as error:
        return error.user_message()
    return None


async def read_document(backend: Backend, path: str, name: str, visitor: str) -> Document:
    """An attached document, read for the visitor (their reading counted: backend/documents/)."""
    return await backend.documents.read(path, name=name, visitor=visitor)


async def message_problem(
    backend: Backend, limits: VisitorLimits, message: dict[str, Any] | None, model_id: str, visitor: str
) -> str | None:
    """Why a message cannot be sent to `model_id` as it is, in one sentence; None when it can: no text and
    nothing attached, a text too long, the visitor's limits, a document that cannot be read or does not fit the
    model's context, a picture that is not one (or too big), a picture for a model that does not read them."""
    text = sent_text(message)
    pictures, attached = attachments(message)
    if not text and not pictures and not attached:
        return EMPTY_MESSAGE
    problem = text_problem(text, backend.settings.app.max_message_chars) or await limit_problem(limits, visitor)
    if problem or not (pictures or attached):
        return problem
    try:
        info = backend.models.info(model_id)
        # Documents by their content (a PDF must parse, text must be UTF-8), off the event loop; read once: the
        # step that saves the message gets this result back.
        documents = [await read_document(backend, path, name, visitor) for path, name in attached]
        check_fits(documents, model_id, info.context_length, text)
    except SwitchboardError as error:
        return error.user_message()
    return await _picture_problem(backend, pictures) or _vision_problem(model_id, bool(pictures), info.vision)


async def _picture_problem(backend: Backend, pictures: list[str]) -> str | None:
    for path in pictures:
        try:
            # By content, not by name; off the event loop. Decoded once: the backend remembers what it prepared, so
            # the step that saves the message gets this result back.
            await validate_image(path, max_bytes=backend.settings.app.max_upload_bytes)
        except InvalidImageError as error:
            return f"{Path(path).name}: {error.user_message()}"
    return None


def _vision_problem(model_id: str, pictures: bool, reads_images: bool) -> str | None:
    if pictures and not reads_images:
        return f"{model_id} does not read images; pick a vision model, or send the text alone."
    return None
