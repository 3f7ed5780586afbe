"""A real MCP server written with the `mcp` SDK (`MCPServer`), for the tool tests: the behaviours the published
servers do not offer on demand (a slow call that reports when it ran, a server that dies mid-call, a call that
records being cancelled).

    python -m tests.mcp_test_server                  # over stdio
    python -m tests.mcp_test_server --http PORT      # streamable HTTP on 127.0.0.1:PORT/mcp; with
                                                     #   --token T, every request must carry "Bearer T"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("switchboard-test")


@server.tool()
async def slow(seconds: float) -> str:
    """Wait `seconds`, then say when the wait began and ended (wall clock, seconds since the epoch)."""
    began = time.time()
    await asyncio.sleep(seconds)
    return json.dumps({"began": began, "ended": time.time()})


@server.tool()
async def crash() -> str:
    """Exit the server process in the middle of the call, as a crash does."""
    await asyncio.sleep(0.2)
    os._exit(3)


@server.tool()
async def hold(marker: str) -> str:
    """Write "started" to the file `marker`, wait a minute, and append "cancelled" if the call is cancelled."""
    path = Path(marker)
    path.write_text("started")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        path.write_text("started cancelled")
        raise
    return "held for a minute"


@server.tool()
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


@server.tool()
def echo(text: str) -> str:
    """Say `text` back."""
    return text


def _require_token(app, token: str):
    """An ASGI wrapper answering 401 to an HTTP request without `Authorization: Bearer <token>` (the app's
    lifespan, which runs its session manager, goes through)."""

    async def guarded(scope, receive, send):
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != f"Bearer {token}".encode():
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return guarded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT/mcp")
    parser.add_argument("--token", help="with --http: the bearer token every request must carry")
    args = parser.parse_args()
    if args.http is None:
        server.run("stdio")
        return
    import uvicorn

    app = server.streamable_http_app()
    served = _require_token(app, args.token) if args.token else app
    uvicorn.run(served, host="127.0.0.1", port=args.http, log_level="warning")


if __name__ == "__main__":
    main()
