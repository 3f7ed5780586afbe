"""A conversation as the app keeps it: a tree of messages (each with where it came from), its title, model and
settings; presets; and the errors about them. Each owner's data lives apart: every store call names the owner,
and nothing crosses owners."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from ..errors import OwnMessageError

EXPORT_FORMAT = "switchboard.conversation"
TITLE_LENGTH = 60
# Messages one chat holds, every version counted. Showing a chat costs the server's one event loop about 45 µs a
# message (Gradio's own processing of the Chatbot's value; our part runs on threads: backend/offload.py), so opening
# the longest chat holds everyone else up 90 ms at most (at 5,000 messages: 225 ms). Beyond most models' context.
MAX_MESSAGES = 2_000


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


# What a conversation's id is (Conversation.id: 8 random bytes in hex); anything else names no conversation.
CONVERSATION_ID = re.compile(r"[0-9a-f]{16}")
# What a reply stored as interrupted says: the process that generated it ended before the reply did.
INTERRUPTED = "The app stopped while this reply was being written; this is what had arrived."


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
