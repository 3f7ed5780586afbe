"""Replicas: many chats against one app process, and against two behind nginx (deploy/nginx.conf), on this machine.

Each chat asks for `--tokens` tokens at `--rate` a second (a model's pace) and is read over Gradio's queue
protocol, as a browser tab reads it (bench/load.py: every reply checked token for token). Measured for each load:

  1 replica    the app alone (what one process serves);
  2 replicas   two app processes with the same config behind nginx, each chat placed by its own sticky cookie
               (about half on each).

Reported: all chats' tokens per second together, the per-chat rate (median and slowest tenth) as a fraction of
the upstream's pace, time to first token p95, and whether every reply was exact. Issue 15's target: at the load
where one replica falls below 90 % of the upstream's rate, two replicas give ≥ 1.6x its throughput. On a 2-core
machine everything shares the two cores: the upstream, nginx and this client as well as the replicas.

    python -m bench.replicas [--loads 100 300] [--tokens 2000] [--rate 50]
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import load
from bench.common import ROOT, Row, config_text, median, percentile, process
from bench.report import command_line
from tests.conftest import free_port
from tests.nginx import ThrowawayNginx


@contextlib.contextmanager
def replicas(workdir: Path, upstream_url: str, count: int, concurrency: int) -> Iterator[str]:
    """`count` app processes with one config; yields the URL to send to (nginx in front of two or more)."""
    config = workdir / "config.toml"
    text = config_text(upstream_url, workdir / "data", concurrency=concurrency, max_sessions=4 * concurrency)
    config.write_text(text, encoding="utf-8")
    ports = [free_port() for _ in range(count)]
    with contextlib.ExitStack() as running:
        for number, port in enumerate(ports):
            command = [sys.executable, "-m", "webui", "--config", str(config), "--port", str(port)]
            ready = f"http://127.0.0.1:{port}/gradio_api/info"
            running.enter_context(process(command, ready, log=workdir / f"app{number}.log", cwd=workdir))
        if count == 1:
            yield f"http://127.0.0.1:{ports[0]}/"
            return
        nginx = ThrowawayNginx(ports).start()
        running.callback(nginx.stop)
        yield nginx.url


def one_round(url: str, chats: int, tokens: int) -> tuple[list[load.Chat], float]:
    """`chats` chats at once, each on its own sticky key; the chats and the round's wall time."""
    label = f"r{secrets.token_hex(3)}"
    batch = load.new_chats(label, chats, "fresh")
    for number, chat in enumerate(batch):
        chat.sticky = f"visitor{number}"
    began = time.perf_counter()
    done = asyncio.run(load.run_round(url, batch, timeout=tokens / 5 + 120))
    return done, time.perf_counter() - began


def rows_for(section: str, label: str, done: list[load.Chat], wall: float, tokens: int, rate: float) -> list[Row]:
    exact = [chat for chat in done if not load.reply_problems(chat, tokens)]
    rates = [tokens / (c.finished - c.first_text) for c in exact if c.finished and c.first_text] or [0.0]
    first = [c.first_text - c.submitted for c in exact if c.first_text] or [float("nan")]
    return [
        Row(section, f"{label}: tokens a second, all chats", len(exact) * tokens / wall, unit="tokens/s"),
        Row(
            section,
            f"{label}: per-chat rate, median / slowest tenth",
            median(rates) / rate,
            unit="%",
            note=f"{median(rates):.1f} / {percentile(rates, 0.1):.1f} of {rate:g} tokens/s",
        ),
        Row(section, f"{label}: time to first token, p95", percentile(first, 0.95)),
        Row(
            section,
            f"{label}: replies complete and exact",
            len(exact) / len(done),
            unit="%",
            target="100%",
            ok=len(exact) == len(done),
        ),
    ]


def run(loads: tuple[int, ...] = (100, 300), tokens: int = 2000, rate: float = 50) -> list[Row]:
    rows: list[Row] = []
    most = max(loads)
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        work = Path(folder)
        port = free_port()
        upstream_url = f"http://127.0.0.1:{port}/v1"
        command = [sys.executable, "-m", "tests.upstream", "--tagged", "--port", str(port), "--tokens", str(tokens)]
        command += ["--rate", str(rate)]
        with process(command, f"{upstream_url}/models", log=work / "upstream.log", cwd=ROOT):
            throughput: dict[tuple[int, int], float] = {}
            below: dict[int, bool] = {}
            for count in (1, 2):
                (work / str(count)).mkdir()
                with replicas(work / str(count), upstream_url, count, concurrency=most) as url:
                    one_round(url, 10, tokens)  # warm up
                    for chats in loads:
                        print(f"   replicas: {chats} chats against {count}", file=sys.stderr, flush=True)
                        done, wall = one_round(url, chats, tokens)
                        section = f"replicas: {chats} chats at once, {tokens:,} tokens at {rate:g}/s each"
                        label = "1 replica" if count == 1 else f"{count} replicas behind nginx"
                        rows += rows_for(section, label, done, wall, tokens, rate)
                        throughput[(count, chats)] = rows[-4].value
                        if count == 1:
                            below[chats] = rows[-3].value < 0.9
    for chats in loads:
        one, two = throughput[(1, chats)], throughput[(2, chats)]
        section = f"replicas: {chats} chats at once, {tokens:,} tokens at {rate:g}/s each"
        saturated = below[chats]
        rows.append(
            Row(
                section,
                "2 replicas' throughput vs 1",
                two,
                baseline=one,
                unit="tokens/s",
                target="≥ 1.6x where 1 replica is below 90% of the rate" if saturated else "",
                ok=(two >= 1.6 * one) if saturated else None,
                note="" if saturated else "1 replica keeps up at this load: nothing to gain",
            )
        )
    return rows


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
