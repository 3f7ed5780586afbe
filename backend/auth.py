"""Who may use a shared instance: users and password hashes from a file, or name:password pairs from an
environment variable. Passwords are never written in the TOML config.

A users file has one `name:pbkdf2_sha256$iterations$salt$hash` line per user (`switchboard passwd NAME` prints
one). The environment variable form is `alice:secret1,bob:secret2`, for containers and CI. The file is read again
while the app runs, once it changes (`Users.follow_file`): a login taken out of it stops working everywhere.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .errors import ConfigError, OwnMessageError

log = logging.getLogger(__name__)

LOCAL_OWNER = "local"  # whose everything is when the app runs without logins (the UI, and the API on loopback)
SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000
MAX_FAILURES = 10  # failed logins per user within FAILURE_WINDOW before further tries are refused unchecked
MAX_ADDRESS_FAILURES = 30  # failed logins from one address (any names) within FAILURE_WINDOW, likewise
FAILURE_WINDOW = 600.0  # seconds
FAILURES_KEPT = 10_000  # keys counted in one process before those with no failure left in the window are dropped
# Password checks run on threads of their own, never on the event loop or the default thread pool, and wait in a
# line served one address at a time (_CheckingLine). One full hash takes about 0.14 s of a core here: one thread
# checks about 7 sign-ins a second and leaves the other core to the event loop (every visitor's stream).
HASHING_THREADS = 1
IN_LINE_PER_ADDRESS = 4  # sign-ins of one address being checked or waiting; more at once are refused unchecked
IN_LINE = 32  # sign-ins of all addresses in line: at most about 5 s of waiting; more are refused unchecked
RELOAD_SECONDS = 1.0  # how often the users file is looked at (a stat; it is read again only when it changed)


class LoginRefusedError(OwnMessageError):
    """A sign-in refused before its password was checked: its address failed too often lately, or has too many
    sign-ins in line already, or the line is full. Answered with 429, this sentence and `retry_after` (at most)."""


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def check_password(stored: str, password: str) -> bool:
    """True when `password` matches `stored` (a hash from hash_password, or a plain password from the env)."""
    if not stored.startswith(SCHEME + "$"):
        return hmac.compare_digest(stored.encode(), password.encode())
    try:
        _, iterations, salt, digest = stored.split("$")
        actual = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual, _unb64(digest))


@functools.cache
def _decoy() -> str:
    return hash_password(secrets.token_hex(16), iterations=ITERATIONS)


class Failures(Protocol):
    """Failed logins per key (a user, an address): `most` within FAILURE_WINDOW throttle the key. Called on the
    hashing threads."""

    def throttled(self, key: str) -> bool: ...
    def failed(self, key: str) -> None: ...
    def succeeded(self, key: str) -> None: ...


class _LocalFailures:
    """Failed logins per key (a user, an address), counted in this process: `most` within FAILURE_WINDOW
    throttle the key."""

    def __init__(self, clock: Callable[[], float], most: int = MAX_FAILURES) -> None:
        self._clock = clock
        self._most = most
        self._failures: dict[str, deque[float]] = {}
        self._sweep_at = FAILURES_KEPT
        self._lock = threading.Lock()  # called from the hashing threads

    def throttled(self, key: str) -> bool:
        with self._lock:
            failures = self._failures.get(key)
            if not failures:
                return False
            while failures and failures[0] <= self._clock() - FAILURE_WINDOW:
                failures.popleft()
            return len(failures) >= self._most

    def failed(self, key: str) -> None:
        with self._lock:
            self._failures.setdefault(key, deque()).append(self._clock())
            if len(self._failures) >= self._sweep_at:
                self._sweep()

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _sweep(self) -> None:
        """Forget keys whose failures all left the window: a flood from ever new addresses leaves nothing behind
        (swept again once the keys kept have doubled, so a sweep costs nothing per failure on average)."""
        horizon = self._clock() - FAILURE_WINDOW
        for key in [key for key, failures in self._failures.items() if failures[-1] <= horizon]:
            del self._failures[key]
        self._sweep_at = max(FAILURES_KEPT, 2 * len(self._failures))


def address_key(address: str) -> str:
    """What per-address throttling counts for a client address: an IPv4 address (also when written as IPv6), or
    the /64 network of an IPv6 address: a home or a server is given a whole /64, so counting single IPv6
    addresses would give one machine 2**64 fresh starts."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


_Waiting = tuple[Callable[[], bool], "concurrent.futures.Future[bool]"]  # a check, and where its answer goes


