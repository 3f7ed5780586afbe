"""Per-deployment cooldowns: a `provider/model` that keeps failing, or says it is rate limited, is rested for a
while, so later requests go to the route's other targets at once instead of waiting on it again.

- A 429 (or a rate-limit error event) rests the model for what Retry-After asked, or the provider's `cooldown`.
- `failures_before_cooldown` retryable failures in a row (5xx, timeouts, drops, malformed streams) rest it for
  `cooldown` seconds. A success resets the count.
- Errors about the request itself (400, 401, 404...) never start a cooldown: another request may be fine.

With replicas, a rest started (or ended by a success) on one is told to the others (`shared`, set by the relay:
backend/replicas/cooldowns.py), which apply it as their own: a model rate limited for one replica is rested by all.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import APIError, RateLimitError


class Cooldowns:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._causes: dict[str, APIError] = {}
        # Told each rest started here (target, seconds, rate limited?) and each success (seconds 0): the relay.
        self.shared: Callable[[str, float, bool], None] | None = None

    def apply(self, target: str, seconds: float, rate_limited: bool) -> None:
        """A rest of `seconds` another replica started for `target` (0: it answered again there)."""
        if seconds <= 0:
            self._forget(target)
            return
        cause_class = RateLimitError if rate_limited else APIError
        self._rest(target, seconds, cause_class("resting after failures on another replica"), tell=False)

    def remaining(self, target: str) -> float:
        """Seconds until `target` (`provider/model`) may be used again; 0 when it may be used now."""
        until = self._until.get(target)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._until[target]
            return 0.0
        return left

    def failed(self, target: str, error: APIError, *, cooldown: float, failures_before_cooldown: int) -> None:
        if isinstance(error, RateLimitError):
            self._rest(target, error.retry_after if error.retry_after is not None else cooldown, error)
            return
        if not error.retryable:
            return
        count = self._failures.get(target, 0) + 1
        self._failures[target] = count
        if count >= failures_before_cooldown:
            self._rest(target, cooldown, error)

    def cause(self, target: str) -> APIError | None:
        """The failure that started `target`'s current rest."""
        return self._causes.get(target)

    def succeeded(self, target: str) -> None:
        resting = target in self._until
        self._forget(target)
        if resting and self.shared is not None:
            self.shared(target, 0.0, False)

    def _forget(self, target: str) -> None:
        self._failures.pop(target, None)
        self._until.pop(target, None)
        self._causes.pop(target, None)

    def _rest(self, target: str, seconds: float, cause: APIError, *, tell: bool = True) -> None:
        if seconds > 0:
            self._until[target] = max(self._until.get(target, 0.0), self._clock() + seconds)
            self._causes[target] = cause
            if tell and self.shared is not None:
                self.shared(target, seconds, isinstance(cause, RateLimitError))
        self._failures.pop(target, None)
