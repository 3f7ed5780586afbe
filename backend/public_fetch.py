"""GET a URL that untrusted input chose (an image URL in a message, a web search a model asked for) as a stranger
would: no credentials, no proxy or cookies from the environment, no redirects, a size limit, one time limit for
all of it, and only from public addresses unless the operator allowed private ones.

The host is resolved once and the connection goes to the address that was checked, so a second DNS answer cannot
point it at a private address (DNS rebinding). Callers turn `FetchRefused` into their own sentence.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

from .errors import OwnMessageError

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class FetchRefused(OwnMessageError):
    """The URL was not fetched, or not wholly: a refused scheme or address, no answer in time, too large, an
    HTTP error status. `reason` names which (scheme, resolve, private, status, size, timeout, network)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `address` is a public one, looking through IPv6 forms that carry an IPv4 address inside."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and any(address in network for network in _NAT64):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not embedded.is_global:
            return False
    return address.is_global


async def checked_address(host: str, allow_private: bool) -> str:
    """The address to connect to for `host`: the first it resolves to, all of them public unless allowed."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise FetchRefused(f"Cannot resolve the host {host}.", "resolve") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not allow_private and not is_public_address(address):
            raise FetchRefused(
                f"Refusing to fetch from {host} ({address}): loopback, private and link-local addresses are blocked.",
                "private",
            )
    return str(addresses[0])


async def fetch_public(
    url: str,
    *,
    allow_private: bool,
    max_bytes: int,
    timeout: float,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """The body of a 200 answer to GET `url` (with `params`), at most `max_bytes`, all within `timeout` seconds,
    so a server sending a byte a second cannot hold a slot. Anything else raises FetchRefused."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise FetchRefused("The URL must start with http:// or https://.", "scheme")
    try:
        async with asyncio.timeout(timeout):
            address = await checked_address(host, allow_private)
            pinned = httpx.URL(url, params=params).copy_with(host=address)
            extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
            sent = {**(headers or {}), "Host": parts.netloc.rpartition("@")[2]}
            async with (
                httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
                client.stream("GET", pinned, headers=sent, extensions=extensions) as response,
            ):
                if response.status_code != 200:
                    raise FetchRefused(f"The URL answered HTTP {response.status_code}.", "status")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise FetchRefused(f"The answer is larger than {max_bytes / 1e6:g} MB.", "size")
    except (TimeoutError, httpx.TimeoutException):
        raise FetchRefused(f"The URL did not answer within {timeout:g} s.", "timeout") from None
    except httpx.HTTPError as exc:
        raise FetchRefused(f"Could not fetch the URL: {type(exc).__name__}.", "network") from None
    return bytes(data)
