"""Conversations that last: the typed model, what the model is sent from it, Markdown/JSON export and import,
the storage interface (implemented on SQL in backend/store/) and the files beside it.

Attached images are stored once by content hash under `<root>/<owner>/media/` (MediaFiles), written to a
temporary file, flushed and renamed: a process killed at any moment leaves no half file. Conversations an
earlier version kept as one JSON file each (`<root>/<owner>/<id>.json`) are read here once, to be imported.
Each owner's data lives apart; every call names the owner, and nothing crosses owners.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import aiofiles
import aiofiles.os
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ..documents.reader import Document
from ..errors import OwnMessageError
from ..media import Image
from ..offload import sized
from ..request import Message
from .media_files import owner_folder, remove_stale_temporaries, write_atomically

log = logging.getLogger(__name__)

EXPORT_FORMAT = "switchboard.conversation"
TITLE_LENGTH = 60
MAX_IMPORT_BYTES = 5_000_000  # a few thousand pages of chat; parsing and showing more would stall the server
# Messages one chat holds, every version counted. Showing a chat costs the server's one event loop about 45 µs a
# message (Gradio's own processing of the Chatbot's value; our part runs on threads: backend/offload.py), so opening
# the longest chat holds everyone else up 90 ms at most (at 5,000 messages: 225 ms). Beyond most models' context.
MAX_MESSAGES = 2_000


MIME_BY_EXTENSION = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
}


class ConversationError(OwnMessageError):
    """A conversation that does not exist for this owner, or an import file we cannot read."""


def chat_full() -> ConversationError:
    return ConversationError(
        f"This chat holds {MAX_MESSAGES:,} messages (every version counted), the most a chat can: start a new chat."
    )


class Handover(BaseModel):
    """Where another provider took over an answer that failed mid-stream: at character `at` of `text`."""

    at: int = Field(ge=0)
    provider: str
    model: str
    reason: str = ""


class StoredDocument(BaseModel):
    """A document attached to a message: its name, its text (what the model reads) and the file as attached."""

    name: str
    text: str
    file: str | None = None  # a reference in the owner's media folder; None after an import


class StoredMessage(BaseModel):
    """One message with where it came from. `images` are references returned by `ConversationStore.save_image`.
    `provider`/`model` answered first; `handovers` lists the providers that continued the answer, if any."""

    role: Literal["user", "assistant", "system"]
    text: str = ""
    images: list[str] = Field(default_factory=list)
    documents: list[StoredDocument] = Field(default_factory=list)
    reasoning: str = ""
    provider: str | None = None
    model: str | None = None
    first_token_seconds: float | None = None
    seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    handovers: list[Handover] = Field(default_factory=list)
    # streaming: a reply generating now (its text grows in the store every second); interrupted: the process
    # that generated it ended before the reply did.
    status: Literal["complete", "stopped", "failed", "streaming", "interrupted"] = "complete"
    error: str | None = None
    created: float = Field(default_factory=time.time)
    parent: int | None = None  # the node this message follows in its Conversation (None: the first)


class Conversation(BaseModel):
    """A chat as a tree of messages: editing a question or regenerating an answer adds a sibling (a version)
    instead of replacing what followed. `nodes` holds every message ever in the chat, each with the index of the
    message it follows (`parent`); `leaf` ends the branch on show. `messages` is that branch, root first: what the
    page shows and the model is sent.

    Built from a flat `messages` list (older exports, stored JSON of earlier versions), each follows the one
    before."""

    id: str = Field(default_factory=lambda: secrets.token_hex(8))
    title: str = "New chat"
    created: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)
    model: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    nodes: list[StoredMessage] = Field(default_factory=list)
    leaf: int | None = None
    # The stored revision this copy was read at (0: never saved). Not part of exports.
    revision: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_flat_messages(cls, data: Any) -> Any:
        if isinstance(data, dict) and "messages" in data and "nodes" not in data:
            data = dict(data)
            flat = data.pop("messages") or []
            nodes = []
            for number, message in enumerate(flat):
                fields = message.model_dump() if isinstance(message, StoredMessage) else dict(message)
                nodes.append({**fields, "parent": number - 1 if number else None})
            data["nodes"], data["leaf"] = nodes, (len(nodes) - 1 if nodes else None)
        elif isinstance(data, dict) and "messages" in data:
            # Our exports carry the visible branch for older readers as well; the tree (nodes, leaf) rules.
            data = {key: value for key, value in data.items() if key != "messages"}
        return data

    @model_validator(mode="after")
    def _check_tree(self) -> Conversation:
        for number, node in enumerate(self.nodes):
            if node.parent is not None and not 0 <= node.parent < number:
                raise ValueError(f"message {number} follows message {node.parent}, which is not before it")
        if self.leaf is not None and not 0 <= self.leaf < len(self.nodes):
            raise ValueError("leaf: no such message")
        return self

    # --- the visible branch -----------------------------------------------------------------------------------

    @property
    def branch(self) -> list[int]:
        """The node numbers of the visible branch, root first."""
        path: list[int] = []
        node = self.leaf
        while node is not None:
            path.append(node)
            node = self.nodes[node].parent
        return path[::-1]

    @property
    def messages(self) -> tuple[StoredMessage, ...]:
        """The visible branch's messages, root first (change the chat through `add`, `show` and `cut_after`)."""
        return tuple(self.nodes[number] for number in self.branch)

    def add(self, message: StoredMessage, after: int | Literal["leaf"] | None = "leaf") -> int:
        """Add `message` after node `after` (by default the visible branch's end; None: as a first message) and
        show it: a version of whatever already followed `after`. Its node number. A chat that holds MAX_MESSAGES
        takes no more (ConversationError)."""
        if len(self.nodes) >= MAX_MESSAGES:
            raise chat_full()
        message.parent = self.leaf if after == "leaf" else after
        if message.parent is not None and not 0 <= message.parent < len(self.nodes):
            raise ConversationError("That message is not part of this chat.")
        self.nodes.append(message)
        self.leaf = len(self.nodes) - 1
        return self.leaf

    def versions(self, number: int) -> list[int]:
        """Node `number` and its siblings (the versions of that turn), oldest first. (For every turn at once, use
        `children`: this walks every message.)"""
        parent = self.nodes[number].parent
        return [other for other, node in enumerate(self.nodes) if node.parent == parent]

    def children(self) -> dict[int | None, list[int]]:
        """The nodes that follow each node (None: the first messages), oldest first, in one walk of the tree: the
        versions of a turn are the children of its parent."""
        following: dict[int | None, list[int]] = {}
        for number, node in enumerate(self.nodes):
            following.setdefault(node.parent, []).append(number)
        return following

    def fork(self) -> Conversation:
        """A copy to change (through `add`, `show`, `cut_after`, or its title, model and settings) without
        changing this one, which pages may be sharing. Messages are never changed once added, so the copy shares
        them and has only its own list of them: a big chat costs nothing to fork."""
        return self.model_copy(update={"nodes": list(self.nodes)})

    def show(self, number: int) -> None:
        """Show the branch through node `number` and on to where that branch was last added to (its newest
        message: node numbers grow as messages are added)."""
        if not 0 <= number < len(self.nodes):
            raise ConversationError("That message is not part of this chat.")
        below, newest = {number}, number
        for other in range(number + 1, len(self.nodes)):
            if self.nodes[other].parent in below:
                below.add(other)
                newest = other
        self.leaf = newest

    def cut_after(self, number: int | None) -> None:
        """End the visible branch at node `number` (None: before the first message); nothing is deleted, what
        followed stays reachable as a version."""
        if number is not None and not 0 <= number < len(self.nodes):
            raise ConversationError("That message is not part of this chat.")
        self.leaf = number

    def auto_title(self) -> None:
        """Title from the first user message, when the conversation has none yet."""
        if self.title != "New chat":
            return
        first = next((m.text for m in self.messages if m.role == "user" and m.text.strip()), "")
        line = " ".join(first.split())
        if line:
            self.title = line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"

    def to_markdown(self) -> str:
        """The visible branch as Markdown."""
        lines = [f"# {self.title}", ""]
        for message in self.messages:
            who = {"user": "You", "assistant": "Assistant", "system": "System"}[message.role]
            source = f" ({message.provider}/{message.model})" if message.provider and message.model else ""
            lines.append(f"**{who}**{source}:")
            lines.append("")
            if message.reasoning:
                lines += [f"> {line}" for line in message.reasoning.splitlines()] + [""]
            lines.append(message.text)
            lines += [f"![image]({ref})" for ref in message.images]
            lines += [f"📎 {document.name}" for document in message.documents]
            if message.status != "complete":
                lines.append(f"\n*({message.status}{': ' + message.error if message.error else ''})*")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def to_export(self) -> dict[str, Any]:
        """The whole tree (`nodes`, `leaf`), and the visible branch as `messages` for readers of version 1."""
        fields = self.model_dump(mode="json", exclude={"revision"})
        branch = [{k: v for k, v in fields["nodes"][n].items() if k != "parent"} for n in self.branch]
        return {"format": EXPORT_FORMAT, "version": 2, **fields, "messages": branch}


