"""What every benchmark shares: servers in processes of their own, medians, and result rows.

Each measured party (scripted upstream, the app, llama.cpp's server) runs in its own process, so none shares a
GIL with the client that times it. Every comparison is made in one run on one machine, and reported as a ratio.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402

# litellm fetches a price list from GitHub when imported; this machine (and CI) must not reach out.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@dataclass
class Row:
    """One line of the results table: `value` measured against `baseline` in the same run."""

    section: str
    name: str
    value: float
    baseline: float | None = None
    unit: str = "s"
    target: str = ""
    ok: bool | None = None  # None: no target for this row
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(function: Callable[[], object]) -> float:
    began = time.perf_counter()
    function()
    return time.perf_counter() - began


def wait_for_http(url: str, process: subprocess.Popen | None = None, timeout: float = 120.0) -> float:
    """Poll `url` until it answers 200; the seconds it took. Fails if `process` exits first."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{process.args} exited with {process.returncode} before answering")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - began
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def process(command: list[str], ready_url: str | None = None, **options) -> Iterator[subprocess.Popen]:
    """A server process for the duration of the block (stopped after it); waits for `ready_url` if given."""
    options.setdefault("stdout", subprocess.DEVNULL)
    options.setdefault("stderr", subprocess.DEVNULL)
    child = subprocess.Popen(command, **options)
    try:
        if ready_url is not None:
            wait_for_http(ready_url, child)
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


@contextmanager
def scripted_upstream(*arguments: str) -> Iterator[str]:
    """The scripted OpenAI-compatible upstream (tests/upstream.py) in its own process; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "tests.upstream", "--port", str(port), *arguments]
    base_url = f"http://127.0.0.1:{port}/v1"
    with process(command, f"{base_url}/models", cwd=ROOT):
        yield base_url


@contextmanager
def app_config(base_url: str, extra: str = "") -> Iterator[Path]:
    """A config file whose only provider is the scripted upstream at `base_url` (`scripted/scripted-1`)."""
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        path = Path(folder) / "config.toml"
        path.write_text(
            textwrap.dedent(
                f"""
                [app]
                embedded_model = false
                data_dir = "{folder}/data"
                [providers.scripted]
                kind = "openai"
                base_url = "{base_url}"
                models = ["scripted-1"]
                """
            )
            + textwrap.dedent(extra),
            encoding="utf-8",
        )
        yield path


@contextmanager
def app(config: Path) -> Iterator[str]:
    """The real app (`python -m webui`) in its own process; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "webui", "--config", str(config), "--port", str(port)]
    url = f"http://127.0.0.1:{port}/"
    with process(command, url + "gradio_api/info", cwd=config.parent):
        yield url
