"""The server's connections: deadlines for unfinished requests, and caps on how many stay open.

uvicorn keeps a connection open until its request head (request line and headers) is complete, however long that
takes: its only timer, keep-alive, starts after a response. A socket that sends half a request line and stops
stays open for good, and each holds one of the process's file descriptors: 8,000 of them from one address (under
a second's work) took all 4,096 of a server's, and every other visitor's connection was reset until they went
away; with the server short of descriptors, a reply it had to fetch failed too (502). Here, uvicorn's own
protocol (httptools) with three additions (`http_protocol`); measured, 2,000 such connections are all closed
1.3 s after they opened with a one-second deadline, and the flood above leaves 256 open and everyone else served
(tests/test_connections.py):

- **Head deadline.** A request's head must be complete `head_seconds` after the connection opened (10 s), or after
  the previous response ended (plus uvicorn's keep-alive time); otherwise the connection is closed.
- **Stalled body.** A request body from which nothing arrives for `body_idle_seconds` (30 s) while the app waits
  for it closes the connection (a slow upload that keeps sending is not stalled).
- **Caps.** At most `per_address` connections (256: an office behind one address, browsers opening six each) from
  one address (an IPv6 /64 counts as one address), except loopback (a Gradio share link's tunnel connects from
  there, so its visitors cannot be told apart) and `app.trusted_proxies` (a reverse proxy holds its visitors'
  connections itself: see deploy/nginx.conf). And from all addresses together, the process's open-files limit less
  a reserve (a quarter, at most 1,024) for the app's own files, database and upstream connections: a flood is
  turned away at the door instead of taking the last descriptors. The limit itself is raised to its hard ceiling
  at start.

A connection turned away is reset at once, before anything is read from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import resource
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

RESERVE = 1024  # file descriptors kept for the app itself (at most a quarter of the limit)


@dataclass(frozen=True)
class ConnectionLimits:
    head_seconds: float = 10.0
    body_idle_seconds: float = 30.0
    per_address: int = 256
    uncapped: tuple[str, ...] = ()  # addresses or networks with no per-address cap (trusted proxies); "*": all
    cap_loopback: bool = False  # (tests only: loopback addresses standing in for other machines)


def http_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP protocol with these limits, for one server (its connections counted together). Raises this
    process's open-files limit to its ceiling."""
    files = raise_open_files_limit()
    peers = _Peers(limits, most=files - min(RESERVE, files // 4))
    return type("LimitedHttpToolsProtocol", (_LimitedHttp,), {"peers": peers})


def raise_open_files_limit() -> int:
    """The soft limit on open files raised to the hard one (as far as the system lets); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class _Peers:
    """One server's open connections: in all, and per address."""

    def __init__(self, limits: ConnectionLimits, most: int) -> None:
        self.limits = limits
        self.most = most
        self.total = 0
        self.per_address: Counter[str] = Counter()
        self._uncapped = [network for network in map(_network, limits.uncapped) if network is not None]
        self._none_capped = "*" in limits.uncapped

    def address_of(self, client: tuple[str, int] | None) -> str | None:
        """What a connection from `client` is counted under, or None when its address has no cap."""
        if client is None or self._none_capped:
            return None
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if (address.is_loopback and not self.limits.cap_loopback) or any(address in net for net in self._uncapped):
            return None
        if isinstance(address, ipaddress.IPv6Address):  # one machine has a whole /64 to choose from
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)

    def admit(self, address: str | None) -> bool:
        if self.total >= self.most or (address is not None and self.per_address[address] >= self.limits.per_address):
            return False
        self.total += 1
        if address is not None:
            self.per_address[address] += 1
        return True

    def release(self, address: str | None) -> None:
        self.total -= 1
        if address is not None:
            self.per_address[address] -= 1
            if not self.per_address[address]:
                del self.per_address[address]


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:  # ("*", or a name uvicorn's proxy headers take for a Unix socket)
        return None


class _LimitedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and caps of the module's docstring."""

    peers: ClassVar[_Peers]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address: str | None = None
        self._admitted = False
        self._head_deadline: asyncio.TimerHandle | None = None
        self._body_watch: asyncio.TimerHandle | None = None
        self._last_read = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.peers.address_of(self.client)
        if not self.peers.admit(self._address):
            transport.abort()
            return
        self._admitted = True
        self._await_head(self.peers.limits.head_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self.peers.release(self._address)
        for timer in (self._head_deadline, self._body_watch):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        super().data_received(data)
        if self._body_watch is None and self._receiving_body():
            self._body_watch = self.loop.call_later(self.peers.limits.body_idle_seconds, self._watch_body)

    def on_headers_complete(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        idle = self.cycle is None or self.cycle.response_complete  # (else a pipelined request has started)
        if idle and not self.transport.is_closing():
            self._await_head(self.timeout_keep_alive + self.peers.limits.head_seconds)

    def _await_head(self, seconds: float) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(seconds, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _receiving_body(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.more_body and not cycle.response_complete

    def _watch_body(self) -> None:
        """Close the connection if its body stopped arriving while the app waits for it."""
        self._body_watch = None
        if not self._receiving_body():
            return
        limit = self.peers.limits.body_idle_seconds
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:  # the app is not reading: not the client's
            self._last_read = self.loop.time()
        idle = self.loop.time() - self._last_read
        if idle >= limit:
            self.transport.close()
            return
        self._body_watch = self.loop.call_later(limit - idle, self._watch_body)
