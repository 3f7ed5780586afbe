"""Rests of provider models shared by every replica: a model rested on one (rate limited, failing) is rested on all,
a replica that starts later included; a success anywhere ends the rest everywhere (see backend/services/cooldown.py).

A rest started or ended here is written to a hash of the rests going on (for replicas that start later) and
published on a channel the relay listens to (backend/replicas/relay.py), which hands each message to `heard`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .redis import key

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ..services.cooldown import Cooldowns

COOLDOWN_CHANNEL = key("cooldowns")  # rests of provider models, started or ended on one replica
RESTING = key("resting")  # the rests going on (target -> [until, rate limited]), for a replica that starts


class SharedCooldowns:
    """This replica's `cooldowns`, told to and told by the others. `spawn` runs a coroutine in the background (the
    relay's, so it is cancelled when the relay closes)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        replica: str,
        cooldowns: Cooldowns,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.redis = redis
        self.replica = replica
        self.cooldowns = cooldowns
        self.spawn = spawn

    async def start(self) -> None:
        """Tell the others every rest started or ended here from now on, and take on theirs still going."""
        self.cooldowns.shared = self._tell_cooldown
        await self._learn_cooldowns(self.cooldowns)

    def heard(self, data: bytes) -> None:
        """A message of COOLDOWN_CHANNEL: a rest another replica started or ended (ValueError if malformed)."""
        replica, target, seconds, rate_limited = json.loads(data)
        if replica != self.replica:
            self.cooldowns.apply(str(target), float(seconds), bool(rate_limited))

    def _tell_cooldown(self, target: str, seconds: float, rate_limited: bool) -> None:
        self.spawn(self._told_cooldown(target, seconds, rate_limited))

    async def _told_cooldown(self, target: str, seconds: float, rate_limited: bool) -> None:
        if seconds > 0:
            await self.redis.hset(RESTING, target, json.dumps([time.time() + seconds, rate_limited]))
        else:
            await self.redis.hdel(RESTING, target)
        await self.redis.publish(COOLDOWN_CHANNEL, json.dumps([self.replica, target, seconds, rate_limited]))

    async def _learn_cooldowns(self, cooldowns: Cooldowns) -> None:
        """The rests other replicas started before this one did (those not over yet)."""
        for target, value in (await self.redis.hgetall(RESTING)).items():
            with contextlib.suppress(ValueError, TypeError):
                until, rate_limited = json.loads(value)
                if (left := float(until) - time.time()) > 0:
                    name = target.decode() if isinstance(target, bytes) else str(target)
                    cooldowns.apply(name, left, bool(rate_limited))
