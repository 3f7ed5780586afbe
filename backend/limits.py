"""Per-visitor limits for a shared instance: generations at once, requests started per minute, and bytes uploaded
per hour.

A visitor is whatever key the caller passes: with logins, the user (`login_visitor`), for the page and for every
API key of that login alike; without logins, the client address (the page) or the local owner (the API on
loopback). Chat, image generation, vision and the API count against the same limits, so no tab, route or second
key is a way around them.

`VisitorLimits` and `UploadAllowance` (the bytes a visitor uploads, counted by the minute: at most 60 numbers per
visitor, however many uploads) count in this process; with several replicas, their twins in
backend/replicas/limits.py count in Redis, so a visitor gets one allowance across all replicas.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable

from .errors import OwnMessageError

WINDOW = 60.0  # seconds
UPLOAD_WINDOW = 3600.0  # seconds over which a visitor's upload bytes count
UPLOAD_BUCKET = 60.0  # upload bytes are counted per minute


def too_many_characters(subject: str, chars: int, most: int) -> str:
    """The sentence refusing a text longer than `most` characters (`app.max_message_chars`), wherever it comes
    from: `subject` names it ("The system prompt", "A user message")."""
    return f"{subject} has {chars:,} characters; the limit here is {most:,}."


def login_visitor(name: str) -> str:
    """The visitor that a login's requests count as, from the page and from each of its API keys: one allowance
    per user (measured: counted per key, 3 chats in the page and 3 streams on each of two keys gave one user 9
    generations at once where 3 were allowed)."""
    return f"user:{name}"


class TooManyRequestsError(OwnMessageError):
    """This visitor has reached a limit of the instance (not of a provider); `retry_after` says when a request
    may start again, when it depends on time rather than on a running generation ending."""


def too_many_running(running: int, most: int) -> TooManyRequestsError:
    plural = "s" if most > 1 else ""
    return TooManyRequestsError(
        f"You already have {running} repl{'ies' if running > 1 else 'y'} running (at most "
        f"{most} generation{plural} at once here); wait for one to finish."
    )


def too_many_started(started: int, wait: float) -> TooManyRequestsError:
    return TooManyRequestsError(
        f"You have started {started} requests in the last minute, the most allowed here; "
        f"try again in {max(wait, 1.0):.0f} s.",
        retry_after=max(wait, 1.0),
    )


def too_much_uploaded(most: int, wait: float) -> TooManyRequestsError:
    return TooManyRequestsError(
        f"This upload would take you over the {most / 1e6:g} MB you may upload in an hour here; "
        f"try again in {max(1, math.ceil(wait / 60))} min.",
        retry_after=max(wait, 1.0),
    )


def upload_wait(buckets: list[tuple[float, int]], excess: int, now: float) -> float:
    """Seconds until enough of `buckets` ((minute, bytes), oldest first) leave the window to free `excess` bytes."""
    freed = 0
    for minute, size in buckets:
        freed += size
        if freed >= excess:
            return minute + UPLOAD_WINDOW - now
    return UPLOAD_WINDOW  # more than the whole allowance at once: never within an hour


class VisitorLimits:
    """`max_concurrent` generations at once and `max_per_minute` requests started in any 60 s, per visitor;
    0 turns a limit off. `check()` refuses without counting (to refuse before anything is saved or sent);
    `count()` counts a request, `hold()` holds a slot for as long as its block runs, `admit()` does both."""

    def __init__(self, max_concurrent: int, max_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_concurrent = max_concurrent
        self.max_per_minute = max_per_minute
        self._clock = clock
        self._running: dict[str, int] = {}
        self._started: dict[str, deque[float]] = {}

    @classmethod
    def off(cls) -> VisitorLimits:
        return cls(0, 0)

    @property
    def active(self) -> bool:
        return bool(self.max_concurrent or self.max_per_minute)

    async def check(self, visitor: str) -> None:
        """Raise TooManyRequestsError if a request from `visitor` would be refused now."""
        self._check_running(visitor)
        self._check_rate(visitor, count=False)

    async def count(self, visitor: str) -> None:
        """Count one request started by `visitor` (refused with TooManyRequestsError when over a limit). A chat
        message is counted when it is saved, before its reply runs under `hold`."""
        self._check_running(visitor)
        self._check_rate(visitor, count=True)

    @contextlib.asynccontextmanager
    async def hold(self, visitor: str) -> AsyncIterator[None]:
        """Hold one of `visitor`'s generation slots until the block ends (the request was counted already)."""
        if not self.max_concurrent:
            yield
            return
        self._check_running(visitor)
        self._running[visitor] = self._running.get(visitor, 0) + 1
        try:
            yield
        finally:
            left = self._running[visitor] - 1
            if left:
                self._running[visitor] = left
            else:
                del self._running[visitor]  # no entry per visitor ever seen: memory stays flat

    @contextlib.asynccontextmanager
    async def admit(self, visitor: str) -> AsyncIterator[None]:
        """Count one request from `visitor` and hold one generation slot until the block ends."""
        await self.count(visitor)
        async with self.hold(visitor):
            yield

    def _check_running(self, visitor: str) -> None:
        running = self._running.get(visitor, 0)
        if self.max_concurrent and running >= self.max_concurrent:
            raise too_many_running(running, self.max_concurrent)

    def _check_rate(self, visitor: str, *, count: bool) -> None:
        if not self.max_per_minute:
            return
        started = self._recent(visitor)
        if len(started) >= self.max_per_minute:
            raise too_many_started(len(started), started[0] + WINDOW - self._clock())
        if count:
            self._started.setdefault(visitor, started).append(self._clock())

    def _recent(self, visitor: str) -> deque[float]:
        started = self._started.get(visitor)
        if started is None:
            return deque()
        horizon = self._clock() - WINDOW
        while started and started[0] <= horizon:
            started.popleft()
        if not started:
            del self._started[visitor]
        return started


class UploadAllowance:
    """`max_bytes` each visitor may upload in any hour (0: no limit), counted by the minute in this process.
    `take()` counts an upload's bytes, or refuses it (TooManyRequestsError, with `retry_after`) when they would go
    over. Visitors not seen for an hour are forgotten."""

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._taken: OrderedDict[str, list[tuple[float, int]]] = OrderedDict()  # oldest seen first

    async def take(self, visitor: str, size: int) -> None:
        if not self.max_bytes:
            return
        now = self._clock()
        while self._taken and next(iter(self._taken.values()))[-1][0] <= now - UPLOAD_WINDOW:
            self._taken.popitem(last=False)
        buckets = [bucket for bucket in self._taken.pop(visitor, []) if bucket[0] > now - UPLOAD_WINDOW]
        held = sum(part for _, part in buckets)
        if held + size > self.max_bytes:
            if buckets:
                self._taken[visitor] = buckets
            raise too_much_uploaded(self.max_bytes, upload_wait(buckets, held + size - self.max_bytes, now))
        minute = now - now % UPLOAD_BUCKET
        if buckets and buckets[-1][0] == minute:
            buckets[-1] = (minute, buckets[-1][1] + size)
        else:
            buckets.append((minute, size))
        self._taken[visitor] = buckets  # (last: the most recently seen)
