"""Where everything is kept: SQL (SQLite by default, PostgreSQL when shared), files beside for images."""

from __future__ import annotations

from .sql_store import SQLStore

__all__ = ["SQLStore"]
