"""Failed logins counted in Redis, so that guessing is throttled across every replica (backend/auth.py counts them
in one process)."""

from __future__ import annotations

import secrets
import time

from ..auth import FAILURE_WINDOW, MAX_ADDRESS_FAILURES, MAX_FAILURES
from .redis import PREFIX, blocking_client

ADDRESS_FAILURES_KEY = PREFIX + "login-address-failures:"


class SharedFailures:
    """Failed logins per key (a user, an address), counted in Redis (a sorted set per key, the last
    FAILURE_WINDOW seconds): with several replicas, guessing is throttled across all of them. Called on the hashing
    threads: a plain client."""

    def __init__(
        self,
        url: str,
        password: str | None = None,
        prefix: str = PREFIX + "login-failures:",
        most: int = MAX_FAILURES,
    ) -> None:
        self._redis = blocking_client(url, password)
        self._prefix = prefix
        self._most = most

    def throttled(self, key: str) -> bool:
        stored = self._prefix + key
        pipeline = self._redis.pipeline()
        pipeline.zremrangebyscore(stored, "-inf", time.time() - FAILURE_WINDOW)
        pipeline.zcard(stored)
        return int(pipeline.execute()[1]) >= self._most

    def failed(self, key: str) -> None:
        stored = self._prefix + key
        pipeline = self._redis.pipeline()
        pipeline.zadd(stored, {secrets.token_hex(8): time.time()})
        pipeline.expire(stored, int(FAILURE_WINDOW) + 1)
        pipeline.execute()

    def succeeded(self, key: str) -> None:
        self._redis.delete(self._prefix + key)


def shared_failures(url: str, password: str | None) -> tuple[SharedFailures, SharedFailures]:
    """The failed logins per name and per address, counted in Redis (`Users.count_failures` takes them)."""
    return SharedFailures(url, password), SharedFailures(url, password, ADDRESS_FAILURES_KEY, MAX_ADDRESS_FAILURES)
