"""Where conversations are kept: SQL (SQLite by default, PostgreSQL when shared), images as files beside."""

from __future__ import annotations

from .conversations import SQLConversationStore

__all__ = ["SQLConversationStore"]
