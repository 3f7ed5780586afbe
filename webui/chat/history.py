"""Conversations in the Chat tab: the sidebar (new, list, search, rename, delete, export, import) and the
translation between a stored `Conversation` and what the Chatbot shows.

The stored conversation is the record; the Chatbot is its view. The handlers (handlers.py) keep both in step.
Everything is per owner: the logged-in user, or the one local owner when the app runs without authentication
(`identity.LOCAL_OWNER`).
"""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

import aiofiles

from backend import (
    MAX_IMPORT_BYTES,
    Backend,
    Conversation,
    ConversationError,
    Document,
    Image,
    StoredDocument,
    StoredMessage,
    on_worker,
    parse_import,
    sized,
)

from ..scratch import fresh_folder
from .reply import ReplyView


async def store_user_message(
    backend: Backend, owner: str, text: str, images: list[Image], documents: list[Document]
) -> StoredMessage:
    """The user's message for the store; attached (validated) images, and documents as attached, are kept in the
    owner's media folder; a document's text is kept with the message (what the model reads)."""
    media = backend.conversations
    references = [await media.save_image(owner, image.data, image.mime) for image in images]
    stored_documents = [
        StoredDocument(
            name=document.name, text=document.text, file=await media.save_image(owner, document.data, document.mime)
        )
        for document in documents
    ]
    return StoredMessage(role="user", text=text, images=references, documents=stored_documents)


def reply_streaming(conversation: Conversation) -> bool:
    """Whether the visible branch ends with a reply being written (as far as this copy of the chat knows)."""
    return conversation.leaf is not None and conversation.nodes[conversation.leaf].status == "streaming"


async def view(
    backend: Backend, owner: str, conversation: Conversation, *, live: bool
) -> tuple[list[dict[str, Any]], list[tuple[str, int]], int | None]:
    """What the page shows of the conversation: the Chatbot's messages (`render`), and the versions picker's
    choices and the one on show. Each a walk of the conversation: for a big one, on a thread of its own."""

    def walk() -> tuple[list[dict[str, Any]], list[tuple[str, int]], int | None]:
        children = conversation.children()
        choices = version_choices(conversation, children)
        return render(backend, owner, conversation, live=live), choices, shown_version(conversation, children)

    return await sized(len(conversation.nodes), walk)


def render(backend: Backend, owner: str, conversation: Conversation, *, live: bool = False) -> list[dict[str, Any]]:
    """The Chatbot messages for a stored conversation's visible branch; with `live`, without the reply being
    generated at its end (the page follows that one). Images are shown from copies (`viewable_images`)."""
    history: list[dict[str, Any]] = []
    shown = list(conversation.messages)
    if live and shown and shown[-1].status == "streaming":
        shown.pop()
    for message in shown:
        if message.role == "user":
            files: list[dict[str, Any]] = [{"path": path} for path in viewable_images(backend, owner, message.images)]
            copies = viewable_documents(backend, owner, message.documents)
            for document, path in zip(message.documents, copies, strict=True):
                # A chip with the document's name (the Chatbot names a file by its orig_name).
                file = {"path": path, "orig_name": document.name, "mime_type": _mime_of(document.name)}
                files.append({"file": file, "alt_text": document.name})
            content = [{"type": "text", "text": message.text}, *files] if files else message.text
            history.append({"role": "user", "content": content})
        elif message.role == "assistant":
            history += ReplyView.restored(message).messages()
    return history


def viewable_images(backend: Backend, owner: str, references: list[str]) -> list[str]:
    """Copies of stored images in a private temporary folder that Gradio may serve (under a name derived from
    their content), never the store's own files; missing ones are left out."""
    if not references:
        return []
    view_dir = fresh_folder("view")
    paths = []
    for reference in references:
        source = backend.conversations.image_path(owner, reference)
        if source.is_file():
            target = view_dir / source.name
            shutil.copyfile(source, target)
            paths.append(str(target))
    return paths


def viewable_documents(backend: Backend, owner: str, documents: list[StoredDocument]) -> list[str]:
    """Copies of attached documents, each under its own name in a folder of its own (the chip shows the name)."""
    if not documents:
        return []
    view_dir = fresh_folder("view")
    paths = []
    for number, document in enumerate(documents):
        source = backend.conversations.image_path(owner, document.file) if document.file else None
        folder = view_dir / str(number)
        folder.mkdir()
        target = folder / (re.sub(r"[^\w.\- ]+", "_", document.name).strip(". ") or "document.txt")
        if source is not None and source.is_file():
            shutil.copyfile(source, target)
        else:  # imported from an export: the text is what there is
            target = target.with_suffix(".txt")
            target.write_text(document.text, encoding="utf-8")
        paths.append(str(target))
    return paths


def _mime_of(name: str) -> str:
    return "application/pdf" if name.lower().endswith(".pdf") else "text/plain"


