"""The details of generated images (prompt, model, parameters), one row each; the images are files beside the
database (backend/services/image_store.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from ._schema import images, legacy_image_imports
from .engine import Database
from .legacy import legacy_image_details

log = logging.getLogger(__name__)


class SQLImageLog:
    """Generated images' details per owner, newest first."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def add(self, owner: str, name: str, created: float, details: dict[str, Any]) -> None:
        """Record a generated image (its file `name` in the owner's image folder) with its details."""
        row = {"owner": owner, "name": name, "created": created, "details": json.dumps(details)}
        await self.database.run(lambda connection: connection.execute(insert(images).values(**row)), write=True)

    async def list(self, owner: str, limit: int, legacy_folder: Path | None = None) -> Sequence[dict[str, Any]]:
        """The owner's generated images, newest first: each its details with `name` and `created`. Details an
        earlier version kept as JSON files beside the images (in `legacy_folder`) are imported once first."""
        if legacy_folder is not None:
            await self.database.once(f"images:{owner}", lambda: self._import_legacy(owner, legacy_folder))
        statement = (
            select(images.c.name, images.c.created, images.c.details)
            .where(images.c.owner == owner)
            .order_by(images.c.created.desc(), images.c.name.desc())
            .limit(limit)
        )
        rows = await self.database.run(lambda connection: connection.execute(statement).all())
        return [{**json.loads(row.details), "name": row.name, "created": row.created} for row in rows]

    async def _import_legacy(self, owner: str, folder: Path) -> None:
        found = await legacy_image_details(folder)

        def write(connection: Connection) -> None:
            done = connection.scalar(select(legacy_image_imports.c.owner).where(legacy_image_imports.c.owner == owner))
            if done is not None:
                return
            if found:
                rows = [
                    {"owner": owner, "name": name, "created": created, "details": json.dumps(details)}
                    for name, created, details in found
                ]
                connection.execute(insert(images), rows)
                log.info("imported the details of %d generated image(s) of %r into the database", len(rows), owner)
            connection.execute(insert(legacy_image_imports).values(owner=owner, count=len(found), at=time.time()))

        await self.database.run(write, write=True)
