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