def user_node(conversation: Conversation, history: list[dict[str, Any]], index: Any) -> int:
    """The node of the user message the Chatbot shows at or before position `index` (an edit's, a retry's or an
    undo's target): the n-th user message of the page is the n-th of the visible branch."""
    gone = ConversationError("That message is not part of this chat any more; open the chat again.")
    try:  # the page sends the index; a forged one is refused like a stale one
        position = int(index[0] if isinstance(index, tuple | list) else index)
    except (TypeError, ValueError, IndexError):
        raise gone from None
    shown = history[: position + 1] if isinstance(history, list) and position >= 0 else []
    count = sum(1 for message in shown if isinstance(message, dict) and message.get("role") == "user")
    users = [node for node in conversation.branch if conversation.nodes[node].role == "user"]
    if not 1 <= count <= len(users):
        raise gone
    return users[count - 1]


def version_choices(
    conversation: Conversation, children: dict[int | None, list[int]] | None = None
) -> list[tuple[str, int]]:
    """For each turn of the visible branch that has versions, each version ("Question 2 · 1/3 · words…", node),
    the one on show marked so (the picker ticks one only: an edited question's and a retried answer's are both
    shown); then what an undo took off the end of the branch (it is kept: pick it to show it again). One walk of
    the chat (`children`: its `Conversation.children()`, if made already)."""
    children = conversation.children() if children is None else children
    branch = conversation.branch
    on_show = set(branch)
    choices: list[tuple[str, int]] = []
    turn = {"user": 0, "assistant": 0}
    for node in branch:
        message = conversation.nodes[node]
        if message.role not in turn:
            continue
        turn[message.role] += 1
        versions = children[message.parent]
        if len(versions) > 1:
            choices += _versions(conversation, message.role, turn[message.role], versions, on_show)
    undone = children.get(conversation.leaf, [])
    for place, version in enumerate(undone, 1):
        role = conversation.nodes[version].role
        choices.append(_version(conversation, role, turn.get(role, 0) + 1, f"{place}/{len(undone)} undone", version))
    return choices


def _versions(
    conversation: Conversation, role: str, turn: int, versions: list[int], on_show: set[int]
) -> list[tuple[str, int]]:
    return [
        _version(conversation, role, turn, f"{place}/{len(versions)}", version, shown=version in on_show)
        for place, version in enumerate(versions, 1)
    ]


def _version(
    conversation: Conversation, role: str, turn: int, place: str, version: int, *, shown: bool = False
) -> tuple[str, int]:
    kind = "Question" if role == "user" else "Answer"
    on_show = " · on show" if shown else ""
    return f"{kind} {turn} · {place} · {_preview(conversation.nodes[version].text)}{on_show}", version


def _preview(text: str, width: int = 40) -> str:
    """The text's words on one line, cut to `width` characters with "…": read only as far as needed (an answer
    can be long, and a turn can have thousands of versions)."""
    words: list[str] = []
    length = -1
    for word in re.finditer(r"\S+", text):
        words.append(word.group())
        length += len(words[-1]) + 1
        if length > width:
            break
    line = " ".join(words)
    return line if len(line) <= width else line[: width - 1] + "…"


def shown_version(conversation: Conversation, children: dict[int | None, list[int]] | None = None) -> int | None:
    """The last turn of the visible branch that has versions (the picker shows which of them is on show)."""
    children = conversation.children() if children is None else children
    with_versions = [node for node in conversation.branch if len(children[conversation.nodes[node].parent]) > 1]
    return with_versions[-1] if with_versions else None


async def export_file(conversation: Conversation, kind: str) -> str:
    """The conversation as a Markdown or JSON file in a fresh temporary folder, for download (made on a thread of
    its own for a big chat)."""
    return await sized(len(conversation.nodes), _export_file, conversation, kind)


def _export_file(conversation: Conversation, kind: str) -> str:
    folder = fresh_folder("export")
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", conversation.title).strip("-")[:50] or "conversation"
    if kind == "md":
        path = folder / f"{name}.md"
        path.write_text(conversation.to_markdown(), encoding="utf-8")
    else:
        path = folder / f"{name}.json"
        path.write_text(json.dumps(conversation.to_export(), indent=2, ensure_ascii=False), encoding="utf-8")
    return str(path)


async def import_file(backend: Backend, owner: str, path: str) -> Conversation:
    """Store the conversation in the uploaded JSON file as a new one of `owner`'s; ConversationError if the file
    cannot be read or is not a conversation. Parsed on a thread of the big chats' (backend.on_worker): the event
    loop serves everyone else."""
    try:
        async with aiofiles.open(path, "rb") as file:
            data = await file.read(MAX_IMPORT_BYTES + 1)
    except OSError:
        raise ConversationError("Could not read the uploaded file.") from None
    limit = backend.settings.app.max_message_chars
    conversation = await on_worker(parse_import, data, max_message_chars=limit)
    await backend.conversations.save(owner, conversation)
    return conversation
