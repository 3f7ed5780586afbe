"""One typed error tree for everything the backend can fail with.

Every error raised by a provider or a service carries where it came from (`provider`, `model`), the HTTP
`status` when there was one, and `partial_text`: whatever part of the answer had already streamed when it failed,
so a caller never loses it. `user_message()` gives the one sentence the UI shows.

The names mirror openai-python's, so code written against that SDK catches the same things here.
"""

from __future__ import annotations

import math


class SwitchboardError(Exception):
    """Base of every error this package raises on purpose; `retry_after` is the wait the upstream asked for."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        partial_text: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.provider = provider
        self.model = model
        self.status = status
        self.partial_text = partial_text

    @property
    def status_code(self) -> int | None:
        """The HTTP status, by the openai SDK's name for it (`status` is ours)."""
        return self.status

    @property
    def where(self) -> str:
        if self.provider and self.model:
            return f"{self.provider}/{self.model}"
        return self.provider or self.model or "the provider"

    def user_message(self) -> str:
        """One sentence for a person reading the chat."""
        return f"{self.where} failed: {self.message}"

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{self.where}: {self.message}{status}"


class OwnMessageError(SwitchboardError):
    """An error about the app's own input (config, model id, upload, visitor limit...), not about a provider: its
    message is the whole sentence, for a person and for the log alike."""

    def user_message(self) -> str:
        return self.message

    def __str__(self) -> str:
        return self.message


class ConfigError(OwnMessageError):
    """The configuration file or environment is invalid; start-up stops with this message."""


class UnknownModelError(OwnMessageError):
    """A model id or route name that the configuration does not define."""


class UnsupportedCapabilityError(SwitchboardError):
    """The chosen model cannot do what was asked (images to a text model, tools on the local model, n > 1, ...);
    checked before any call."""

    def user_message(self) -> str:
        if self.provider is None and self.model is None:
            return self.message
        return f"{self.where} cannot do that: {self.message}"


class APIError(SwitchboardError):
    """The upstream answered with an error, or its stream broke."""

    retryable = False


class BadRequestError(APIError):
    """HTTP 400/422: the upstream rejected the request itself (bad parameter, context too long)."""

    def user_message(self) -> str:
        return f"{self.where} rejected the request: {self.message}"


class AuthenticationError(APIError):
    """HTTP 401: the API key is missing, wrong or revoked."""

    def user_message(self) -> str:
        return f"{self.where} rejected the API key (HTTP 401); check the key variable named in the config."


class PermissionDeniedError(APIError):
    """HTTP 403: the key is valid but may not use this model or endpoint."""

    def user_message(self) -> str:
        return f"{self.where} refused access (HTTP 403): {self.message}"


class NotFoundError(APIError):
    """HTTP 404: the model or endpoint does not exist upstream."""

    def user_message(self) -> str:
        return f"{self.where} was not found upstream (HTTP 404); check the model name and base_url."


class RateLimitError(APIError):
    """HTTP 429 (or a rate-limit error event): slow down; `retry_after` says for how long when the upstream said."""

    retryable = True

    def user_message(self) -> str:
        wait = f"; try again in {math.ceil(self.retry_after)} s" if self.retry_after else "; try again shortly"
        return f"{self.where} is rate limiting requests{wait}."


class InternalServerError(APIError):
    """HTTP 5xx, or an error event in the stream: the upstream failed on its side."""

    retryable = True

    def user_message(self) -> str:
        code = f" (HTTP {self.status})" if self.status else ""
        return f"{self.where} had a server error{code}: {self.message}"


class ServiceUnavailableError(InternalServerError):
    """HTTP 502/503/504/529: the upstream is overloaded or down for now."""

    def user_message(self) -> str:
        return f"{self.where} is overloaded or unavailable (HTTP {self.status}); try again shortly."


class APIConnectionError(APIError):
    """The connection could not be made, or dropped before the answer was complete."""

    retryable = True

    def user_message(self) -> str:
        if self.partial_text:
            return f"The connection to {self.where} dropped before the answer was complete."
        return f"Could not connect to {self.where}: {self.message}"


class APITimeoutError(APIConnectionError):
    """No byte arrived within the configured connect or read (idle) timeout."""

    def user_message(self) -> str:
        if self.partial_text:
            return f"{self.where} stopped sending for too long; the answer is incomplete."
        return f"{self.where} did not answer in time: {self.message}"


class ProviderUnavailableError(APIError):
    """The provider cannot run at all here (a local model whose runtime or file is missing)."""

    def user_message(self) -> str:
        return f"{self.where} is not available: {self.message}"


class CoolingDownError(APIError):
    """The model failed several times in a row and is rested for `retry_after` seconds; nothing was sent."""

    def user_message(self) -> str:
        wait = f"{math.ceil(self.retry_after)} s" if self.retry_after else "a moment"
        return f"{self.where} failed several times in a row and is resting; try again in {wait}."


class StreamError(APIError):
    """The upstream sent a stream we cannot read (malformed event, wrong content type)."""

    retryable = True

    def user_message(self) -> str:
        return f"{self.where} sent a malformed response: {self.message}"


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: APITimeoutError,
    409: InternalServerError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: ServiceUnavailableError,
    529: ServiceUnavailableError,
}


def error_class_for_status(status: int) -> type[APIError]:
    """The most specific error class for an HTTP status (5xx default to InternalServerError)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return InternalServerError
    return BadRequestError if 400 <= status < 500 else APIError


def redact(text: str, secrets: list[str]) -> str:
    """Remove secret values (API keys) from text that may reach a log, a screen or a file."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


# The typed SDK's names for the same errors (seed 003: `except models.TooManyRequests`), one class each, so code
# catching either name catches the same thing. Here ServiceUnavailable (503) is a kind of InternalServerError (500),
# and SDKError, any other 4xx-5xx, is the base of them all. (TooManyRequests is the upstream's 429; a shared UI's
# own visitor limit is limits.TooManyRequestsError.)
BadRequest = BadRequestError
Unauthorized = AuthenticationError
Forbidden = PermissionDeniedError
NotFound = NotFoundError
TooManyRequests = RateLimitError
ServiceUnavailable = ServiceUnavailableError
SDKError = APIError
