"""Switchboard's backend: providers from a TOML config, one stream-event model, retries and failover.

Public surface (everything else is internal):

    from backend import AsyncClient, Client, ChatCompletion          # OpenAI-shaped and g4f-style APIs
    from backend import create_client                                # one model, plain-text helpers
    from backend import Backend, ChatRequest, load_settings          # the service layer the UI uses
    from backend import RateLimitError, AuthenticationError, ...     # the typed error tree

This package never imports gradio: the web UI is one consumer among others.
"""

from .client import AsyncClient, AsyncStream, ChatCompletion, Client
from .config import Settings, load_settings
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    CoolingDownError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
    SwitchboardError,
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
    Usage,
)
from .factory import ChatClient, create_client
from .imagegen import ImageRequest
from .media import InvalidImageError
from .request import ChatRequest
from .services import Backend, ChatService

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncStream",
    "AuthenticationError",
    "Backend",
    "BadRequestError",
    "ChatClient",
    "ChatCompletion",
    "ChatRequest",
    "ChatService",
    "Client",
    "ConfigError",
    "CoolingDownError",
    "Finish",
    "ImageRequest",
    "InternalServerError",
    "InvalidImageError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderUnavailableError",
    "Queued",
    "RateLimitError",
    "ReasoningDelta",
    "Resumed",
    "Retrying",
    "ServiceUnavailableError",
    "Settings",
    "Started",
    "StreamError",
    "StreamEvent",
    "SwitchboardError",
    "TextDelta",
    "ToolCallDelta",
    "UnknownModelError",
    "UnsupportedCapabilityError",
    "Usage",
    "create_client",
    "load_settings",
]
