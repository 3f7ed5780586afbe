"""System-prompt presets: a system prompt saved under a name, per owner (at most PRESETS_KEPT each)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from ..conversations.model import ConversationError, Preset
from ._schema import presets
from .engine import Database

PRESETS_KEPT = 100  # system-prompt presets per owner


class SQLPresets:
    """The owners' saved system prompts."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def list(self, owner: str) -> Sequence[Preset]:
        """The owner's saved system prompts, by name (case aside)."""
        statement = select(presets.c.name, presets.c.text).where(presets.c.owner == owner)
        rows = await self.database.run(lambda connection: connection.execute(statement).all())
        return sorted((Preset(name=row.name, text=row.text) for row in rows), key=lambda preset: preset.name.lower())

    async def save(self, owner: str, preset: Preset) -> None:
        """Keep `preset` under its name, in place of one of that name (case aside). An owner keeps at most
        PRESETS_KEPT."""
        same = (presets.c.owner == owner, func.lower(presets.c.name) == preset.name.lower())
        row = {"owner": owner, "name": preset.name, "text": preset.text, "updated": time.time()}

        def write(connection: Connection) -> None:
            replaced = connection.execute(delete(presets).where(*same)).rowcount
            if not replaced:
                kept = connection.scalar(select(func.count()).select_from(presets).where(presets.c.owner == owner))
                if (kept or 0) >= PRESETS_KEPT:
                    raise ConversationError(f"You have {PRESETS_KEPT} presets, the most kept: delete one first.")
            connection.execute(insert(presets).values(**row))

        await self.database.run(write, write=True)

    async def delete(self, owner: str, name: str) -> None:
        statement = delete(presets).where(presets.c.owner == owner, presets.c.name == name)
        removed = await self.database.run(lambda connection: connection.execute(statement).rowcount, write=True)
        if removed != 1:
            raise ConversationError("There is no preset of that name.")
