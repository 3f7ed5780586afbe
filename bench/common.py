"""What every benchmark shares: servers in processes of their own, medians, and result rows.

Each measured party (scripted upstream, the app, llama.cpp's server) runs in its own process, so none shares a
GIL with the client that times it. Every comparison is made in one run on one machine, and reported as a ratio.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

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
    """The sample at `fraction` (0 to 1) of the sorted samples, nearest rank; nan for no samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(function: Callable[[], object]) -> float:
    began = time.perf_counter()
    function()
    return time.perf_counter() - began


# ---- servers in processes of their own --------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """A server's environment: no SWITCHBOARD_* overrides from the caller (they would beat the config file), no
    Gradio telemetry or version check (nothing leaves 127.0.0.1), this checkout importable."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SWITCHBOARD_")}
    env.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", NO_PROXY="127.0.0.1,localhost")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def tail(log: Path | None, lines: int = 30) -> str:
    """The last lines of a server's log, to say why it failed ("" without one)."""
    if log is not None:
        with contextlib.suppress(OSError):
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def wait_for_http(
    url: str,
    process: subprocess.Popen | None = None,
    timeout: float = 120.0,
    log: Path | None = None,
    headers: dict[str, str] | None = None,
) -> float:
    """Poll `url` (with `headers`) until it answers 200; the seconds it took. Fails, with the end of `log`, if
    `process` exits first or the time runs out."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before answering\n{tail(log)}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, headers=headers, timeout=2, trust_env=False).status_code == 200:
                return time.perf_counter() - began
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s\n{tail(log)}")


def stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextmanager
def process(
    command: list[str],
    ready_url: str | None = None,
    *,
    log: Path | None = None,
    ready_headers: dict[str, str] | None = None,
    **options,
) -> Iterator[subprocess.Popen]:
    """A server process for the duration of the block (stopped after it), in `child_env()` unless `env` is
    given; waits for `ready_url` (asked with `ready_headers`) if given. Its output goes to `log` (shown if it
    fails to start), or nowhere."""
    options.setdefault("env", child_env())
    with log.open("wb") if log is not None else contextlib.nullcontext(subprocess.DEVNULL) as sink:
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, **options)
    try:
        if ready_url is not None:
            wait_for_http(ready_url, child, log=log, headers=ready_headers)
        yield child
    finally:
        stop(child)


@contextmanager
def scripted_upstream(*arguments: str) -> Iterator[str]:
    """The scripted OpenAI-compatible upstream (tests/upstream.py) in its own process; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "tests.upstream", "--port", str(port), *arguments]
    base_url = f"http://127.0.0.1:{port}/v1"
    with process(command, f"{base_url}/models", cwd=ROOT):
        yield base_url


@dataclass
class Reading:
    """One reply read straight from the upstream: when the request went, when its first and last content
    chunks arrived (perf_counter), and how many chunks carried content."""

    began: float
    first: float
    last: float
    count: int


async def read_upstream(client: httpx.AsyncClient, base_url: str, message: str) -> Reading:
    """Read one streamed reply to `message` with httpx + httpx-sse alone: what any client pays at least."""
    body = {"model": "scripted-1", "messages": [{"role": "user", "content": message}], "stream": True}
    began = time.perf_counter()
    first = last = began
    count = 0
    async with aconnect_sse(client, "POST", f"{base_url}/chat/completions", json=body) as source:
        async for event in source.aiter_sse():
            if event.data == "[DONE]":
                break
            if any((c.get("delta") or {}).get("content") for c in json.loads(event.data)["choices"]):
                last = time.perf_counter()
                if not count:
                    first = last
                count += 1
    return Reading(began, first, last, count)


def config_text(base_url: str, data_dir: Path, **app_options: int | float | bool) -> str:
    """A config whose only provider is the scripted upstream at `base_url` (`scripted/scripted-1`), with
    `app_options` in its [app] table."""
    options = "".join(f"{name} = {json.dumps(value)}\n" for name, value in app_options.items())
    return f"""[app]
embedded_model = false
data_dir = "{data_dir.as_posix()}"
{options}
[providers.scripted]
kind = "openai"
base_url = "{base_url}"
models = ["scripted-1"]
"""


@contextmanager
def app_config(base_url: str, **app_options: int | float | bool) -> Iterator[Path]:
    """`config_text` in a file of a temporary folder, which also holds the app's data."""
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        path = Path(folder) / "config.toml"
        path.write_text(config_text(base_url, Path(folder) / "data", **app_options), encoding="utf-8")
        yield path


@contextmanager
def app(config: Path) -> Iterator[str]:
    """The real app (`python -m webui`) in its own process; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "webui", "--config", str(config), "--port", str(port)]
    url = f"http://127.0.0.1:{port}/"
    with process(command, url + "gradio_api/info", cwd=config.parent):
        yield url
