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
import hashlib
import io
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import OwnMessageError
from .public_fetch import FetchRefused, fetch_public
from .public_fetch import is_public_address as is_public_address  # where tests and callers found it first

if TYPE_CHECKING:
    from PIL import Image as PILImage

MAX_SIDE = 2048  # longest side sent upstream; larger images are downscaled (providers downscale anyway)
# Pixel limits, read from the header before anything is decoded. A JPEG is decoded at a reduced scale (1/2 to
# 1/8, Pillow's draft mode), so a 48-megapixel phone photo costs little; other formats decode every pixel
# (4 bytes each), so they stop at about 4096x4096: a 200 KB PNG of 7070x7070 would otherwise take 200 MB.
MAX_PIXELS = 50_000_000
MAX_FULL_DECODE_PIXELS = 16_800_000
# Decodes at once, whoever asks: each may hold up to MAX_FULL_DECODE_PIXELS * 4 bytes, so ten uploads at once
# wait their turn instead of taking gigabytes together.
_decoding = threading.BoundedSemaphore(2)
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
    """Check `data` is a real image by its content, refuse bombs and oversize input, downscale to MAX_SIDE.
    Images prepared lately are not decoded again (see `_prepared`)."""
    if len(data) > max_bytes:
        raise InvalidImageError(f"The image is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    if not data:
        raise InvalidImageError("The image is empty.")
    key = _digest(data)
    with _prepared_lock:
        known = _prepared.get(key)
    if known is not None:
        return known
    image = _decode(data)
    _remember(key, image)
    if image.data is not data:
        _remember(_digest(image.data), image)  # preparing the result gives it back as it is
    return image


def _decode(data: bytes) -> Image:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with warnings.catch_warnings(), _decoding:
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as probe:
                fmt, size = probe.format, probe.size
                limit = MAX_PIXELS if fmt == "JPEG" else MAX_FULL_DECODE_PIXELS
                if size[0] * size[1] > limit:
                    raise InvalidImageError(
                        f"The image is {size[0]}x{size[1]} pixels; more than {limit / 1_000_000:.0f} million "
                        f"pixels is refused{' for this format' if limit < MAX_PIXELS else ''}."
                    )
                if fmt == "JPEG" and max(size) > MAX_SIDE:
                    probe.draft(None, (MAX_SIDE, MAX_SIDE))  # decode at the smallest scale still >= MAX_SIDE
                probe.load()  # decodes every pixel: truncated or corrupt files fail here
                if max(size) <= MAX_SIDE and fmt in KEPT_FORMATS:
                    return Image(data, KEPT_FORMATS[fmt], *size)
                return _reencode(probe)
    except InvalidImageError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise InvalidImageError("The image is too large to open safely.") from None
    except UnidentifiedImageError:
        raise InvalidImageError("That file is not an image this app can read: use PNG, JPEG, WebP or GIF.") from None
    except (OSError, SyntaxError, ValueError):
        raise InvalidImageError("The image is damaged and cannot be opened.") from None


def _reencode(picture: PILImage.Image) -> Image:
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
            raise InvalidImageError("The image file is gone; add it again.")
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


async def validate_image(source: Any, *, max_bytes: int) -> Image:
    """`load_image` on a worker thread: decoding a large picture takes a while, and the event loop serves every
    other visitor meanwhile."""
    return await asyncio.to_thread(load_image, source, max_bytes=max_bytes)


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
                    image = await _validated(url, max_bytes)
                parts.append(image.part())
            else:
                parts.append(part)
        out.append({**message, "content": parts})
    return out


# Images prepare_image produced lately, by a digest of the bytes it was given and of those it gave back (preparing
# a prepared image gives it back as it is). So nothing is decoded twice: not the upload validated a moment ago
# and now saved and sent, nor the earlier images a conversation sends again on every turn.
_prepared: OrderedDict[bytes, Image] = OrderedDict()
_prepared_lock = threading.Lock()  # filled from worker threads, read on the event loop
PREPARED_BYTES = 32_000_000  # what the images kept may hold together; the oldest go first


def _remember(key: bytes, image: Image) -> None:
    with _prepared_lock:
        _prepared[key] = image
        held = sum(len(kept.data) for kept in _prepared.values())
        while held > PREPARED_BYTES and len(_prepared) > 1:
            held -= len(_prepared.popitem(last=False)[1].data)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


async def _validated(data_url: str, max_bytes: int) -> Image:
    """A data URL's image, validated off the event loop."""
    return await asyncio.to_thread(prepare_image, decode_data_url(data_url), max_bytes=max_bytes)


async def fetch_image(url: str, *, allow_private: bool, max_bytes: int, timeout: float) -> Image:
    """Download an image URL (see `fetch_bytes`) and validate it off the event loop."""
    data = await fetch_bytes(url, allow_private=allow_private, max_bytes=max_bytes, timeout=timeout)
    return await asyncio.to_thread(prepare_image, data, max_bytes=max_bytes)


async def fetch_bytes(url: str, *, allow_private: bool, max_bytes: int, timeout: float) -> bytes:
    """GET an http(s) image URL as a stranger would (see backend/public_fetch.py): no credentials, no redirects, at
    most `max_bytes`, all within `timeout` seconds; unless `allow_private`, only from public addresses (IPv4
    embedded in NAT64, 6to4 and Teredo addresses counted), connecting to the address that was checked."""
    try:
        return await fetch_public(url, allow_private=allow_private, max_bytes=max_bytes, timeout=timeout)
    except FetchRefused as refused:
        raise InvalidImageError(_image_problem(refused, url, max_bytes, timeout)) from None


NOT_AN_IMAGE_URL = "An image URL must start with http:// or https://."


def _image_problem(refused: FetchRefused, url: str, max_bytes: int, timeout: float) -> str:
    """The sentence for an image URL not fetched, in the Vision tab's words."""
    host = urlsplit(url).hostname or url
    if refused.reason == "scheme":
        return NOT_AN_IMAGE_URL
    if refused.reason == "resolve":
        return f"Cannot resolve the image host {host}."
    if refused.reason == "private":
        return (
            refused.message.replace("Refusing to fetch from", "Refusing to fetch an image from").removesuffix(".")
            + " (set app.allow_private_image_urls = true to allow them)."
        )
    if refused.reason == "size":
        return f"The image at that URL is larger than {max_bytes / 1e6:.0f} MB."
    if refused.reason == "timeout":
        return f"The image URL did not deliver the image within {timeout:g} s."
    if refused.reason == "status":
        return refused.message.replace("The URL", "The image URL")
    return refused.message.replace("Could not fetch the URL", "Could not download the image")
