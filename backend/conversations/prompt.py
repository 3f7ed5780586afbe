"""What the model is sent for the next reply of a conversation."""

from __future__ import annotations

from ..documents.reader import Document
from ..offload import sized
from ..request import Message
from .model import Conversation, StoredDocument
from .stores import ConversationStore


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
