"""Conversations that last: the typed model, what the model is sent from one, import and export, the files beside
them, the storage interfaces (implemented on SQL in backend/store/) and the one copy of each chat pages show."""

from __future__ import annotations

from .exchange import MAX_IMPORT_BYTES, parse_import
from .media_files import MediaFiles
from .model import (
    MAX_MESSAGES,
    PRESET_TEXT_LIMIT,
    Conversation,
    ConversationError,
    Handover,
    Preset,
    ReplyPart,
    StaleConversationError,
    StoredDocument,
    StoredMessage,
    Summary,
)
from .open_chats import SharedConversations, ShownChat
from .prompt import model_messages
from .stores import ApiKeyStore, ConversationStore, PresetStore

__all__ = [
    "MAX_IMPORT_BYTES",
    "MAX_MESSAGES",
    "PRESET_TEXT_LIMIT",
    "ApiKeyStore",
    "Conversation",
    "ConversationError",
    "ConversationStore",
    "Handover",
    "MediaFiles",
    "Preset",
    "PresetStore",
    "ReplyPart",
    "SharedConversations",
    "ShownChat",
    "StaleConversationError",
    "StoredDocument",
    "StoredMessage",
    "Summary",
    "model_messages",
    "parse_import",
]
