"""Start-up: how long until a newcomer's command serves the page, next to importing gradio alone.

  import gradio    `python -c "import gradio"` (the floor: any Gradio app pays it),
  switchboard      `python -m webui` with no config file (the embedded model, loaded in the background) from the
                   command to the first HTTP 200 of the page,
  import backend   `python -c "import backend"`, and the first use `from backend import AsyncClient, Client`.

Each is a fresh process, the median of several; the interpreter's own start is included in all of them alike.

    python -m bench.startup [--repeat 5]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, Row, median, process, wait_for_http
from bench.report import command_line
from tests.conftest import free_port


def python_seconds(code: str, repeat: int) -> float:
    """Median wall time of `python -c code` in a fresh process."""
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
        samples.append(time.perf_counter() - began)
    return median(samples)


def app_start_seconds(repeat: int) -> float:
    """Median time from `python -m webui` to the first 200 of its page, with no config (the embedded model)."""
    samples = []
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        # No config file anywhere (a newcomer's first run); the user's caches (the assembled GGUF) stay as they are.
        environment = {**os.environ, "XDG_CONFIG_HOME": str(Path(folder) / "config")}
        environment = {k: v for k, v in environment.items() if not k.startswith("SWITCHBOARD_")}
        environment["SWITCHBOARD_APP__DATA_DIR"] = str(Path(folder) / "data")
        for _ in range(repeat):
            port = free_port()
            command = [sys.executable, "-m", "webui", "--port", str(port)]
            began = time.perf_counter()
            with process(command, cwd=folder, env=environment) as child:
                wait_for_http(f"http://127.0.0.1:{port}/", child)
                samples.append(time.perf_counter() - began)
    return median(samples)


def run(repeat: int = 5) -> list[Row]:
    section = "start-up"
    gradio = python_seconds("import gradio", repeat)
    started = app_start_seconds(repeat)
    backend = python_seconds("import backend", repeat)
    first_use = python_seconds("from backend import AsyncClient, Client", repeat)
    bare = python_seconds("pass", repeat)
    return [
        Row(section, "python -c 'import gradio'", gradio, gradio),
        Row(
            section,
            "switchboard: command to first HTTP 200",
            started,
            gradio,
            target="≤ import gradio + 2 s",
            ok=started <= gradio + 2,
            note=f"+{started - gradio:.2f} s; the model loads in the background",
        ),
        Row(
            section,
            "import backend",
            backend - bare,
            target="≤ 0.3 s",
            ok=backend - bare <= 0.3,
            note=f"beyond the interpreter's own start ({bare * 1000:.0f} ms)",
        ),
        Row(section, "from backend import AsyncClient, Client", first_use - bare, note="loads config and services"),
    ]


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
