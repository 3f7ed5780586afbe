"""What every adapter that speaks HTTP shares: the httpx client, transport-error mapping, status errors, redaction,
and bounds on what an upstream can make us hold in memory."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import functools
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ..errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InternalServerError,
    StreamError,
    error_class_for_status,
    redact,
)
from ..request import ChatRequest
from ._config_base import _HTTPProviderBase
from .base import Provider

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

HTTPConfigT = TypeVar("HTTPConfigT", bound=_HTTPProviderBase)

# What every streaming adapter says and asks for, in the same words.
STREAM_CUT = "the stream ended before the answer was complete"
ERROR_EVENT = "error event in the stream"  # an error event that gave no message of its own
SSE_OR_JSON = "text/event-stream, application/json"  # the Accept of a streamed request (an error comes as JSON)
ERROR_BODY_LIMIT = 64_000  # bytes of an error response read for its message; the rest is never fetched
LINE_LIMIT = 16_000_000  # bytes: no stream we read has a line (an SSE field, an NDJSON object) anywhere near this
ERROR_MESSAGE_LIMIT = 300  # characters of an upstream's error message shown, cut after redaction
JSON_BODY_LIMIT = 64_000_000  # bytes of a whole (not streamed) answer: generated images travel in base64
LISTING_BODY_LIMIT = 16_000_000  # bytes of a model listing


class OversizedLine(Exception):
    """A streamed body has a line longer than LINE_LIMIT: a broken or hostile upstream."""


class LineLimitedStream(httpx.AsyncByteStream):
    """A response body that fails once one line grows past `limit` bytes, before it can fill memory (httpx-sse
    and our NDJSON reader buffer a line until it ends)."""

    def __init__(self, stream: httpx.AsyncByteStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        run = 0  # bytes since the last newline
        async for chunk in self._stream:
            first = chunk.find(b"\n")
            if first < 0:
                run += len(chunk)
            elif run + first > self._limit:
                run += first
            else:
                run = len(chunk) - chunk.rfind(b"\n") - 1
            if run > self._limit:
                raise OversizedLine(f"a line of the stream is longer than {self._limit // 1_000_000} MB")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class HTTPProvider(Provider[HTTPConfigT]):
    """A provider reached over HTTP. Subclasses add their auth headers in `auth_headers()`."""

    def __init__(self, name: str, config: HTTPConfigT) -> None:
        super().__init__(name, config)
        self._api_key = config.api_key()
        self._client = httpx.AsyncClient(
            base_url=config.base_url + "/",
            headers={**self.auth_headers(), **config.headers},
            proxy=config.proxy or None,
            timeout=self.timeout(),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            trust_env=False,
        )

    @property
    def retry_after_cap(self) -> float:
        return self.config.retry_after_cap

    def auth_headers(self) -> dict[str, str]:
        return {}

    def timeout(self, read: float | None = None) -> httpx.Timeout:
        """The connect timeout, and a read timeout. For streams the read timeout is only a backstop: the chat
        service times out silence itself (first output, then between outputs; see backend/providers/_watchdog.py)."""
        limits = [limit for limit in (self.config.first_token_timeout, self.config.idle_timeout) if limit]
        return httpx.Timeout(read or (max(limits) + 5 if limits else None), connect=self.config.connect_timeout)

    def short_lived_client(self) -> httpx.AsyncClient:
        """A client for start-up calls (model lists) made on an event loop other than the one serving chats."""
        return httpx.AsyncClient(
            base_url=self._client.base_url,
            headers=self._client.headers,
            proxy=self.config.proxy or None,
            timeout=self.config.connect_timeout,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    @contextlib.asynccontextmanager
    async def post_stream(
        self, path: str, body: dict[str, Any], request: ChatRequest, **options: Any
    ) -> AsyncIterator[httpx.Response]:
        """POST `body` and hand over the streaming response once its status is OK. An error status, and any
        transport error while the caller reads, becomes our typed error; leaving the block closes the response."""
        with self.mapped_errors(request.model):
            async with self._client.stream(
                "POST", path, json=body, timeout=self.timeout(request.timeout), **options
            ) as response:
                if response.status_code >= 400:
                    raise self.status_error(await bounded(response), request.model)
                assert isinstance(response.stream, httpx.AsyncByteStream)  # an AsyncClient's response
                response.stream = LineLimitedStream(response.stream, LINE_LIMIT)
                yield response

    def require_event_stream(self, response: httpx.Response, model: str | None) -> None:
        """Refuse an answer that is not Server-Sent Events (a proxy's login page, a JSON error with status 200)."""
        self.require_content_type(response, model, "text/event-stream")

    def require_content_type(self, response: httpx.Response, model: str | None, *accepted: str) -> None:
        """Refuse an answer of another content type than `accepted`, saying which it was (not quoting it)."""
        content_type = response.headers.get("content-type", "").partition(";")[0].strip()
        if content_type not in accepted:
            raise StreamError(
                f"expected an event stream, got content type {content_type or 'none'!r}",
                provider=self.name,
                model=model,
                status=response.status_code,
            )

    async def get_listing(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a model listing at start-up (on a short-lived client): one JSON object of at most
        LISTING_BODY_LIMIT bytes, else a StreamError."""
        with self.mapped_errors(model=None):
            async with self.short_lived_client() as client, client.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    raise self.status_error(await bounded(response), model=None)
                return self.json_object(await self.read_body(response, None, LISTING_BODY_LIMIT), response, None)

    async def post_json(self, path: str, body: dict[str, Any], model: str, timeout: httpx.Timeout) -> dict[str, Any]:
        """POST `body` for an answer that is one JSON object of at most JSON_BODY_LIMIT bytes (image generation);
        an error status, another answer or a transport error becomes our typed error."""
        with self.mapped_errors(model):
            async with self._client.stream("POST", path, json=body, timeout=timeout) as response:
                if response.status_code >= 400:
                    raise self.status_error(await bounded(response), model)
                return self.json_object(await self.read_body(response, model, JSON_BODY_LIMIT), response, model)

    async def read_body(self, response: httpx.Response, model: str | None, limit: int) -> bytes:
        """The whole body of `response`, refused with a StreamError as soon as it passes `limit` bytes (counted
        after decompression, so a compressed bomb is stopped too)."""
        declared = response.headers.get("content-length", "")
        body = bytearray()
        if not (declared.isdigit() and int(declared) > limit):
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    break
            else:
                return bytes(body)
        raise StreamError(
            f"answer larger than {limit // 1_000_000} MB", provider=self.name, model=model, status=response.status_code
        )

    async def post_embeddings(self, path: str, body: dict[str, Any], model: str) -> dict[str, Any]:
        """POST a batch of texts to embed; the answer as one JSON object (an error in a 200 answer raised). The
        wait for it is the first-token timeout: a server on a CPU takes seconds for a batch."""
        answer = await self.post_json(path, body, model, self.timeout(self.config.first_token_timeout))
        if "error" in answer:
            raise InternalServerError(self.secret(error_text(answer["error"])), provider=self.name, model=model)
        return answer

    def embedding_matrix(self, vectors: Any, count: int, model: str) -> NDArray[np.float32]:
        """`vectors` from an answer as a (count, dimensions) float32 matrix; a StreamError saying what is wrong
        with them otherwise (never quoting them)."""
        import numpy as np

        def malformed(what: str) -> StreamError:
            return StreamError(what, provider=self.name, model=model)

        if not isinstance(vectors, list) or len(vectors) != count:
            held = len(vectors) if isinstance(vectors, list) else 0
            raise malformed(f"the answer held {held} embedding{'' if held == 1 else 's'} for {count} texts")
        first = vectors[0] if vectors else None
        if isinstance(first, list) and first and isinstance(first[0], list):
            # llama.cpp's servers, for a model without pooling: one vector per token.
            raise malformed(
                "the answer held one vector per token, not one per text: have the server pool them "
                "(llama.cpp: --pooling mean)"
            )
        try:
            matrix = np.asarray(vectors, dtype=np.float32)
        except (ValueError, TypeError):
            matrix = np.empty((0, 0), dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape != (count, matrix.shape[1]) or not matrix.shape[1]:
            raise malformed("the embeddings in the answer are not lists of numbers of one length")
        if not np.isfinite(matrix).all():
            raise malformed("an embedding in the answer holds a number that is not finite")
        return matrix

    def decode_base64(self, encoded: str, model: str | None) -> bytes:
        """Image bytes sent as base64 (plain or a data: URL); anything else is a StreamError."""
        try:
            return base64.b64decode(encoded.partition(",")[2] if encoded.startswith("data:") else encoded)
        except ValueError:
            raise StreamError("an image in the answer is not valid base64", provider=self.name, model=model) from None

    def json_object(self, data: bytes, response: httpx.Response, model: str | None) -> dict[str, Any]:
        """`data` (a whole answer's body) as one JSON object; anything else is a StreamError saying what came,
        never quoting it."""
        try:
            payload = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            content_type = response.headers.get("content-type", "").partition(";")[0].strip() or "none"
            raise StreamError(
                f"expected a JSON object, got an answer of content type {content_type!r}",
                provider=self.name,
                model=model,
                status=response.status_code,
            )
        return payload

    def secret(self, text: str) -> str:
        """`text` without this provider's key, address, proxy or extra header values: an error message may
        reach a visitor of a shared instance, who must not learn where the app's upstreams are."""
        return redact(text, self._secrets)

    @functools.cached_property
    def _secrets(self) -> list[str]:
        values = [self._api_key or "", self.config.base_url, self.config.proxy or "", *self.config.headers.values()]
        # The address alone, with and without its port: "[redacted]:8080" would still say where the upstream is.
        for url in (self.config.base_url, self.config.proxy):
            if url:
                parts = urlsplit(url)
                values += [parts.netloc, parts.netloc.rpartition("@")[2], parts.hostname or ""]
        return sorted({value for value in values if value}, key=len, reverse=True)  # longest first

    @contextlib.contextmanager
    def mapped_errors(self, model: str | None) -> Iterator[None]:
        """Turn httpx's transport errors into our typed errors, most specific first."""
        try:
            yield
        except OversizedLine as exc:
            raise StreamError(str(exc), provider=self.name, model=model) from None
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"{type(exc).__name__} after the configured timeout", provider=self.name, model=model
            ) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise APIConnectionError(
                self.secret(str(exc) or type(exc).__name__), provider=self.name, model=model
            ) from None

    def status_error(self, response: httpx.Response, model: str | None) -> APIError:
        """The typed error for an HTTP error response (its body must have been read)."""
        status = response.status_code
        message = self.secret(error_message(response) or response.reason_phrase or "error")
        return error_class_for_status(status)(
            message[:ERROR_MESSAGE_LIMIT],
            provider=self.name,
            model=model,
            status=status,
            retry_after=parse_retry_after(response.headers),
        )

    def decode_json(self, data: str | bytes, model: str | None) -> dict[str, Any]:
        """One JSON object from a stream; anything else is a StreamError."""
        try:
            payload = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            text = data if isinstance(data, str) else data[:4096].decode("utf-8", "replace")
            shown = self.secret(text[:4096])[:80]  # redacted before it is cut, so no key is cut in two
            raise StreamError(f"malformed event: {shown!r}", provider=self.name, model=model)
        return payload


async def bounded(response: httpx.Response) -> httpx.Response:
    """A copy of an error response holding at most ERROR_BODY_LIMIT bytes of its body: enough for any error
    message, and an upstream (or a proxy before it) answering with a huge body cannot fill our memory."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= ERROR_BODY_LIMIT:
            break
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("content-encoding", "content-length")]
    return httpx.Response(
        response.status_code, headers=headers, content=bytes(body[:ERROR_BODY_LIMIT]), request=response.request
    )


def error_message(response: httpx.Response) -> str:
    """The human part of an error body, whatever the provider's JSON shape; uncut, so it can be redacted whole
    before it is shortened."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip()
        if "html" in response.headers.get("content-type", "") or text.startswith("<"):
            return ""  # a proxy's or server's error page: its status line says more than its markup
        return " ".join(text.split())
    if isinstance(body, list) and body:  # Gemini sometimes wraps the error in a list
        body = body[0]
    return error_text(body.get("error", body) if isinstance(body, dict) else body)


def error_text(error: Any) -> str:
    """The message of an error object (`{"message": ...}`, `{"detail": ...}`) or an error string."""
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)
    return str(error)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait as the upstream asked: `retry-after-ms`, then `retry-after` as seconds or an HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(float(raw_ms) / 1000, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def listed_names(entries: Any, *keys: str) -> Iterator[str]:
    """The model names of a listing's entries: the first of `keys` each entry has as a string. An entry without
    one names nothing we could call: it is skipped, not a crash at start-up."""
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict):
            name = next((entry[key] for key in keys if isinstance(entry.get(key), str) and entry[key]), None)
            if name is not None:
                yield name


def sniff_mime(data: bytes) -> str:
    """The MIME type of image bytes, from their content."""
    signatures = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}
    for signature, mime in signatures.items():
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"
