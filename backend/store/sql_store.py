"""The store: one SQL database (backend/store/engine.py) and each kind of data kept in it, one module each."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .api_keys import SQLApiKeys
from .conversations import SQLConversations
from .engine import Database
from .images import SQLImageLog
from .presets import SQLPresets


class SQLStore:
    """Conversations (with the replies being generated in them), presets, API keys and generated images' details,
    in SQLite (`data_dir/switchboard.db`) or PostgreSQL (`url`)."""

    def __init__(self, url: str, data_dir: Path, *, password: str | None = None) -> None:
        self.database = Database(url, password=password)
        self.presets = SQLPresets(self.database)
        self.conversations = SQLConversations(self.database, data_dir)
        self.api_keys = SQLApiKeys(self.database)
        self.images = SQLImageLog(self.database)

    @classmethod
    def for_settings(cls, data_dir: Path, url: str = "", password: str | None = None) -> SQLStore:
        """The store a configuration names: `url`, or SQLite at `data_dir/switchboard.db`."""
        data_dir = Path(data_dir).expanduser()
        return cls(url or f"sqlite:///{data_dir / 'switchboard.db'}", data_dir, password=password)

    async def open(self, owners: Iterable[str] = ()) -> None:
        """Connect, bring the schema up to date (once), and import the JSON conversations of `owners` an earlier
        version left (once; others' on their first visit). A newer, damaged or locked database is a ConfigError
        with one sentence."""
        await self.database.run(lambda connection: None)
        for owner in owners:
            await self.conversations.import_legacy(owner)

    async def aclose(self) -> None:
        """Close this event loop's connections (a later call opens new ones)."""
        await self.database.aclose()
