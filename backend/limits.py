"""Per-visitor limits for a shared instance: generations at once, and requests started per minute.

A visitor is whatever key the caller passes (the web UI uses the logged-in user, or the client address without
logins). Chat, image generation and vision count against the same limits, so no tab is a way around them.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator

from .errors import OwnMessageError

WINDOW = 60.0  # seconds


class TooManyRequestsError(OwnMessageError):
    """This visitor has reached a limit of the instance (not of a provider); `retry_after` says when a request
    may start again, when it depends on time rather than on a running generation ending."""


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

    def check(self, visitor: str) -> None:
        """Raise TooManyRequestsError if a request from `visitor` would be refused now."""
        self._check_running(visitor)
        self._check_rate(visitor)

    def count(self, visitor: str) -> None:
        """Count one request started by `visitor` (refused with TooManyRequestsError when over a limit). A chat
        message is counted when it is saved, before its reply runs under `hold`."""
        self.check(visitor)
        if self.max_per_minute:
            self._started.setdefault(visitor, deque()).append(self._clock())

    @contextlib.contextmanager
    def hold(self, visitor: str) -> Iterator[None]:
        """Hold one of `visitor`'s generation slots until the block ends (the request was counted already)."""
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

    @contextlib.contextmanager
    def admit(self, visitor: str) -> Iterator[None]:
        """Count one request from `visitor` and hold one generation slot until the block ends."""
        self.count(visitor)
        with self.hold(visitor):
            yield

    def _check_running(self, visitor: str) -> None:
        running = self._running.get(visitor, 0)
        if self.max_concurrent and running >= self.max_concurrent:
            plural = "s" if self.max_concurrent > 1 else ""
            raise TooManyRequestsError(
                f"You already have {running} repl{'ies' if running > 1 else 'y'} running (at most "
                f"{self.max_concurrent} generation{plural} at once here); wait for one to finish."
            )

    def _check_rate(self, visitor: str) -> None:
        if self.max_per_minute:
            started = self._recent(visitor)
            if len(started) >= self.max_per_minute:
                wait = max(started[0] + WINDOW - self._clock(), 1.0)
                raise TooManyRequestsError(
                    f"You have started {len(started)} requests in the last minute, the most allowed here; "
                    f"try again in {wait:.0f} s.",
                    retry_after=wait,
                )

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
