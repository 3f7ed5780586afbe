"""The one key prefix every replica's Redis key starts with, and the Redis clients they use.

Every key and channel is `switchboard:` + what it holds, so one Redis can serve other programs beside the app.
`redis` is imported only when a client is made: a single app process never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import redis
    import redis.asyncio as aioredis

PREFIX = "switchboard:"


def key(*parts: str) -> str:
    """A key (or channel, or key prefix) of ours: PREFIX + the parts joined by ':'. Parts that come from outside
    (an owner's name) are quoted by the caller (`owner_part`)."""
    return PREFIX + ":".join(parts)


def owner_part(owner: str) -> str:
    """An owner's name as a part of a key: quoted, so no name can reach into another's keys."""
    return quote(owner, safe="")


def client(url: str, password: str | None, **options: Any) -> aioredis.Redis:
    """A client for the event loop (`options`: redis-py's, such as decode_responses or socket_timeout)."""
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url, password=password, **options)


def blocking_client(url: str, password: str | None, **options: Any) -> redis.Redis:
    """A plain client, for callers on worker threads or in code Gradio calls synchronously."""
    import redis

    return redis.Redis.from_url(url, password=password, **options)