class _CheckingLine:
    """Password checks waiting for HASHING_THREADS threads of their own, served one address at a time in turn:
    however many sign-ins one address sends, a sign-in from any other address is checked after at most one of
    them per thread. A flood waits behind itself, and past IN_LINE_PER_ADDRESS of one address, or IN_LINE in all,
    a sign-in is refused at once, unchecked. (Measured: during 300 sign-ins with random names, 100 at once, from
    one address, a real user's took 7.7 s when every check went to the shared thread pool, 0.3 s in this line.)"""

    def __init__(self, threads: int, per_address: int, in_all: int) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="switchboard-login")
        self._per_address = per_address
        self._in_all = in_all
        self._lock = threading.Lock()
        # address -> its checks waiting, in turn order: the first address is served next, then goes to the back
        self._turns: OrderedDict[str, deque[_Waiting]] = OrderedDict()
        self._in_line: dict[str, int] = {}  # address -> its checks waiting or running
        self._total = 0

    async def run(self, address: str, check: Callable[[], bool]) -> bool:
        """`check()`'s answer once its turn came (LoginRefusedError at once when the line is too long)."""
        future: concurrent.futures.Future[bool] = concurrent.futures.Future()
        with self._lock:
            if self._in_line.get(address, 0) >= self._per_address:
                raise LoginRefusedError(
                    "Too many sign-ins from your address at once; try again in a moment.", retry_after=1
                )
            if self._total >= self._in_all:
                raise LoginRefusedError("Too many sign-ins are waiting; try again in a moment.", retry_after=1)
            self._in_line[address] = self._in_line.get(address, 0) + 1
            self._total += 1
            self._turns.setdefault(address, deque()).append((check, future))
        self._executor.submit(self._next)  # one run of _next per check: every check runs once
        return await asyncio.wrap_future(future)  # (a sign-in given up while waiting is skipped: cancelled)

    def _next(self) -> None:
        """Run the check whose turn it is (not necessarily the one whose submission started this run)."""
        with self._lock:
            address, waiting = self._turns.popitem(last=False)
            check, future = waiting.popleft()
            if waiting:
                self._turns[address] = waiting  # to the back of the line
        try:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(check())
                except BaseException as error:
                    future.set_exception(error)
        finally:
            with self._lock:
                self._total -= 1
                left = self._in_line[address] - 1
                if left:
                    self._in_line[address] = left
                else:
                    del self._in_line[address]


class Sessions(dict[str, str]):
    """Gradio's sign-ins (the access-token cookie's token -> login name) in this process, which sign in only a
    login that is active now (`Users.active`): Gradio and the app's guard read them with `get`, so a login taken out
    of the users file is signed out of every session at its next request, on every route."""

    def __init__(self, users: Users) -> None:
        super().__init__()
        self._users = users

    def get(self, token: str | None, default: None = None) -> str | None:  # type: ignore[override]
        user = super().get(token) if token is not None else None
        return user if user is not None and self._users.active(user) else default


