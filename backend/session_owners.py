"""Whose a browser session is: a session hash or event id belongs to the first login that names it.

Gradio lets the browser choose its session hash and puts it, and event ids, in URLs (so in proxy logs): holding one
proves nothing. The web app binds each to the first login that uses it and refuses it to every other login
(webui/session_guard.py). Session hashes and event ids share one namespace, as they do in Gradio (an event sent
without a session hash runs in a session named by its event id).

`SessionOwners` keeps the bindings in this process: the SESSIONS_KEPT most recently used. With replicas
(`[redis] url`), `SharedSessionOwners` (backend/replicas/bindings.py) keeps them in Redis as well, so the first
login to use an id owns it on every replica (set only if absent). A binding lasts BINDING_SECONDS after its last
use (Gradio forgets a closed session's state after an hour); since a binding never changes owner, each replica
remembers what it learnt and asks Redis only about ids new to it, renewing a binding at most every RENEW_SECONDS.
"""

from __future__ import annotations

import time
from collections import OrderedDict

SESSIONS_KEPT = 100_000  # bindings one process remembers; the least recently used are forgotten first
BINDING_SECONDS = 24 * 3600
RENEW_SECONDS = 600.0


class SessionOwners:
    """Bindings of session hashes and event ids to logins, in this process."""

    def __init__(self, kept: int = SESSIONS_KEPT) -> None:
        self._kept = kept
        self._owners: OrderedDict[str, tuple[str, float]] = OrderedDict()  # id -> (login, when last renewed)

    async def claim(self, key: str, login: str) -> bool | None:
        """Whether `key` is `login`'s: bound to it now if it was nobody's. None: it cannot be told just now."""
        return self._remember(key, login) == login

    def _known(self, key: str) -> tuple[str, float] | None:
        binding = self._owners.get(key)
        if binding is not None:
            self._owners.move_to_end(key)
        return binding

    def _remember(self, key: str, owner: str) -> str:
        """The owner of `key`: the one already known, else `owner` from now on."""
        known = self._known(key)
        if known is not None:
            return known[0]
        self._owners[key] = (owner, time.monotonic())
        while len(self._owners) > self._kept:
            self._owners.popitem(last=False)
        return owner

    async def aclose(self) -> None:
        """Nothing to close in one process (the Redis twin closes its client)."""
