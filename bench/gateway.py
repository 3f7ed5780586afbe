"""Gateway: what the OpenAI-compatible API (`/v1`, `switchboard serve`) adds to a stream, against LiteLLM's proxy.

One scripted upstream (tests/upstream.py) is reached three ways by the official openai SDK, in this one process:

  upstream         straight (the baseline: what the client and the upstream cost by themselves),
  switchboard /v1  through `switchboard serve` with logins and an API key (a shared gateway, as it is deployed),
  LiteLLM proxy    through `litellm --config` (the bench extra) with a master key, the upstream as an
                   openai-compatible model.

Measured, the three taking turns round after round (the order rotating), so drift in a shared machine's speed
touches them alike:

  - a `--chunks` stream from an unpaced upstream read to its end: the time each way, and the time a gateway adds
    (its median minus the upstream's);
  - first token at 1 and 50 streams at once (`--levels`), each a `--tokens` reply at a model's pace (`--rate`
    tokens a second), all of a level's streams sent in the same instant: the gateway's p50 and p95 minus the
    upstream's. A single stream is measured 3 x `--rounds` times, so its p95 is not simply the slowest;
  - each gateway's CPU (its process and any children, user + system) while it streamed, per 1,000 tokens.

Every reply's text is checked against what the upstream sent. Target (issue 31): the time switchboard adds is at
most a quarter of what LiteLLM's proxy adds.

    python -m bench.gateway [--chunks 5000] [--repeat 10] [--levels 1 50] [--rounds 10] [--tokens 50] [--rate 50]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.common import ROOT, Row, child_env, config_text, median, percentile, process, scripted_upstream
from bench.report import command_line
from tests.conftest import free_port
from tests.upstream import numbered_tokens

TARGET = 0.25  # issue 31: switchboard's added time at most a quarter of LiteLLM proxy's
LOGIN = "bench"
SINGLE_STREAM_SAMPLES = 3  # a level of one stream is read this many times per round: a p95 needs samples


@dataclass
class Party:
    """One way to the upstreams: where the SDK sends for each (base URL, model), with which key, and the server
    process whose CPU counts (none when reading the upstreams straight)."""

    name: str
    key: str
    fast: tuple[str, str]  # the unpaced upstream: a long stream as fast as it goes
    paced: tuple[str, str]  # the paced upstream: replies at a model's pace
    server: subprocess.Popen | None = None
    cpu: list[float] = field(default_factory=list)  # CPU seconds per measured read or round

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server process and its children."""
        if self.server is None:
            return 0.0
        root = psutil.Process(self.server.pid)
        return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


@dataclass
class Reading:
    """One reply as the SDK gave it: when it was asked, its first and last text, and all its text."""

    began: float
    first: float
    last: float
    text: str

    @property
    def first_token(self) -> float:
        return self.first - self.began


# ---- the three servers --------------------------------------------------------------------------------------


@contextlib.contextmanager
def switchboard(work: Path, fast_url: str, paced_url: str) -> Iterator[Party]:
    """`switchboard serve` with both upstreams as providers, one login and an API key made for it by the CLI
    (`switchboard passwd`, `switchboard token`); no per-visitor limits (the bench is one visitor)."""
    data = work / "switchboard"
    config = work / "switchboard.toml"
    text = config_text(fast_url, data, max_concurrent_per_visitor=0, max_requests_per_minute=0)
    text += f'\n[providers.paced]\nkind = "openai"\nbase_url = "{paced_url}"\nmodels = ["paced-1"]\n'
    text += f'\n[auth]\nusers_file = "{(work / "users").as_posix()}"\n'
    config.write_text(text, encoding="utf-8")
    cli = [sys.executable, "-m", "webui"]
    password = secrets.token_urlsafe(16)
    line = _run([*cli, "passwd", LOGIN], stdin=password + "\n")
    (work / "users").write_text(line, encoding="utf-8")
    key = _run([*cli, "token", LOGIN, "--config", str(config)]).split()[-1]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [*cli, "serve", "--config", str(config), "--port", str(port)]
    ready = {"authorization": f"Bearer {key}"}
    with process(command, f"{base_url}/models", log=work / "switchboard.log", ready_headers=ready, cwd=work) as server:
        yield Party("switchboard /v1", key, (base_url, "scripted/scripted-1"), (base_url, "paced/paced-1"), server)


