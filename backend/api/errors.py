"""Errors as the OpenAI API answers them: its status codes, error types and codes, so SDKs raise their own typed
errors (a 429 with Retry-After, a 404 for an unknown model, 502/503/504 when the upstream failed)."""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import JSONResponse

from ..errors import (
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CoolingDownError,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitError,
    ServiceUnavailableError,
    SwitchboardError,
    UnknownModelError,
    UnsupportedCapabilityError,
)
from ..limits import TooManyRequestsError


class GatewayError(Exception):
    """An answer in OpenAI's error shape."""

    def __init__(self, status: int, message: str, kind: str, code: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.retry_after = status, message, kind, code, retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"retry-after": str(math.ceil(self.retry_after))} if self.retry_after else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def as_gateway_error(error: Exception) -> GatewayError:
    """Our error as OpenAI's status, type and code. Upstream details beyond our one sentence are never passed on
    (they can echo keys)."""
    if isinstance(error, GatewayError):
        return error
    message = error.user_message() if isinstance(error, SwitchboardError) else str(error)
    retry = getattr(error, "retry_after", None)
    match error:
        case UnknownModelError():
            return GatewayError(404, message, "invalid_request_error", "model_not_found")
        case TooManyRequestsError() | RateLimitError():
            return GatewayError(429, message, "rate_limit_error", "rate_limit_exceeded", retry or 1)
        case CoolingDownError():
            return GatewayError(503, message, "service_unavailable", "model_cooling_down", retry)
        case UnsupportedCapabilityError() | BadRequestError():
            return GatewayError(400, message, "invalid_request_error")
        case AuthenticationError() | PermissionDeniedError():  # the upstream refused our key: the server's fault
            return GatewayError(502, message, "server_error", "upstream_authentication")
        case NotFoundError():
            return GatewayError(502, message, "server_error", "upstream_not_found")
        case APITimeoutError():
            return GatewayError(504, message, "timeout")
        case ServiceUnavailableError() | ProviderUnavailableError():
            return GatewayError(503, message, "service_unavailable", None, retry)
        case APIError():  # a server error upstream, a connection that failed, a stream cut
            return GatewayError(502, message, "server_error")
        case SwitchboardError():  # an image that cannot be read, an import, a document: the request's fault
            return GatewayError(400, message, "invalid_request_error")
    return GatewayError(500, "The server failed; see its log.", "server_error")
