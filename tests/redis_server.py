"""A throwaway Redis for tests: Debian's redis-server on a loopback port, with a password, nothing written to disk,
stopped at the end."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time


def unavailable() -> str | None:
    """Why a throwaway Redis cannot run here, or None when it can."""
    return None if shutil.which("redis-server") else "redis-server not found (apt-get install redis-server)"


class ThrowawayRedis:
    """`redis-server` in a temp dir on 127.0.0.1; `url` (no password in it) and `password` reach it."""

    def __init__(self) -> None:
        self.password = secrets.token_urlsafe(24)
        self.folder = tempfile.TemporaryDirectory(prefix="switchboard-redis-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ThrowawayRedis:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        command += ["--dir", self.folder.name, "--requirepass", self.password, "--protected-mode", "yes"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def flush(self) -> None:
        import redis

        with redis.Redis.from_url(self.url, password=self.password) as client:
            client.flushall()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.folder.cleanup()
