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
import ipaddress
import os
import socket
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import OwnMessageError

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
    """GET an http(s) URL as a stranger would: no credentials, no proxy or cookies from the environment, no
    redirects; at most `max_bytes`; all of it (resolving, connecting, reading) within `timeout` seconds, so a
    server sending a byte a second cannot hold a slot. Unless `allow_private`, the host must resolve only to
    public addresses (IPv4 embedded in NAT64, 6to4 and Teredo addresses counted), and the connection goes to
    the address that was checked, so a second DNS answer cannot point it elsewhere."""
    import httpx

    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidImageError("An image URL must start with http:// or https://.")
    try:
        async with asyncio.timeout(timeout):
            address = await _checked_address(host, allow_private)
            pinned = httpx.URL(url).copy_with(host=address)
            extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
            async with (
                httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
                client.stream(
                    "GET", pinned, headers={"Host": parts.netloc.rpartition("@")[2]}, extensions=extensions
                ) as response,
            ):
                if response.status_code != 200:
                    raise InvalidImageError(f"The image URL answered HTTP {response.status_code}.")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise InvalidImageError(f"The image at that URL is larger than {max_bytes / 1e6:.0f} MB.")
    except (TimeoutError, httpx.TimeoutException):
        raise InvalidImageError(f"The image URL did not deliver the image within {timeout:g} s.") from None
    except httpx.HTTPError as exc:
        raise InvalidImageError(f"Could not download the image: {type(exc).__name__}.") from None
    return bytes(data)


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `address` is a public one, looking through IPv6 forms that carry an IPv4 address inside."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and any(address in network for network in _NAT64):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not embedded.is_global:
            return False
    return address.is_global


async def _checked_address(host: str, allow_private: bool) -> str:
    """The address to connect to for `host`: the first it resolves to, all of them public unless allowed."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InvalidImageError(f"Cannot resolve the image host {host}.") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not allow_private and not is_public_address(address):
            raise InvalidImageError(
                f"Refusing to fetch an image from {host} ({address}): loopback, private and link-local addresses "
                "are blocked (set app.allow_private_image_urls = true to allow them)."
            )
    return str(addresses[0])
