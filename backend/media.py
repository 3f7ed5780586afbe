"""Images going in (vision): validated by content with Pillow, downscaled, carried as data URLs in messages.

Inside the backend an image travels as an OpenAI-style content part, `{"type": "image_url", "image_url":
{"url": "data:image/png;base64,..."}}`; each adapter re-encodes it in its protocol's own form. Remote
`http(s)` image URLs are fetched (with limits, and never from private addresses unless allowed) and turned
into data URLs before any adapter sees them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
import os
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import OwnMessageError

MAX_SIDE = 2048  # longest side sent upstream; larger images are downscaled (providers downscale anyway)
MAX_PIXELS = 50_000_000  # decoding more than this is refused as a decompression bomb
KEPT_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


class InvalidImageError(OwnMessageError):
    """An image input that cannot be used: not an image, corrupt, too large, or from a refused URL."""


@dataclass(frozen=True, slots=True)
class Image:
    """Validated image bytes and their MIME type."""

    data: bytes
    mime: str
    width: int = 0
    height: int = 0

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.b64}"

    def part(self) -> dict[str, Any]:
        """This image as an OpenAI content part."""
        return {"type": "image_url", "image_url": {"url": self.data_url}}


def prepare_image(data: bytes, *, max_bytes: int) -> Image:
    """Check `data` is a real image by its content, refuse bombs and oversize input, downscale to MAX_SIDE."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if len(data) > max_bytes:
        raise InvalidImageError(f"The image is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    if not data:
        raise InvalidImageError("The image is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as probe:
                fmt, size = probe.format, probe.size
                if size[0] * size[1] > MAX_PIXELS:
                    raise InvalidImageError(
                        f"The image is {size[0]}x{size[1]} pixels; more than {MAX_PIXELS // 1_000_000} million "
                        "pixels is refused."
                    )
                probe.load()  # decodes every pixel: truncated or corrupt files fail here
                if max(size) <= MAX_SIDE and fmt in KEPT_FORMATS:
                    return Image(data, KEPT_FORMATS[fmt], *size)
                return _reencode(probe)
    except InvalidImageError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise InvalidImageError("The image is too large to decode safely (decompression bomb).") from None
    except UnidentifiedImageError:
        raise InvalidImageError("The file is not an image Pillow can read (PNG, JPEG, WebP, GIF...).") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"The image is damaged and cannot be decoded ({exc}).") from None


def _reencode(picture) -> Image:
    picture.thumbnail((MAX_SIDE, MAX_SIDE))
    has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
    out = io.BytesIO()
    if has_alpha:
        picture.convert("RGBA").save(out, format="PNG", optimize=True)
        mime = "image/png"
    else:
        picture.convert("RGB").save(out, format="JPEG", quality=90)
        mime = "image/jpeg"
    return Image(out.getvalue(), mime, *picture.size)


def load_image(source: Any, *, max_bytes: int) -> Image:
    """An image from bytes, a path, a binary file object, a PIL image or a data URL, validated."""
    if isinstance(source, Image):
        return source
    if isinstance(source, bytes | bytearray | memoryview):
        return prepare_image(bytes(source), max_bytes=max_bytes)
    if isinstance(source, str) and source.startswith("data:"):
        return prepare_image(decode_data_url(source), max_bytes=max_bytes)
    if isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if not path.is_file():
            raise InvalidImageError(f"No image file at {path}.")
        if path.stat().st_size > max_bytes:
            raise InvalidImageError(f"{path.name} is larger than {max_bytes / 1e6:.0f} MB.")
        return prepare_image(path.read_bytes(), max_bytes=max_bytes)
    if hasattr(source, "read"):
        return prepare_image(source.read(max_bytes + 1), max_bytes=max_bytes)
    if hasattr(source, "save"):  # a PIL image
        out = io.BytesIO()
        source.save(out, format="PNG")
        return prepare_image(out.getvalue(), max_bytes=max_bytes)
    raise InvalidImageError(f"Cannot read an image from a {type(source).__name__}.")


def image_part(source: Any, *, max_bytes: int) -> dict[str, Any]:
    """An OpenAI image content part for `source`; http(s) URLs are kept as they are (fetched later, with limits),
    anything else is loaded and validated now, so a bad image fails before any network call."""
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        return {"type": "image_url", "image_url": {"url": source}}
    return load_image(source, max_bytes=max_bytes).part()


def decode_data_url(url: str) -> bytes:
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        raise InvalidImageError("Only base64 data URLs are accepted for inline images.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageError("The image data URL is not valid base64.") from None


def iter_parts(content: Any) -> Iterator[str | Image]:
    """Text and images of a message's content, in order. Images must be data URLs by now."""
    if content is None:
        return
    if isinstance(content, str):
        yield content
        return
    for part in content:
        kind = part.get("type")
        if kind == "text":
            yield part.get("text", "")
        elif kind == "image_url":
            url = part["image_url"]["url"] if isinstance(part.get("image_url"), dict) else part.get("image_url")
            data = decode_data_url(url)
            yield Image(data, url[5:].partition(";")[0] or "image/png")


def has_images(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(message.get("content"), list)
        and any(part.get("type") == "image_url" for part in message["content"] if isinstance(part, dict))
        for message in messages
    )


async def inline_remote_images(
    messages: list[dict[str, Any]], *, allow_private: bool, max_bytes: int, timeout: float
) -> list[dict[str, Any]]:
    """`messages` with every http(s) image URL fetched and every image validated, as data URLs."""
    out = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            out.append(message)
            continue
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
                if url.startswith(("http://", "https://")):
                    image = await fetch_image(url, allow_private=allow_private, max_bytes=max_bytes, timeout=timeout)
                else:
                    image = prepare_image(decode_data_url(url), max_bytes=max_bytes)
                parts.append(image.part())
            else:
                parts.append(part)
        out.append({**message, "content": parts})
    return out


async def fetch_image(url: str, *, allow_private: bool, max_bytes: int, timeout: float) -> Image:
    """Download an image URL with a size cap and a time limit, refusing private addresses unless allowed."""
    import httpx

    host = urlsplit(url).hostname
    if not host:
        raise InvalidImageError(f"Not a usable image URL: {url[:100]}")
    if not allow_private:
        await _refuse_private(host)
    try:
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise InvalidImageError(f"The image URL answered HTTP {response.status_code}.")
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise InvalidImageError(f"The image at that URL is larger than {max_bytes / 1e6:.0f} MB.")
    except httpx.TimeoutException:
        raise InvalidImageError(f"The image URL did not answer within {timeout:.0f} s.") from None
    except httpx.HTTPError as exc:
        raise InvalidImageError(f"Could not download the image: {exc}") from None
    return prepare_image(bytes(data), max_bytes=max_bytes)


async def _refuse_private(host: str) -> None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InvalidImageError(f"Cannot resolve the image host {host}.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise InvalidImageError(
                f"Refusing to fetch an image from {host} ({address}): loopback, private and link-local addresses "
                "are blocked (set app.allow_private_image_urls = true to allow them)."
            )
