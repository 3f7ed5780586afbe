"""Switchboard's backend: providers from a TOML config, one stream-event model, retries and failover.

Public surface (everything else is internal):

    from backend import AsyncClient, Client, ChatCompletion          # OpenAI-shaped and g4f-style APIs
    from backend import create_client                                # one model, plain-text helpers
    from backend import Backend, ChatRequest, load_settings          # the service layer the UI uses
    from backend import RateLimitError, AuthenticationError, ...     # the typed error tree
    from backend import ChatCompletionRole, TooManyRequests, models  # the typed SDK's names (client.chat.create)
    from backend import Conversation, StoredMessage, model_messages  # conversations (backend.conversations)
    from backend import VisitorLimits, Users, validate_image         # what a shared UI needs to stay safe
    Backend(settings).models.info("openai/gpt-4o")                   # a ModelInfo: vision, images, tools...
    from backend import ToolBox, tool_loop, tool_access              # tools that act ([tools.*]: MCP, web search)

This package never imports gradio: the web UI is one consumer among others, and imports nothing but these.
"""

from importlib import import_module
from typing import TYPE_CHECKING

# The error tree and the stream events are small and used everywhere: always loaded.
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequest,
    BadRequestError,
    ConfigError,
    CoolingDownError,
    Forbidden,
    InternalServerError,
    NotFound,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitError,
    SDKError,
    ServiceUnavailable,
    ServiceUnavailableError,
    StreamError,
    SwitchboardError,
    TooManyRequests,
    Unauthorized,
    UnknownModelError,
    UnsupportedCapabilityError,
)
from .events import (
    Finish,
    Queued,
    ReasoningDelta,
    Resumed,
    Retrying,
    Started,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStarted,
    ToolResult,
    Usage,
)

# The rest loads on first use (PEP 562): `import backend` stays cheap, and pydantic-settings, the services and
# the adapters are imported when a program first touches them.
_LAZY = {
    "AsyncClient": ".client.async_client",
    "AsyncStream": ".client.async_client",
    "ChatCompletion": ".client.facade",
    "Client": ".client.sync_client",
    "Settings": ".config",
    "load_settings": ".config",
    "ChatClient": ".client.factory",
    "create_client": ".client.factory",
    "ImageRequest": ".request",
    "InvalidImageError": ".media",
    "NOT_AN_IMAGE_URL": ".media",
    "ChatRequest": ".request",
    "Backend": ".app",
    "ChatService": ".services",
    "DOCUMENT_EXTENSIONS": ".documents.reader",
    "Document": ".documents.reader",
    "DocumentError": ".documents.reader",
    "DocumentReader": ".documents.reader",
    "check_fits": ".documents.reader",
    "is_document": ".documents.reader",
    "read_document": ".documents.reader",
    "StoredDocument": ".conversations",
    "Replies": ".replies.manager",
    "ReplyRecord": ".replies.record",
    "RunningReply": ".replies.running",
    "RemoteReply": ".replicas.relay",
    "Conversation": ".conversations",
    "ConversationError": ".conversations",
    "ApiKeyStore": ".conversations",
    "ConversationStore": ".conversations",
    "PresetStore": ".conversations",
    "Handover": ".conversations",
    "StoredMessage": ".conversations",
    "StaleConversationError": ".conversations",
    "Summary": ".conversations",
    "gateway_router": ".api.router",
    "Provider": ".client.in_code",
    "RetryProvider": ".client.in_code",
    "Preset": ".conversations",
    "PRESET_TEXT_LIMIT": ".conversations",
    "model_messages": ".conversations",
    "parse_import": ".conversations",
    "MAX_IMPORT_BYTES": ".conversations",
    "MAX_MESSAGES": ".conversations",
    "SharedConversations": ".conversations.open_chats",
    "ShownChat": ".conversations.open_chats",
    "sized": ".offload",
    "on_worker": ".offload",
    "Image": ".media",
    "validate_image": ".media",
    "ModelInfo": ".providers",
    "StoredImage": ".services.image_store",
    "TooManyRequestsError": ".limits",
    "ChatCompletionEvent": ".client.typed_sdk",
    "ChatCompletionRole": ".client.typed_sdk",
    "UploadAllowance": ".limits",
    "VisitorLimits": ".limits",
    "too_many_characters": ".limits",
    "login_visitor": ".limits",
    "LOCAL_OWNER": ".auth",
    "Users": ".auth",
    "LoginRefusedError": ".auth",
    "Sessions": ".auth",
    "SharedFailures": ".replicas.failures",
    "SharedSessions": ".replicas.sessions",
    "SessionOwners": ".session_owners",
    "SharedSessionOwners": ".replicas.bindings",
    "load_users": ".auth",
    "hash_password": ".auth",
    "ToolBox": ".tools",
    "ToolCall": ".tools",
    "ToolSet": ".tools",
    "tool_access": ".tools",
    "tool_loop": ".tools",
}

