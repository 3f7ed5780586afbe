"""Idle: what the app costs when nobody chats, next to a plain Gradio app in the same run.

  Gradio       a plain `gr.Blocks` chat page (a Chatbot and a Textbox, queue on), Gradio's defaults,
  Switchboard  the real app (`python -m webui`) over the scripted upstream,

each in a process of its own, measured as the CPU its process used over N seconds (in % of one core), first
with no page open, then with one page open in Chromium (its connection and heartbeats). Target (issue 16):
≤ 0.5 % of a core either way.

    python -m bench.idle [--seconds 60]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import ROOT, Row, app_config, process, scripted_upstream
from bench.load import cpu_seconds
from bench.report import command_line
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

PLAIN_GRADIO = """
import sys, gradio as gr
with gr.Blocks() as demo:
    chat = gr.Chatbot()
    box = gr.Textbox()
    box.submit(lambda m, h: (h or []) + [{"role": "user", "content": m}], [box, chat], chat)
demo.queue().launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), prevent_thread_lock=False)
"""


def busy_percent(pid: int, seconds: float) -> float:
    """% of one core the process used over `seconds` (after a short settling)."""
    time.sleep(3)
    before, began = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - began) * 100


@contextmanager
def page_open(url: str) -> Iterator[None]:
    """One Chromium page on `url` for the duration of the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        page.wait_for_timeout(3000)
        yield
        browser.close()


def measure(pid: int, url: str, seconds: float) -> tuple[float, float]:
    alone = busy_percent(pid, seconds)
    with page_open(url):
        with_page = busy_percent(pid, seconds)
    return alone, with_page


@contextmanager
def plain_gradio() -> Iterator[tuple[int, str]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with process([sys.executable, "-c", PLAIN_GRADIO, str(port)], url, cwd=ROOT) as child:
        yield child.pid, url


@contextmanager
def switchboard(config: Path) -> Iterator[tuple[int, str]]:
    """The real app, as bench.common.app starts it, with its process id."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "webui", "--config", str(config), "--port", str(port)]
    with process(command, url + "gradio_api/info", cwd=config.parent) as child:
        yield child.pid, url


def run(seconds: float = 60) -> list[Row]:
    with plain_gradio() as (pid, url):
        print("   idle: plain Gradio", file=sys.stderr, flush=True)
        gradio_alone, gradio_page = measure(pid, url, seconds)
    with scripted_upstream() as base_url, app_config(base_url) as config, switchboard(config) as (pid, url):
        print("   idle: Switchboard", file=sys.stderr, flush=True)
        ours_alone, ours_page = measure(pid, url, seconds)
    section = f"idle: CPU of the server process over {seconds:.0f} s, vs a plain Gradio chat page"
    unit = "% of a core"
    target = "≤ 0.5 % of a core"
    return [
        Row(section, "plain Gradio, no page open", gradio_alone, gradio_alone, unit),
        Row(section, "Switchboard, no page open", ours_alone, gradio_alone, unit, target, ours_alone <= 0.5),
        Row(section, "plain Gradio, one page open (Chromium)", gradio_page, gradio_page, unit),
        Row(section, "Switchboard, one page open (Chromium)", ours_page, gradio_page, unit, target, ours_page <= 0.5),
    ]


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