class Users:
    """Who may sign in (`verify`, the login check Gradio calls) and who may act now (`active`).

    Guessing is throttled per user and per address: after MAX_FAILURES failed logins for one name, or
    MAX_ADDRESS_FAILURES from one address whatever the names, within FAILURE_WINDOW, that name's (that address's)
    logins are refused without being checked until the oldest failure leaves the window (across replicas once
    `count_failures` is given Redis's counts). Every answer about a name costs the same (one full hash), so timing
    tells nothing about which names exist; an address's refusals cost nothing, and say so. Checks wait in a line of
    their own (`_CheckingLine`), one address at a time."""

    def __init__(
        self,
        passwords: dict[str, str],
        clock: Callable[[], float] = time.monotonic,
        *,
        users_file: Path | None = None,
    ) -> None:
        """`passwords` are the logins from the environment; `users_file`'s are read now (ConfigError when it
        cannot be used) and again whenever it changes (`follow_file`)."""
        self._file = _UsersFile(users_file) if users_file is not None else None
        self._fixed = passwords
        self._passwords = {**(self._file.read() if self._file else {}), **passwords}
        self._failures: Failures = _LocalFailures(clock)
        self._address_failures: Failures = _LocalFailures(clock, MAX_ADDRESS_FAILURES)
        self._line = _CheckingLine(HASHING_THREADS, IN_LINE_PER_ADDRESS, IN_LINE)

    def count_failures(self, by_name: Failures, by_address: Failures) -> None:
        """Count failed logins, per name and per address, with these (with replicas, where every replica sees
        them: backend/replicas/failures.py, picked by backend/app.py)."""
        self._failures = by_name
        self._address_failures = by_address

    def active(self, name: str) -> bool:
        """Whether login `name` may act now: a session signs it in and its API keys work only while this holds,
        checked at each use. Now: it is in the users file as last read (`follow_file`) or in the environment."""
        return name in self._passwords

    async def verify(self, username: str, password: str, address: str = "unknown") -> bool:
        """Gradio's login check for a sign-in from `address` (the client's, as the app's trusted proxies give it),
        run in the checking line: never on the event loop (a hash takes about 0.14 s, which every other visitor's
        stream would wait for), nor on the shared thread pool. LoginRefusedError, unchecked, when the address
        failed too often lately or has too many sign-ins in line."""
        where = address_key(address)
        return await self._line.run(where, functools.partial(self._check, username, password, where))

    def _check(self, username: str, password: str, address: str) -> bool:
        if self._address_failures.throttled(address):
            minutes = round(FAILURE_WINDOW / 60)
            raise LoginRefusedError(
                f"Too many failed sign-ins from your address in the last {minutes} minutes; try again later.",
                retry_after=FAILURE_WINDOW,
            )
        if self(username, password):
            return True
        self._address_failures.failed(address)  # (never cleared by a success: one login would reset the count)
        return False

    def __call__(self, username: str, password: str) -> bool:
        """The password check alone, on the caller's thread, throttled per name only."""
        stored = self._passwords.get(username)
        # Every answer costs one full hash: a quick refusal (an unknown name, a throttled one) or a quick
        # check (a password from the environment) would tell which names exist.
        if stored is None or self._failures.throttled(username):
            check_password(_decoy(), password)
            return False
        if not stored.startswith(SCHEME + "$"):
            check_password(_decoy(), password)
        if check_password(stored, password):
            self._failures.succeeded(username)
            return True
        self._failures.failed(username)
        return False

    async def follow_file(self) -> None:
        """Keep the logins as the users file has them, until cancelled: it is looked at every RELOAD_SECONDS on a
        worker thread (a stat, no hash) and read again when its time, size or inode changed. A file that cannot be
        read or has a malformed line is logged and changes nothing until it is fixed."""
        if self._file is None:
            return
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            await asyncio.to_thread(self._reload)

    def _reload(self) -> None:
        assert self._file is not None
        if not self._file.changed():
            return
        try:
            from_file = self._file.read()
        except ConfigError as error:
            log.warning("%s; the logins stay as they were until it is fixed", error)
            return
        before = set(self._passwords)
        self._passwords = {**from_file, **self._fixed}
        gone = len(before - set(self._passwords))
        log.info("auth.users_file read again: %d login(s), %d gone", len(self._passwords), gone)

    def names(self) -> list[str]:
        """Every login name."""
        return list(self._passwords)

    def __len__(self) -> int:
        return len(self._passwords)


class _UsersFile:
    """A users file, and whether it changed since it was last read."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self._read_as: tuple[int, int, int] | None = None

    def read(self) -> dict[str, str]:
        """name -> stored hash; ConfigError naming the file (and the line) when it cannot be used."""
        self._read_as = self._signature()  # before reading: a change made meanwhile is read next time
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"auth.users_file: cannot read {self.path}: {exc.strerror}") from None
        passwords: dict[str, str] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, _, stored = line.strip().partition(":")
            if not name or not stored.startswith(SCHEME + "$"):
                raise ConfigError(
                    f"{self.path}: line {number}: expected name:{SCHEME}$... (make one: switchboard passwd)"
                )
            passwords[name] = stored
        return passwords

    def changed(self) -> bool:
        return self._signature() != self._read_as

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            status = self.path.stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size, status.st_ino


def load_users(users_file: Path | None, users_env: str | None) -> Users | None:
    """The configured users, or None when authentication is off."""
    passwords: dict[str, str] = {}
    if users_env is not None:
        raw = os.environ.get(users_env, "")
        if not raw:
            raise ConfigError(f"auth.users_env: environment variable {users_env} is not set")
        for pair in raw.split(","):
            name, _, password = pair.strip().partition(":")
            if not name or not password:
                raise ConfigError(f"auth.users_env: {users_env} must look like alice:secret1,bob:secret2")
            passwords[name] = password
    users = Users(passwords, users_file=users_file)
    return users if len(users) else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
