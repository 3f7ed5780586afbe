"""API keys of the /v1 API: made for a login, shown once, kept as their hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from ..conversations.model import ConversationError
from ._schema import api_keys
from .engine import Database


class SQLApiKeys:
    """API keys by owner, found by the key a request carries."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def create(self, owner: str) -> tuple[str, str]:
        """A new API key for `owner`: its id (to list and revoke it) and the key, shown this once (only its hash
        is kept)."""
        key_id = secrets.token_hex(4)
        key = f"sb-{key_id}-{secrets.token_urlsafe(32)}"
        row = {"digest": _digest(key), "owner": owner, "id": key_id, "created": time.time(), "revoked": None}
        await self.database.run(lambda connection: connection.execute(insert(api_keys).values(**row)), write=True)
        return key_id, key

    async def owner(self, key: str) -> tuple[str, str] | None:
        """The owner and id of `key`, or None when it is not a key or was revoked."""
        if not key.startswith("sb-") or len(key) > 200:
            return None
        statement = select(api_keys.c.owner, api_keys.c.id).where(
            api_keys.c.digest == _digest(key), api_keys.c.revoked.is_(None)
        )
        row = await self.database.run(lambda connection: connection.execute(statement).first())
        return None if row is None else (row.owner, row.id)

    async def revoke(self, key_id: str) -> str:
        """Revoke the key `key_id` (its requests get 401 from now on); whose it was. ConversationError if none."""

        def revoke(connection: Connection) -> str | None:
            owner = connection.scalar(select(api_keys.c.owner).where(api_keys.c.id == key_id))
            if owner is not None:
                connection.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked=time.time()))
            return owner

        owner = await self.database.run(revoke, write=True)
        if owner is None:
            raise ConversationError(f"There is no API key {key_id!r}.")
        return owner


def _digest(key: str) -> str:
    """What is kept of an API key: its SHA-256 (a key is random, long and never typed: no salt or slow hash
    needed to make a stolen table useless)."""
    return hashlib.sha256(key.encode()).hexdigest()