if TYPE_CHECKING:
    from .api.router import gateway_router
    from .app import Backend
    from .auth import LOCAL_OWNER, LoginRefusedError, Sessions, Users, hash_password, load_users
    from .client import typed_sdk as models
    from .client.async_client import AsyncClient, AsyncStream
    from .client.facade import ChatCompletion
    from .client.factory import ChatClient, create_client
    from .client.in_code import Provider, RetryProvider
    from .client.sync_client import Client
    from .client.typed_sdk import ChatCompletionEvent, ChatCompletionRole
    from .config import Settings, load_settings
    from .conversations import (
        MAX_IMPORT_BYTES,
        MAX_MESSAGES,
        PRESET_TEXT_LIMIT,
        ApiKeyStore,
        Conversation,
        ConversationError,
        ConversationStore,
        Handover,
        Preset,
        PresetStore,
        StaleConversationError,
        StoredDocument,
        StoredMessage,
        Summary,
        model_messages,
        parse_import,
    )
    from .conversations.open_chats import SharedConversations, ShownChat
    from .documents.reader import (
        DOCUMENT_EXTENSIONS,
        Document,
        DocumentError,
        DocumentReader,
        check_fits,
        is_document,
        read_document,
    )
    from .limits import TooManyRequestsError, UploadAllowance, VisitorLimits, login_visitor, too_many_characters
    from .media import NOT_AN_IMAGE_URL, Image, InvalidImageError, validate_image
    from .offload import on_worker, sized
    from .providers import ModelInfo
    from .replicas.bindings import SharedSessionOwners
    from .replicas.failures import SharedFailures
    from .replicas.relay import RemoteReply
    from .replicas.sessions import SharedSessions
    from .replies.manager import Replies
    from .replies.record import ReplyRecord
    from .replies.running import RunningReply
    from .request import ChatRequest, ImageRequest
    from .services import ChatService
    from .services.image_store import StoredImage
    from .session_owners import SessionOwners
    from .tools import ToolBox, ToolCall, ToolSet, tool_access, tool_loop


# The typed SDK's `models` namespace (`except models.TooManyRequests`) is the module of that dialect itself.
_NAMESPACES = {"models": ".client.typed_sdk"}


def __getattr__(name: str) -> object:
    if name in _NAMESPACES:
        value: object = import_module(_NAMESPACES[name], __name__)
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'backend' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DOCUMENT_EXTENSIONS",
    "LOCAL_OWNER",
    "MAX_IMPORT_BYTES",
    "MAX_MESSAGES",
    "NOT_AN_IMAGE_URL",
    "PRESET_TEXT_LIMIT",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "ApiKeyStore",
    "AsyncClient",
    "AsyncStream",
    "AuthenticationError",
    "Backend",
    "BadRequest",
    "BadRequestError",
    "ChatClient",
    "ChatCompletion",
    "ChatCompletionEvent",
    "ChatCompletionRole",
    "ChatRequest",
    "ChatService",
    "Client",
    "ConfigError",
    "Conversation",
    "ConversationError",
    "ConversationStore",
    "CoolingDownError",
    "Document",
    "DocumentError",
    "DocumentReader",
    "Finish",
    "Forbidden",
    "Handover",
    "Image",
    "ImageRequest",
    "InternalServerError",
    "InvalidImageError",
    "LoginRefusedError",
    "ModelInfo",
    "NotFound",
    "NotFoundError",
    "PermissionDeniedError",
    "Preset",
    "PresetStore",
    "Provider",
    "ProviderUnavailableError",
    "Queued",
    "RateLimitError",
    "ReasoningDelta",
    "RemoteReply",
    "Replies",
    "ReplyRecord",
    "Resumed",
    "RetryProvider",
    "Retrying",
    "RunningReply",
    "SDKError",
    "ServiceUnavailable",
    "ServiceUnavailableError",
    "SessionOwners",
    "Sessions",
    "Settings",
    "SharedConversations",
    "SharedFailures",
    "SharedSessionOwners",
    "SharedSessions",
    "ShownChat",
    "StaleConversationError",
    "Started",
    "StoredDocument",
    "StoredImage",
    "StoredMessage",
    "StreamError",
    "StreamEvent",
    "Summary",
    "SwitchboardError",
    "TextDelta",
    "TooManyRequests",
    "TooManyRequestsError",
    "ToolBox",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallStarted",
    "ToolResult",
    "ToolSet",
    "Unauthorized",
    "UnknownModelError",
    "UnsupportedCapabilityError",
    "UploadAllowance",
    "Usage",
    "Users",
    "VisitorLimits",
    "check_fits",
    "create_client",
    "gateway_router",
    "hash_password",
    "is_document",
    "load_settings",
    "load_users",
    "login_visitor",
    "model_messages",
    "models",
    "on_worker",
    "parse_import",
    "read_document",
    "sized",
    "too_many_characters",
    "tool_access",
    "tool_loop",
    "validate_image",
]
