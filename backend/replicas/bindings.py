"""Whose each browser session is, kept in Redis as well, so that the first login to use a session hash or event id
owns it on every replica (see backend/session_owners.py)."""

from __future__ import annotations

import time
from typing import Any

from ..session_owners import BINDING_SECONDS, RENEW_SECONDS, SessionOwners
from .redis import PREFIX, client


class SharedSessionOwners(SessionOwners):
    """The same bindings, shared by every replica through Redis (see the module's docstring). Redis unreachable:
    what this replica already knows still holds, and an id new to it cannot be told (None)."""

    def __init__(self, url: str, password: str | None = None, prefix: str = PREFIX + "session-owner:") -> None:
        super().__init__()
        self._redis: Any = client(url, password, socket_timeout=5, decode_responses=True)
        self._prefix = prefix

    async def claim(self, key: str, login: str) -> bool | None:
        import redis

        known = self._known(key)
        try:
            if known is None:
                owner = self._remember(key, await self._bind(key, login))
            else:
                owner, renewed = known
                if owner == login and time.monotonic() - renewed > RENEW_SECONDS:
                    await self._renew(key, owner)
        except (redis.RedisError, OSError):
            if known is None:
                return None
            owner = known[0]
        return owner == login

    async def _bind(self, key: str, login: str) -> str:
        """The owner Redis has for `key`: `login`, if it had none."""
        while True:
            if await self._redis.set(self._prefix + key, login, nx=True, ex=BINDING_SECONDS):
                return login
            owner = await self._redis.get(self._prefix + key)
            if owner is not None:  # (else it lapsed between the two: try again)
                return str(owner)

    async def _renew(self, key: str, owner: str) -> None:
        await self._redis.expire(self._prefix + key, BINDING_SECONDS)
        self._owners[key] = (owner, time.monotonic())

    async def aclose(self) -> None:
        await self._redis.aclose()
