"""Sign-ins kept in Redis, for every replica (backend/auth.py keeps them in one process)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from ..auth import Sessions, Users
from ..errors import ConfigError
from .redis import PREFIX, blocking_client, client

SESSION_SECONDS = 30 * 24 * 3600  # a sign-in kept in Redis this long (in one process, Gradio keeps it till a restart)
RECHECK_SECONDS = 2.0  # a replica looks a session up again after this: a sign-out elsewhere holds here by then
SESSIONS_CACHED = 10_000
COOKIE_ID_KEY = PREFIX + "login-cookie-id"


class SharedSessions(Sessions):
    """Gradio's sign-ins (the access-token cookie's token -> login name) kept in Redis, for every replica: a visitor
    whose replica went away stays signed in on the one they land on, and signing out (of every session, as
    Gradio's /logout does) holds on all of them.

    Gradio reads it as a dict in its routes (`tokens.get`), so this is a dict of the sessions this replica has
    seen, which the app's middleware fills with `await check(token)` before Gradio reads it (an async lookup at
    most every RECHECK_SECONDS per session). Gradio's sign-in and sign-out write through to Redis with a plain
    client (rare, and quick on loopback)."""

    def __init__(self, users: Users, url: str, password: str | None = None, prefix: str = PREFIX + "session:") -> None:
        super().__init__(users)
        options: dict[str, Any] = {"socket_timeout": 5, "decode_responses": True}
        self._redis = blocking_client(url, password, **options)
        self._async = client(url, password, **options)
        self._prefix = prefix
        self._checked: dict[str, float] = {}  # token -> when Redis last said whose it is

    def cookie_id(self) -> str:
        """The suffix of the sign-in cookie's name, the same on every replica (Gradio picks a random one per
        process; the first replica's is kept)."""
        import redis

        try:
            self._redis.set(COOKIE_ID_KEY, secrets.token_urlsafe(16), nx=True)
            return str(self._redis.get(COOKIE_ID_KEY))
        except (redis.RedisError, OSError) as error:
            raise ConfigError(f"redis: cannot keep sign-ins there: {error}") from None

    async def check(self, token: str) -> str | None:
        """The login `token` signs in, as Redis has it (looked up again once RECHECK_SECONDS passed), while that
        login is active."""
        checked = self._checked.get(token)
        if checked is not None and time.monotonic() - checked < RECHECK_SECONDS:
            return self.get(token)
        found = await self._async.get(self._prefix + token)
        if found is None:
            self._forget(token)
            return None
        user = str(found)
        super().__setitem__(token, user)
        self._checked[token] = time.monotonic()
        while len(self._checked) > SESSIONS_CACHED:
            self._forget(next(iter(self._checked)))
        return self.get(token)

    def _forget(self, token: str) -> None:
        super().pop(token, None)
        self._checked.pop(token, None)

    # --- what Gradio's /login and /logout do -------------------------------------------------------------------

    def __setitem__(self, token: str, user: str) -> None:
        self._redis.set(self._prefix + token, user, ex=SESSION_SECONDS)
        super().__setitem__(token, user)
        self._checked[token] = time.monotonic()

    def __getitem__(self, token: str) -> str:
        found = self._redis.get(self._prefix + token)
        if found is None:
            raise KeyError(token)
        return str(found)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and bool(self._redis.exists(self._prefix + token))

    def keys(self) -> list[str]:  # type: ignore[override]  # every replica's sessions, for a sign-out of them all
        prefix = len(self._prefix)
        return [key[prefix:] for key in self._redis.scan_iter(match=self._prefix + "*")]

    def __delitem__(self, token: str) -> None:
        self._redis.delete(self._prefix + token)
        self._forget(token)
