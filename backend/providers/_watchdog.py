"""Time an upstream out when it stays silent: before its first output, and between outputs once it streams.

httpx's read timeout cannot do this alone: it is one number for the whole response, and keep-alive pings or an
empty role chunk reset it although no answer arrives. The watchdog measures what the user waits for: output
events. It is cheap on the per-token path (two attribute stores per event): one timer per stream re-arms itself
lazily when it finds the deadline has moved, instead of being cancelled and rescheduled for every token.

Only time spent waiting on the upstream counts: while the consumer holds an event (the caller's loop body runs
between two `__anext__` calls), the watchdog is paused, so a slow consumer is never mistaken for a stalled
upstream.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any


class SilenceWatchdog:
    """Cancels the waiting task when the upstream is silent too long; `expired()` then tells the cancellation
    apart from any other. `first_output` bounds the wait from the start to the first output; `idle` the wait
    between two outputs. Either may be None (no limit)."""

    __slots__ = ("_deadline", "_first_deadline", "_handle", "_idle", "_loop", "_task", "fired", "started")

    def __init__(self, first_output: float | None, idle: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._first_deadline = math.inf if first_output is None else now + first_output
        self._idle = idle
        self._deadline = math.inf  # loop time; inf while nothing is awaited from the upstream
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self.started = False
        self.fired: str | None = None  # "first_output" or "idle" once the watchdog has cancelled the task

    def waiting(self) -> None:
        """The task is about to wait for the upstream's next event."""
        if self.started:
            if self._idle is None:
                return
            self._deadline = self._loop.time() + self._idle
        else:
            self._deadline = self._first_deadline
        self._task = asyncio.current_task()
        if self._handle is None and self._deadline != math.inf:
            self._handle = self._loop.call_at(self._deadline, self._check)

    def holding(self) -> None:
        """The consumer has an event in hand: its time does not count against the upstream."""
        self._deadline = math.inf

    def output(self) -> None:
        """The upstream produced its first output: from now on, the idle limit applies."""
        if not self.started:
            self.started = True
            self.close()  # the timer may be set for the later first-output deadline; `waiting()` re-arms it

    def expired(self) -> bool:
        """True if the current cancellation is this watchdog's; it is then taken back from the task, so the
        caller can raise a timeout error instead."""
        if self.fired is None or self._task is None:
            return False
        return self._task.uncancel() == 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        if self._deadline == math.inf or self.fired:
            return  # re-armed by the next `waiting()`
        if self._loop.time() < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._check)
            return
        self.fired = "idle" if self.started else "first_output"
        if self._task is not None:
            self._task.cancel()