def parse_import(data: bytes, *, max_message_chars: int = 200_000) -> Conversation:
    """A conversation from our JSON export, an OpenAI-style `{"messages": [...]}` or a bare list of messages.
    Anything else raises ConversationError with one sentence. The result gets a new id."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ConversationError(f"The file is larger than {MAX_IMPORT_BYTES // 1_000_000} MB.")
    try:
        payload = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConversationError("The file is not JSON: import a Switchboard or OpenAI-style JSON export.") from None
    except RecursionError:
        raise ConversationError("The file is nested too deeply to be a conversation.") from None
    _check_count(payload)
    try:
        if isinstance(payload, dict) and payload.get("format") == EXPORT_FORMAT:
            fields = {k: v for k, v in payload.items() if k not in ("format", "version", "id", "revision")}
            conversation = Conversation.model_validate(fields)
        else:
            messages = payload.get("messages") if isinstance(payload, dict) else payload
            if not isinstance(messages, list) or not messages:
                raise ConversationError('The file holds no "messages" list to import.')
            conversation = Conversation(messages=[_openai_message(m) for m in messages])
            if isinstance(payload, dict) and isinstance(payload.get("title"), str):
                conversation.title = payload["title"]
    except ValidationError as exc:
        where = ".".join(str(part) for part in exc.errors()[0]["loc"])
        raise ConversationError(f"The file is not a valid conversation ({where}: {exc.errors()[0]['msg']}).") from None
    except RecursionError:
        raise ConversationError("The file is nested too deeply to be a conversation.") from None
    longest = max((len(message.text) for message in conversation.nodes), default=0)
    if longest > max_message_chars:
        raise ConversationError(
            f"A message of the file has {longest:,} characters; the limit here is {max_message_chars:,}."
        )
    conversation.auto_title()
    # Image references point into the exporting owner's store; they do not travel with a JSON file.
    for message in conversation.nodes:
        message.images = []
        for document in message.documents:  # its text travels with the file; the attached file does not
            document.file = None
        if message.status == "streaming":  # that reply ended with the export
            message.status = "interrupted"
    return conversation


def _check_count(payload: Any) -> None:
    """Refuse a file of more than MAX_MESSAGES messages before checking each of them."""
    listed = payload if isinstance(payload, list) else None
    if isinstance(payload, dict):
        listed = payload.get("nodes", payload.get("messages"))
    if isinstance(listed, list) and len(listed) > MAX_MESSAGES:
        raise ConversationError(f"The file holds {len(listed):,} messages; a chat holds at most {MAX_MESSAGES:,}.")


def _openai_message(message: Any) -> StoredMessage:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
        raise ConversationError('Each message needs a "role" of user, assistant or system.')
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if not isinstance(content, str):
        raise ConversationError('Each message needs a text "content".')
    return StoredMessage(role=message["role"], text=content)


class StaleConversationError(ConversationError):
    """A save based on an older revision of the conversation than the stored one: another tab, page or process
    changed it meanwhile. Nothing was written; read it again and apply the change to what is stored now."""


class Summary(BaseModel):
    id: str
    title: str
    updated: float
    snippet: str = ""  # with a search: the text around the match


PRESET_NAME_LIMIT = 80
PRESET_TEXT_LIMIT = 20_000


class Preset(BaseModel):
    """A system prompt saved under a name, to pick again in any chat."""

    name: str = Field(min_length=1, max_length=PRESET_NAME_LIMIT)
    text: str = Field(min_length=1, max_length=PRESET_TEXT_LIMIT)

    @field_validator("name")
    @classmethod
    def _one_line(cls, name: str) -> str:
        collapsed = " ".join(name.split())
        if not collapsed:
            raise ValueError("a preset needs a name")
        return collapsed


@dataclass(slots=True)
class ReplyPart:
    """What a reply being generated added since its last checkpoint."""

    text: str = ""
    reasoning: str = ""


class ConversationStore(Protocol):
    """What the app needs from conversation storage. Every method names the owner and touches nothing of anyone
    else's. `save` checks `conversation.revision` against the stored one (StaleConversationError when another
    write came first) and advances it; it dates the conversation now (its place in the list, newest first) unless
    `touch` is False (a rename keeps the chat where it is)."""

    async def list(self, owner: str, query: str = "", limit: int | None = None) -> list[Summary]: ...
    async def get(self, owner: str, conversation_id: str) -> Conversation: ...
    async def revision(self, owner: str, conversation_id: str) -> int | None: ...
    async def save(self, owner: str, conversation: Conversation, *, touch: bool = True) -> None: ...
    async def delete(self, owner: str, conversation_id: str) -> None: ...
    async def checkpoint(
        self,
        owner: str,
        conversation_id: str,
        position: int,
        seq: int,
        part: ReplyPart,
        provenance: StoredMessage | None = None,
    ) -> None: ...
    async def finish_reply(self, owner: str, conversation_id: str, position: int, message: StoredMessage) -> None: ...
    async def running_replies(self) -> Sequence[tuple[str, str, int, float]]: ...
    async def interrupt_reply(self, owner: str, conversation_id: str, position: int) -> bool: ...
    async def save_image(self, owner: str, data: bytes, mime: str) -> str: ...
    async def load_image(self, owner: str, reference: str) -> Image: ...
    def image_path(self, owner: str, reference: str) -> Path: ...
    async def presets(self, owner: str) -> Sequence[Preset]: ...
    async def save_preset(self, owner: str, preset: Preset) -> None: ...
    async def delete_preset(self, owner: str, name: str) -> None: ...
    async def create_api_key(self, owner: str) -> tuple[str, str]: ...
    async def api_key_owner(self, key: str) -> tuple[str, str] | None: ...
    async def revoke_api_key(self, key_id: str) -> str: ...
    async def aclose(self) -> None: ...


class MediaFiles:
    """Images attached to conversations: files named by their content's hash, per owner, under
    `<root>/<owner>/media/`, written atomically (a crash leaves no half file; what a killed write left behind is
    removed on the owner's first visit)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        self._tidied: set[str] = set()

    async def save(self, owner: str, data: bytes, mime: str) -> str:
        extension = {mime: suffix for suffix, mime in MIME_BY_EXTENSION.items()}
        reference = f"media/{hashlib.sha256(data).hexdigest()}{extension.get(mime, '.bin')}"
        path = self.root / owner_folder(owner) / reference
        if not await aiofiles.os.path.exists(path):
            await aiofiles.os.makedirs(path.parent, exist_ok=True)
            await write_atomically(path, data)
        return reference

    async def load(self, owner: str, reference: str) -> Image:
        """An image saved by `save`. It was validated and prepared before it was saved, so it is read, not
        decoded again."""
        path = self.path(owner, reference)
        if owner not in self._tidied:
            self._tidied.add(owner)
            await remove_stale_temporaries(path.parent)
        try:
            async with aiofiles.open(path, "rb") as file:
                data = await file.read()
        except OSError:
            raise ConversationError("An image of this conversation is missing from the store.") from None
        return Image(data, MIME_BY_EXTENSION.get(path.suffix, "application/octet-stream"))

    def path(self, owner: str, reference: str) -> Path:
        if not re.fullmatch(r"media/[0-9a-f]{64}\.(png|jpg|webp|gif|pdf|txt|bin)", reference):
            raise ConversationError("Not an image reference of this store.")
        return self.root / owner_folder(owner) / reference


async def legacy_conversations(root: Path, owner: str) -> list[Conversation]:
    """The conversations an earlier version kept as JSON files (`<root>/<owner folder>/<id>.json`), as they were;
    unreadable files are skipped with a warning."""
    folder = Path(root).expanduser() / owner_folder(owner)
    if not await aiofiles.os.path.isdir(folder):
        return []
    found = []
    for name in sorted(await aiofiles.os.listdir(folder)):
        if not re.fullmatch(r"[0-9a-f]{16}\.json", name):
            continue
        try:
            async with aiofiles.open(folder / name, "rb") as file:
                found.append(Conversation.model_validate_json(await file.read()))
        except (OSError, ValueError) as exc:  # ValidationError is a ValueError
            log.warning("skipping unreadable conversation %s: %s", folder / name, str(exc).splitlines()[0])
    return found


def _for_model(document: StoredDocument) -> str:
    return Document(document.name, document.text, "").for_model()


async def model_messages(
    store: ConversationStore, owner: str, conversation: Conversation, system_prompt: str = ""
) -> list[Message]:
    """What the model is sent for the next reply: the system prompt, then the stored user messages (with their
    images) and answers. Built from the store, never from what a page sends back, so a forged page cannot put
    another text, a bigger one or another user's file in front of the model."""
    messages, pictured = await sized(len(conversation.nodes), _turns_for_model, conversation)
    for position, references in pictured:
        images = [await store.load_image(owner, reference) for reference in references]
        parts = [{"type": "text", "text": messages[position]["content"]}, *(image.part() for image in images)]
        messages[position] = {"role": messages[position]["role"], "content": parts}
    if system_prompt.strip():
        messages.insert(0, {"role": "system", "content": system_prompt.strip()})
    return messages


def _turns_for_model(conversation: Conversation) -> tuple[list[Message], list[tuple[int, list[str]]]]:
    """The visible branch's turns as the model reads them (a document's text ahead of its message), and where
    the turns with images are, with their references (the images are read from the store afterwards)."""
    messages: list[Message] = []
    pictured: list[tuple[int, list[str]]] = []
    for message in conversation.messages:
        if message.role == "system" or (message.role == "assistant" and not message.text):
            continue
        if message.images:
            pictured.append((len(messages), message.images))
        text = "\n\n".join([*(_for_model(document) for document in message.documents), message.text])
        messages.append({"role": message.role, "content": text})
    return messages, pictured
