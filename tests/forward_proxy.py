"""A forward HTTP proxy on 127.0.0.1, for tests of `proxies`: clients send it absolute-form requests
(`POST http://127.0.0.1:8123/v1/chat/completions`), it records each with the credentials it was given
(Proxy-Authorization) and relays it to its host with httpx, streaming the answer back as it comes.

One request per connection, plain HTTP only (no CONNECT): the hosts behind it in tests are loopback servers.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass

import httpx

# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the proxy sets itself.
_NOT_RELAYED = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "transfer-encoding"}


@dataclass
class Proxied:
    method: str
    url: str
    proxy_authorization: str | None

    @property
    def credentials(self) -> str | None:
        """`user:password` of a Basic Proxy-Authorization."""
        if not self.proxy_authorization or not self.proxy_authorization.startswith("Basic "):
            return None
        return base64.b64decode(self.proxy_authorization[6:]).decode()


class ForwardProxy:
    """`with ForwardProxy() as proxy:` relays on `proxy.address` (host:port) until the block ends."""

    def __init__(self) -> None:
        self.requests: list[Proxied] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="forward-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> ForwardProxy:
        self._thread.start()

        async def start() -> asyncio.base_events.Server:
            self._client = httpx.AsyncClient(trust_env=False, timeout=30)
            return await asyncio.start_server(self._serve, "127.0.0.1", 0)

        self._server = asyncio.run_coroutine_threadsafe(start(), self._loop).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        async def stop() -> None:
            self._server.close()
            await self._client.aclose()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, url, _ = head[0].split(" ", 2)
            headers = [tuple(part.strip() for part in line.split(":", 1)) for line in head[1:] if ":" in line]
            named = {name.lower(): value for name, value in headers}
            body = await reader.readexactly(int(named.get("content-length", "0")))
            self.requests.append(Proxied(method, url, named.get("proxy-authorization")))
            relayed = [(name, value) for name, value in headers if name.lower() not in _NOT_RELAYED]
            async with self._client.stream(method, url, headers=relayed, content=body) as answer:
                lines = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
                lines += [f"{name}: {value}" for name, value in answer.headers.multi_items() if _relayed(name)]
                lines += ["transfer-encoding: chunked", "connection: close"]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                async for piece in answer.aiter_raw():
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, httpx.HTTPError):
            pass  # the client or the host went away: so does this connection
        finally:
            writer.close()


def _relayed(name: str) -> bool:
    return name.lower() not in _NOT_RELAYED and name.lower() != "content-length"
