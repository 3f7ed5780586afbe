"""Conversations that last: the typed model, what the model is sent from one, import and export, the files beside
them, the storage interfaces (implemented on SQL in backend/store/) and the one copy of each chat pages show."""

from __future__ import annotations

from .model import (
    MAX_IMPORT_BYTES,
    MAX_MESSAGES,
    PRESET_TEXT_LIMIT,
    Conversation,
    ConversationError,
    ConversationStore,
    Handover,
    MediaFiles,
    Preset,
    ReplyPart,
    StaleConversationError,
    StoredDocument,
    StoredMessage,
    Summary,
    model_messages,
    parse_import,
)

__all__ = [
    "MAX_IMPORT_BYTES",
    "MAX_MESSAGES",
    "PRESET_TEXT_LIMIT",
    "Conversation",
    "ConversationError",
    "ConversationStore",
    "Handover",
    "MediaFiles",
    "Preset",
    "ReplyPart",
    "StaleConversationError",
    "StoredDocument",
    "StoredMessage",
    "Summary",
    "model_messages",
    "parse_import",
]
