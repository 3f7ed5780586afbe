"""Who is asking: the owner whose conversations and images a request may touch, and the visitor that per-visitor
limits count."""

from __future__ import annotations

import ipaddress

import gradio as gr

LOCAL_OWNER = "local"  # the one owner when the app runs without logins


def owner_of(request: gr.Request | None) -> str:
    return getattr(request, "username", None) or LOCAL_OWNER


def visitor_of(request: gr.Request | None) -> str:
    """The logged-in user; without logins, the client's address. Behind Gradio's share tunnel every visitor
    arrives from loopback, so there the address the tunnel forwards for is used."""
    username = getattr(request, "username", None)
    if username:
        return f"user:{username}"
    client = getattr(request, "client", None)
    address = getattr(client, "host", None) or ""
    if _is_loopback(address):
        forwarded = (getattr(request, "headers", None) or {}).get("x-forwarded-for", "")
        address = forwarded.split(",")[0].strip() or address
    return f"address:{address or 'unknown'}"


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
