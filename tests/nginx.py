"""A throwaway nginx in front of app replicas, with the shipped site config (deploy/nginx.conf): Debian's nginx on a
loopback port, its files in a temp dir, stopped at the end."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPLICA_HEADER = "x-switchboard-replica"  # the replica's address, added to every answer (tests only)


def unavailable() -> str | None:
    return None if shutil.which("nginx") else "nginx not found (apt-get install nginx)"


def site_config(replicas: list[int], port: int) -> str:
    """deploy/nginx.conf with the replicas on 127.0.0.1:`replicas`, listening on 127.0.0.1:`port`, and each
    answer saying which replica gave it."""
    text = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    text, removed = re.subn(r"    server app\d+:7860 ([^;]*);\n", "", text)
    assert removed, "deploy/nginx.conf names no app servers"
    servers = "".join(f"    server 127.0.0.1:{replica} max_fails=1 fail_timeout=5s;\n" for replica in replicas)
    text = text.replace("    keepalive 32;", servers + "    keepalive 32;")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    return text.replace("location / {", f"location / {{\n        add_header {REPLICA_HEADER} $upstream_addr always;")


class ThrowawayNginx:
    def __init__(self, replicas: list[int]) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="switchboard-nginx-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        folder = Path(self.folder.name)
        (folder / "switchboard.conf").write_text(site_config(replicas, self.port), encoding="utf-8")
        temp = " ".join(
            f"{kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;" if os.geteuid() == 0 else ""  # (as root, workers would run as nobody: the temp dir is ours)
        (folder / "nginx.conf").write_text(
            f"daemon off; worker_processes 1; pid {folder / 'nginx.pid'}; {user}\n"
            f"error_log {folder / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            f"http {{ access_log off; {temp} include {folder / 'switchboard.conf'}; }}\n",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ThrowawayNginx:
        folder = self.folder.name
        command = ["nginx", "-c", f"{folder}/nginx.conf", "-p", folder, "-e", f"{folder}/error.log"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx did not start: {self.errors()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start listening")

    def errors(self) -> str:
        log = Path(self.folder.name) / "error.log"
        return log.read_text(encoding="utf-8")[-2000:] if log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.folder.cleanup()
