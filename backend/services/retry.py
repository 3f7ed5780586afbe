"""Retry policy: which failures to retry, and how long to wait (Retry-After first, else backoff with jitter).

The upstream's Retry-After is read by the HTTP adapters (`parse_retry_after`, backend/providers/http.py) into
`APIError.retry_after`."""

from __future__ import annotations

import random

from ..errors import APIError

INITIAL_DELAY = 0.5
MAX_DELAY = 8.0


def backoff(attempt: int) -> float:
    """Exponential backoff for attempt 0, 1, 2...: 0.5 s doubling to 8 s, with up to 25% jitter downwards."""
    return min(INITIAL_DELAY * 2.0**attempt, MAX_DELAY) * (1 - 0.25 * random.random())


def retry_delay(error: APIError, attempt: int, cap: float) -> float | None:
    """How long to wait before retrying `error`, or None when it should not be retried on this provider.

    A Retry-After longer than `cap` is not waited for: an interactive user is better served by failing over.
    """
    if not error.retryable:
        return None
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= cap else None
    return backoff(attempt)
