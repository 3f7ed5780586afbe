"""A throwaway PostgreSQL cluster for tests: initdb into a temp dir, pg_ctl start on a loopback port, stop at the end.

As root (CI), PostgreSQL refuses to run, so the server binaries run as the `postgres` system user (Debian's
package creates it) through `runuser`; otherwise they run as the current user. Logins use a random password
(scram-sha-256), so tests exercise a real password check. The URL never holds the password: pass it separately.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER = "switchboard"
DATABASE = "switchboard_test"
SYSTEM_USER = "postgres"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _version(path: str) -> tuple[int, ...]:
    """The PostgreSQL version in /usr/lib/postgresql/<version>/bin, for sorting (15 before 16, 9.6 before 10)."""
    digits = re.findall(r"\d+", Path(path).parent.name)
    return tuple(int(number) for number in digits)


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: the ones on PATH first, else the newest Debian install."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        # Debian's /usr/bin has pg_wrapper links for clients only; a PATH initdb may be a link into the real bindir.
        real = Path(os.path.realpath(on_path)).parent
        if (real / "pg_ctl").exists():
            return real
        return Path(on_path).parent
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True):
        if os.access(Path(bindir) / "initdb", os.X_OK) and os.access(Path(bindir) / "pg_ctl", os.X_OK):
            return Path(bindir)
    return None


def unavailable() -> str | None:
    """Why a throwaway cluster cannot run here, or None when it can."""
    if find_bindir() is None:
        return "initdb and pg_ctl not found (on PATH or in /usr/lib/postgresql/*/bin)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root without runuser"
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            return f"running as root and there is no {SYSTEM_USER!r} user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temp dir; `url` + `password` reach its `switchboard_test` database."""

    def __init__(self) -> None:
        reason = unavailable()
        if reason:
            raise RuntimeError(f"PostgreSQL cannot run here: {reason}")
        self.bindir: Path = find_bindir()  # type: ignore[assignment]
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self.dir: Path | None = None
        self.started = False
        self.databases: list[str] = []  # made by new_database(), in order
        self.start_seconds = 0.0

    # -- running things ----------------------------------------------------------------------------------------

    def _server_command(self, *args: str) -> list[str]:
        """initdb/pg_ctl, as the unprivileged `postgres` user when we are root."""
        if os.geteuid() == 0:
            return ["runuser", "-u", SYSTEM_USER, "--", *args]
        return list(args)

    def _env(self) -> dict[str, str]:
        """Our environment without the developer's PG* settings, plus the password for client tools."""
        env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
        env["PGPASSWORD"] = self.password
        return env

    def _run(self, command: list[str], what: str) -> None:
        assert self.dir is not None
        done = subprocess.run(command, cwd=self.dir, env=self._env(), capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise RuntimeError(f"PostgreSQL: {what} failed ({done.returncode}): {output}\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        log = self.dir / "log" if self.dir else None
        if log is None or not log.exists():
            return "(no server log)"
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return "server log (tail):\n" + "\n".join(tail)

    # -- life cycle ---------------------------------------------------------------------------------------------

    def start(self) -> ThrowawayPostgres:
        """initdb, pg_ctl start -w on a free loopback port, createdb switchboard_test. Raises with the log's tail."""
        began = time.monotonic()
        self.dir = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
        atexit.register(self.stop)
        try:
            data = self.dir / "data"
            pwfile = self.dir / "pwfile"
            pwfile.write_text(self.password + "\n", encoding="utf-8")
            pwfile.chmod(0o600)
            if os.geteuid() == 0:
                account = pwd.getpwnam(SYSTEM_USER)
                for path in (self.dir, pwfile):
                    os.chown(path, account.pw_uid, account.pw_gid)
            self._run(
                self._server_command(
                    str(self.bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    USER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",  # a throwaway cluster: skip initdb's final fsync of every file
                ),
                "initdb",
            )
            pwfile.unlink()
            # A free port can be taken between probing and binding: try a few.
            for attempt in range(3):
                self.port = _free_port()
                options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
                try:
                    self._run(
                        self._server_command(
                            str(self.bindir / "pg_ctl"),
                            "-D",
                            str(data),
                            "-o",
                            options,
                            "-l",
                            str(self.dir / "log"),
                            "start",
                            "-w",
                            "-t",
                            "30",
                        ),
                        "pg_ctl start",
                    )
                    break
                except RuntimeError:
                    if attempt == 2 or "already in use" not in self._log_tail():
                        raise
            self.started = True
            self._createdb(DATABASE)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _createdb(self, name: str) -> None:
        createdb = self.bindir / "createdb"
        program = str(createdb) if createdb.exists() else "createdb"
        self._run([program, "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name], f"createdb {name}")

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        """`postgresql+asyncpg://switchboard@127.0.0.1:PORT/switchboard_test` (no password: see `password`)."""
        return self.url_for(DATABASE)

    def new_database(self, name: str) -> str:
        """Create an empty database `name`; returns its URL (no password in it)."""
        if not self.started:
            raise RuntimeError("PostgreSQL is not running")
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self._createdb(name)
        self.databases.append(name)
        return self.url_for(name)

    def stop(self) -> None:
        """pg_ctl stop -m immediate, then remove the temp dir. Safe to call twice."""
        if self.dir is None:
            return
        directory, self.dir = self.dir, None
        try:
            self.started = False
            # Also after a failed start: pg_ctl -w may have given up on a server that is still coming up.
            if (directory / "data" / "postmaster.pid").exists():
                subprocess.run(
                    self._server_command(
                        str(self.bindir / "pg_ctl"), "-D", str(directory / "data"), "-m", "immediate", "stop"
                    ),
                    cwd=directory,
                    env=self._env(),
                    capture_output=True,
                    timeout=60,
                )
        finally:
            shutil.rmtree(directory, ignore_errors=True)
            atexit.unregister(self.stop)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