@contextlib.contextmanager
def litellm_proxy(work: Path, fast_url: str, paced_url: str) -> Iterator[Party]:
    """LiteLLM's proxy with both upstreams as openai-compatible models and a master key (it refuses to start
    without one). JSON is YAML, so the config is written as JSON."""
    executable = Path(sys.executable).with_name("litellm")
    if not executable.exists():
        raise SystemExit("LiteLLM's proxy is not installed here: pip install -e '.[bench]'")
    key = f"sk-{secrets.token_hex(24)}"
    models = [
        {"model_name": name, "litellm_params": {"model": f"openai/{model}", "api_base": url, "api_key": "unused"}}
        for name, model, url in (("scripted-1", "scripted-1", fast_url), ("paced-1", "paced-1", paced_url))
    ]
    config = work / "litellm.yaml"
    settings = {"model_list": models, "general_settings": {"master_key": key}}
    config.write_text(json.dumps(settings), encoding="utf-8")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [str(executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    env = {**child_env(), "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    ready = f"http://127.0.0.1:{port}/health/liveliness"
    with process(command, ready, log=work / "litellm.log", env=env, cwd=work) as server:
        yield Party("LiteLLM proxy", key, (base_url, "scripted-1"), (base_url, "paced-1"), server)


def _run(command: list[str], stdin: str = "") -> str:
    """A CLI command's output; its error output if it fails."""
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, env=child_env(), cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:4])} failed: {done.stderr.strip()}")
    return done.stdout.strip()


# ---- reading ------------------------------------------------------------------------------------------------


class Clients:
    """One openai SDK client per base URL and key, kept for the run (as an application keeps its client)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], object] = {}

    def to(self, party: Party, route: tuple[str, str]) -> tuple[object, str]:
        """The client for `route` (base URL, model) of `party`, and the model to ask."""
        import openai

        base_url, model = route
        if (base_url, party.key) not in self._clients:
            client = openai.AsyncOpenAI(base_url=base_url, api_key=party.key, max_retries=0, timeout=300)
            self._clients[(base_url, party.key)] = client
        return self._clients[(base_url, party.key)], model

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()


async def read(client_and_model: tuple, message: str) -> Reading:
    """One streamed reply to `message`, read to its end with the SDK."""
    client, model = client_and_model
    began = time.perf_counter()
    first = last = 0.0
    pieces: list[str] = []
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": message}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
            pieces.append(chunk.choices[0].delta.content)
    return Reading(began, first, last, "".join(pieces))


def checked(party: Party, reading: Reading, tokens: int) -> Reading:
    if reading.text != "".join(numbered_tokens(tokens)):
        raise SystemExit(f"{party.name}: a reply was not the upstream's {tokens} tokens: {reading.text[:80]!r}...")
    return reading


def rotated(parties: list[Party], round_number: int) -> list[Party]:
    """The parties in turn, starting with a different one each round."""
    start = round_number % len(parties)
    return parties[start:] + parties[:start]


async def long_streams(parties: list[Party], clients: Clients, chunks: int, repeat: int) -> dict[str, list[float]]:
    """`repeat` rounds (after one to warm up) of one `chunks` stream each way; the read times by party."""
    times: dict[str, list[float]] = {party.name: [] for party in parties}
    for round_number in range(repeat + 1):
        for party in rotated(parties, round_number):
            cpu = party.cpu_seconds()
            reading = checked(party, await read(clients.to(party, party.fast), "go"), chunks)
            if round_number:  # round 0 warms connections, imports and caches up
                times[party.name].append(reading.last - reading.began)
                party.cpu.append(party.cpu_seconds() - cpu)
    return times


async def first_tokens(
    parties: list[Party], clients: Clients, level: int, rounds: int, tokens: int
) -> dict[str, list[float]]:
    """`rounds` rounds of `level` paced streams sent at once each way; every stream's first token by party."""
    firsts: dict[str, list[float]] = {party.name: [] for party in parties}
    for round_number in range(rounds + 1):
        for party in rotated(parties, round_number):
            cpu = party.cpu_seconds()
            route = clients.to(party, party.paced)
            readings = await asyncio.gather(*(read(route, str(tokens)) for _ in range(level)))
            if round_number:
                firsts[party.name] += [checked(party, r, tokens).first_token for r in readings]
                party.cpu.append(party.cpu_seconds() - cpu)
    return firsts


# ---- rows ---------------------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if abs(seconds) < 1 else f"{seconds:.2f} s"


