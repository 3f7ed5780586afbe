"""Who may use a shared instance: users and password hashes from a file, or name:password pairs from an
environment variable. Passwords are never written in the TOML config.

A users file has one `name:pbkdf2_sha256$iterations$salt$hash` line per user (`switchboard passwd NAME` prints
one). The environment variable form is `alice:secret1,bob:secret2`, for containers and CI.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError

SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000
MAX_FAILURES = 10  # failed logins per user within FAILURE_WINDOW before further tries are refused unchecked
FAILURE_WINDOW = 600.0  # seconds


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def check_password(stored: str, password: str) -> bool:
    """True when `password` matches `stored` (a hash from hash_password, or a plain password from the env)."""
    if not stored.startswith(SCHEME + "$"):
        return hmac.compare_digest(stored.encode(), password.encode())
    try:
        _, iterations, salt, digest = stored.split("$")
        actual = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual, _unb64(digest))


@functools.cache
def _decoy() -> str:
    return hash_password(secrets.token_hex(16), iterations=ITERATIONS)


class _LocalFailures:
    """Failed logins per user, counted in this process."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # Gradio calls the check from worker threads

    def throttled(self, username: str) -> bool:
        with self._lock:
            failures = self._failures.get(username)
            if not failures:
                return False
            while failures and failures[0] <= self._clock() - FAILURE_WINDOW:
                failures.popleft()
            return len(failures) >= MAX_FAILURES

    def failed(self, username: str) -> None:
        with self._lock:
            self._failures.setdefault(username, deque()).append(self._clock())

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)


class SharedFailures:
    """Failed logins per user, counted in Redis (a sorted set per user, the last FAILURE_WINDOW seconds): with
    several replicas, guessing is throttled across all of them. Called on worker threads: a plain client."""

    def __init__(self, url: str, password: str | None = None, prefix: str = "switchboard:login-failures:") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, password=password)
        self._prefix = prefix

    def throttled(self, username: str) -> bool:
        key = self._prefix + username
        pipeline = self._redis.pipeline()
        pipeline.zremrangebyscore(key, "-inf", time.time() - FAILURE_WINDOW)
        pipeline.zcard(key)
        return int(pipeline.execute()[1]) >= MAX_FAILURES

    def failed(self, username: str) -> None:
        key = self._prefix + username
        pipeline = self._redis.pipeline()
        pipeline.zadd(key, {secrets.token_hex(8): time.time()})
        pipeline.expire(key, int(FAILURE_WINDOW) + 1)
        pipeline.execute()

    def succeeded(self, username: str) -> None:
        self._redis.delete(self._prefix + username)


SESSION_SECONDS = 30 * 24 * 3600  # a sign-in kept in Redis this long (in one process, Gradio keeps it till a restart)
RECHECK_SECONDS = 2.0  # a replica looks a session up again after this: a sign-out elsewhere holds here by then
SESSIONS_CACHED = 10_000
COOKIE_ID_KEY = "switchboard:login-cookie-id"


class SharedSessions(dict[str, str]):
    """Gradio's sign-ins (the access-token cookie's token -> login name) kept in Redis, for every replica: a visitor
    whose replica went away stays signed in on the one they land on, and signing out (of every session, as
    Gradio's /logout does) holds on all of them.

    Gradio reads it as a dict in its routes (`tokens.get`), so this is a dict of the sessions this replica has
    seen, which the app's middleware fills with `await check(token)` before Gradio reads it (an async lookup at
    most every RECHECK_SECONDS per session). Gradio's sign-in and sign-out write through to Redis with a plain
    client (rare, and quick on loopback)."""

    def __init__(self, url: str, password: str | None = None, prefix: str = "switchboard:session:") -> None:
        super().__init__()
        import redis
        import redis.asyncio as aioredis

        options: dict[str, Any] = {"password": password, "socket_timeout": 5, "decode_responses": True}
        self._redis = redis.Redis.from_url(url, **options)
        self._async = aioredis.Redis.from_url(url, **options)
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
        """The login `token` signs in, as Redis has it (looked up again once RECHECK_SECONDS passed)."""
        checked = self._checked.get(token)
        if checked is not None and time.monotonic() - checked < RECHECK_SECONDS:
            return super().get(token)
        found = await self._async.get(self._prefix + token)
        if found is None:
            self._forget(token)
            return None
        user = str(found)
        super().__setitem__(token, user)
        self._checked[token] = time.monotonic()
        while len(self._checked) > SESSIONS_CACHED:
            self._forget(next(iter(self._checked)))
        return user

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


class Users:
    """The login check Gradio calls: `users(name, password) -> bool`.

    Guessing is throttled per user: after MAX_FAILURES failed logins within FAILURE_WINDOW, that user's logins
    are refused without being checked until the oldest failure leaves the window (across replicas once
    `share_failures` is called). Every answer costs the same (one full hash), so timing tells nothing about which
    names exist."""

    def __init__(self, passwords: dict[str, str], clock: Callable[[], float] = time.monotonic) -> None:
        self._passwords = passwords
        self._failures: _LocalFailures | SharedFailures = _LocalFailures(clock)

    def share_failures(self, failures: SharedFailures) -> None:
        """Count failed logins where every replica sees them (Redis)."""
        self._failures = failures

    async def verify(self, username: str, password: str) -> bool:
        """The same check, on a worker thread: a hash takes about 0.1 s, which the event loop (every other
        visitor's stream) must not wait for."""
        return await asyncio.to_thread(self, username, password)

    def __call__(self, username: str, password: str) -> bool:
        stored = self._passwords.get(username)
        # Every answer costs one full hash: a quick refusal (an unknown name, a throttled one) or a quick
        # check (a password from the environment) would tell which names exist.
        if stored is None or self._failures.throttled(username):
            check_password(_decoy(), password)
            return False
        if not stored.startswith(SCHEME + "$"):
            check_password(_decoy(), password)
        if check_password(stored, password):
            self._failures.succeeded(username)
            return True
        self._failures.failed(username)
        return False

    def names(self) -> list[str]:
        """Every login name."""
        return list(self._passwords)

    def __len__(self) -> int:
        return len(self._passwords)


def load_users(users_file: Path | None, users_env: str | None) -> Users | None:
    """The configured users, or None when authentication is off."""
    passwords: dict[str, str] = {}
    if users_file is not None:
        path = users_file.expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"auth.users_file: cannot read {path}: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, _, stored = line.strip().partition(":")
            if not name or not stored.startswith(SCHEME + "$"):
                raise ConfigError(f"{path}: line {number}: expected name:{SCHEME}$... (make one: switchboard passwd)")
            passwords[name] = stored
    if users_env is not None:
        raw = os.environ.get(users_env, "")
        if not raw:
            raise ConfigError(f"auth.users_env: environment variable {users_env} is not set")
        for pair in raw.split(","):
            name, _, password = pair.strip().partition(":")
            if not name or not password:
                raise ConfigError(f"auth.users_env: {users_env} must look like alice:secret1,bob:secret2")
            passwords[name] = password
    return Users(passwords) if passwords else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
