"""Who is asking: the owner whose conversations and images a request may touch, and the visitor that per-visitor
limits count."""

from __future__ import annotations

import gradio as gr

from backend import LOCAL_OWNER, login_visitor


def owner_of(request: gr.Request | None) -> str:
    return getattr(request, "username", None) or LOCAL_OWNER


def visitor_of(request: gr.Request | None) -> str:
    """The logged-in user, as the API counts each of that user's keys; without logins, the client's address. The
    address is the TCP peer's, or what a proxy listed in `app.trusted_proxies` forwards for (see
    webui/server.py); a header from anyone else is ignored, or every request could claim a new address and escape
    its limits."""
    return visitor_key(getattr(request, "username", None), getattr(getattr(request, "client", None), "host", None))


def visitor_key(username: str | None, address: str | None) -> str:
    """How limits name a visitor: by login, else by address."""
    return login_visitor(username) if username else f"address:{address or 'unknown'}"
