"""Conversations in and out of the app: Markdown and JSON export (`Conversation.to_markdown`, `to_export`), and
the import of our JSON export, an OpenAI-style `{"messages": [...]}` or a bare list of messages."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ..limits import too_many_characters
from .model import EXPORT_FORMAT, MAX_MESSAGES, Conversation, ConversationError, StoredMessage

MAX_IMPORT_BYTES = 5_000_000  # a few thousand pages of chat; parsing and showing more would stall the server


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
        raise ConversationError(too_many_characters("A message of the file", longest, max_message_chars))
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