def added_row(section: str, name: str, ours: float, theirs: float) -> Row:
    """Time switchboard adds, against the time LiteLLM's proxy adds (the ratio column)."""
    return Row(
        section,
        name,
        ours,
        baseline=theirs,
        target=f"≤ {TARGET:g}x LiteLLM proxy's",
        ok=ours <= TARGET * theirs,
        note=f"LiteLLM proxy adds {duration(theirs)}",
    )


def cpu_rows(section: str, parties: list[Party], tokens: int) -> list[Row]:
    """Each gateway's CPU per 1,000 tokens streamed, switchboard's against LiteLLM proxy's."""
    per_thousand = {p.name: sum(p.cpu) / (tokens * len(p.cpu)) * 1000 for p in parties if p.server is not None}
    ours, theirs = per_thousand["switchboard /v1"], per_thousand["LiteLLM proxy"]
    return [
        Row(section, "server CPU per 1,000 tokens: LiteLLM proxy", theirs, note="its process, user + system"),
        Row(section, "server CPU per 1,000 tokens: switchboard /v1", ours, baseline=theirs, note="vs LiteLLM proxy"),
    ]


def long_stream_rows(parties: list[Party], times: dict[str, list[float]], chunks: int, repeat: int) -> list[Row]:
    section = f"gateway: a {chunks:,}-chunk stream read with the openai SDK, {repeat} rounds in turn"
    direct, ours, theirs = (median(times[p.name]) for p in parties)
    return [
        Row(section, "straight from the upstream", direct, direct),
        Row(section, "through switchboard /v1", ours, direct),
        Row(section, "through LiteLLM proxy", theirs, direct),
        added_row(section, "time added by switchboard /v1, vs LiteLLM proxy's", ours - direct, theirs - direct),
        *cpu_rows(section, parties, chunks),
    ]


def first_token_rows(
    parties: list[Party], firsts: dict[str, list[float]], level: int, tokens: int, rate: float
) -> list[Row]:
    plural = "s" if level > 1 else ""
    section = f"gateway: first token, {level} stream{plural} sent at once, {tokens} tokens at {rate:g}/s each"
    direct, ours, theirs = (firsts[p.name] for p in parties)
    rows = []
    for label, fraction in (("p50", 0.5), ("p95", 0.95)):
        upstream = percentile(direct, fraction)
        rows.append(Row(section, f"straight from the upstream, {label}", upstream))
        ours_added, theirs_added = (percentile(samples, fraction) - upstream for samples in (ours, theirs))
        rows.append(added_row(section, f"added by switchboard /v1, {label}", ours_added, theirs_added))
    return [*rows, *cpu_rows(section, parties, tokens * level)]


# ---- the run ------------------------------------------------------------------------------------------------


async def measure(
    parties: list[Party], chunks: int, repeat: int, levels: tuple[int, ...], rounds: int, tokens: int, rate: float
) -> list[Row]:
    clients = Clients()
    try:
        times = await long_streams(parties, clients, chunks, repeat)
        rows = long_stream_rows(parties, times, chunks, repeat)
        for level in levels:
            for party in parties:
                party.cpu.clear()
            print(f"   gateway: first tokens, {level} at once", file=sys.stderr, flush=True)
            samples = rounds * SINGLE_STREAM_SAMPLES if level == 1 else rounds
            firsts = await first_tokens(parties, clients, level, samples, tokens)
            rows += first_token_rows(parties, firsts, level, tokens, rate)
        return rows
    finally:
        await clients.aclose()


def run(
    chunks: int = 5000,
    repeat: int = 10,
    levels: tuple[int, ...] = (1, 50),
    rounds: int = 10,
    tokens: int = 50,
    rate: float = 50,
) -> list[Row]:
    with contextlib.ExitStack() as running:
        work = Path(running.enter_context(tempfile.TemporaryDirectory(prefix="switchboard-bench-")))
        fast_url = running.enter_context(scripted_upstream("--tokens", str(chunks)))
        paced_url = running.enter_context(scripted_upstream("--sized", "--rate", str(rate)))
        direct = Party("upstream", "unused", (fast_url, "scripted-1"), (paced_url, "paced-1"))
        ours = running.enter_context(switchboard(work, fast_url, paced_url))
        theirs = running.enter_context(litellm_proxy(work, fast_url, paced_url))
        return asyncio.run(measure([direct, ours, theirs], chunks, repeat, levels, rounds, tokens, rate))


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
