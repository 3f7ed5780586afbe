"""The per-visitor limits of backend/limits.py, counted in Redis across every replica: each check and count one
atomic script, so a visitor gets one allowance across all replicas. The running generations are counted per replica
(a replica that dies stops renewing its presence, and its count stops counting), the requests of the last minute in
one sorted set per visitor; the bytes uploaded in one hash of minute -> bytes per visitor."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..limits import (
    UPLOAD_BUCKET,
    UPLOAD_WINDOW,
    WINDOW,
    UploadAllowance,
    VisitorLimits,
    too_many_running,
    too_many_started,
    too_much_uploaded,
    upload_wait,
)
from .redis import PREFIX

if TYPE_CHECKING:
    import redis.asyncio as aioredis


# Both scripts get the replica-presence key prefix, and see a replica's count only while its presence key exists.
_RUNNING = """
local running = 0
local counts = redis.call('HGETALL', KEYS[1])
for i = 1, #counts, 2 do
  if redis.call('EXISTS', ARGV[1] .. counts[i]) == 1 then running = running + tonumber(counts[i + 1]) end
end
"""

# KEYS: running hash, started zset. ARGV: presence prefix, max running, max per minute, now, window, count?, token
_ADMIT = (
    _RUNNING
    + """
if tonumber(ARGV[2]) > 0 and running >= tonumber(ARGV[2]) then return {'running', running} end
if tonumber(ARGV[3]) > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[4]) - tonumber(ARGV[5]))
  local started = redis.call('ZCARD', KEYS[2])
  if started >= tonumber(ARGV[3]) then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {'started', started, oldest[2]}
  end
  if ARGV[6] == '1' then
    redis.call('ZADD', KEYS[2], ARGV[4], ARGV[7])
    redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[5])) + 1)
  end
end
return {'ok'}
"""
)

# KEYS: running hash. ARGV: presence prefix, max running, this replica
_HOLD = (
    _RUNNING
    + """
if tonumber(ARGV[2]) > 0 and running >= tonumber(ARGV[2]) then return {'running', running} end
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
redis.call('EXPIRE', KEYS[1], 86400)
return {'ok'}
"""
)

_RELEASE = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
"""


class SharedVisitorLimits(VisitorLimits):
    """The same limits, counted in Redis across every replica (see the module's docstring). `replica` is this
    process's id, whose presence key (`presence_prefix` + replica) the relay keeps alive."""

    def __init__(
        self,
        redis: aioredis.Redis,
        replica: str,
        presence_prefix: str,
        max_concurrent: int,
        max_per_minute: int,
        prefix: str = PREFIX + "limits:",
    ) -> None:
        super().__init__(max_concurrent, max_per_minute)
        self._redis = redis
        self._replica = replica
        self._presence = presence_prefix
        self._prefix = prefix
        self._admit: Any = redis.register_script(_ADMIT)
        self._hold: Any = redis.register_script(_HOLD)
        self._release: Any = redis.register_script(_RELEASE)

    def _keys(self, visitor: str) -> tuple[str, str]:
        return f"{self._prefix}running:{visitor}", f"{self._prefix}started:{visitor}"

    async def _run_admit(self, visitor: str, *, count: bool) -> None:
        if not self.active:
            return
        args = [self._presence, self.max_concurrent, self.max_per_minute, time.time(), WINDOW]
        answer = await self._admit(keys=self._keys(visitor), args=[*args, "1" if count else "0", secrets.token_hex(8)])
        self._raise(answer)

    def _raise(self, answer: list[Any]) -> None:
        kind = answer[0].decode() if isinstance(answer[0], bytes) else answer[0]
        if kind == "running":
            raise too_many_running(int(answer[1]), self.max_concurrent)
        if kind == "started":
            raise too_many_started(int(answer[1]), float(answer[2]) + WINDOW - time.time())

    async def check(self, visitor: str) -> None:
        await self._run_admit(visitor, count=False)

    async def count(self, visitor: str) -> None:
        await self._run_admit(visitor, count=True)

    @contextlib.asynccontextmanager
    async def hold(self, visitor: str) -> AsyncIterator[None]:
        if not self.max_concurrent:
            yield
            return
        running_key = self._keys(visitor)[0]
        self._raise(await self._hold(keys=[running_key], args=[self._presence, self.max_concurrent, self._replica]))
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # Redis gone: the count goes when this replica's presence does
                await self._release(keys=[running_key], args=[self._replica])


# KEYS: the visitor's hash of minute -> bytes. ARGV: now, window, bucket, most bytes, this upload's bytes.
# Answers {'ok'}, or {'over', minute, bytes, minute, bytes...} with what the window holds.
_TAKE_UPLOAD = """
local now, window, bucket = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local most, size = tonumber(ARGV[4]), tonumber(ARGV[5])
local counts = redis.call('HGETALL', KEYS[1])
local held, kept = 0, {}
for i = 1, #counts, 2 do
  if tonumber(counts[i]) <= now - window then redis.call('HDEL', KEYS[1], counts[i])
  else
    held = held + tonumber(counts[i + 1])
    table.insert(kept, counts[i])
    table.insert(kept, counts[i + 1])
  end
end
if held + size > most then return {'over', unpack(kept)} end
redis.call('HINCRBY', KEYS[1], tostring(now - now % bucket), size)
redis.call('EXPIRE', KEYS[1], math.ceil(window + bucket))
return {'ok'}
"""


class SharedUploadAllowance(UploadAllowance):
    """The same allowance, counted in Redis across every replica: one hash per visitor, each upload one script."""

    def __init__(self, redis: aioredis.Redis, max_bytes: int, prefix: str = PREFIX + "limits:uploads:") -> None:
        super().__init__(max_bytes)
        self._redis = redis
        self._prefix = prefix
        self._take: Any = redis.register_script(_TAKE_UPLOAD)

    async def take(self, visitor: str, size: int) -> None:
        if not self.max_bytes:
            return
        now = float(int(time.time()))  # (whole seconds: minutes name the hash's fields)
        answer = await self._take(
            keys=[self._prefix + visitor], args=[now, UPLOAD_WINDOW, UPLOAD_BUCKET, self.max_bytes, size]
        )
        if (answer[0].decode() if isinstance(answer[0], bytes) else answer[0]) == "over":
            pairs = sorted((float(answer[n]), int(answer[n + 1])) for n in range(1, len(answer), 2))
            held = sum(part for _, part in pairs)
            raise too_much_uploaded(self.max_bytes, upload_wait(pairs, held + size - self.max_bytes, now))
