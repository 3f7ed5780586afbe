"""The Chat tab."""

from .legacy_tab import build_chat_tab

__all__ = ["build_chat_tab"]
