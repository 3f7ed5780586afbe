"""Load test: many concurrent chats through the real app, every reply checked token by token, memory watched.

    python bench/load.py [--chats 100] [--tokens 2000] [--rounds 3] [--sessions fresh|reused] [--delay 0]

Three processes, each with its own GIL: a fast scripted upstream (`python -m tests.upstream --tagged`), the real
app (`python -m webui` with a temporary config whose only provider is that upstream), and this script as the
client. The client speaks Gradio's queue protocol directly (POST /gradio_api/queue/join, then the session's SSE
stream from /gradio_api/queue/data) with asyncio + httpx, one session per chat as browser tabs do. It costs about
1.5 s of CPU for 100 x 2000 tokens, against 9 s for gradio_client (a thread per job polling every 50 ms), which
on 2 cores would take CPU from the app it measures; a Client per chat also times out fetching the config
while the app is busy.

Each chat sends a unique message (its nonce); the upstream answers `<nonce>:0 <nonce>:1 ...`, so the text the
client rebuilds from Gradio's streamed diffs, and the final value, must equal exactly that: a lost, repeated,
reordered or foreign (another chat's) token fails the run, as does an update that does not extend the text.

Sessions: `fresh` (default) gives every chat a new session, like a new visitor opening a tab; `reused` gives chat
slot i the same session in every round, like the same open tabs sending again. Gradio keeps per-session state
(StateHolder) until 10,000 sessions, so only `reused` isolates what the app keeps per reply.

Memory: the app's RSS (VmRSS) is read after a warm-up round of the same shape (same chats, tokens and sessions
mode), sampled every 50 ms during the rounds (peak), and read again `--settle` seconds after the last one. The
warm-up has grown the allocator's arenas to one round's peak (CPython and glibc keep freed memory for reuse
rather than return it), so identical rounds should reuse it: memory above the warm-up level is memory the app
kept. PASS when after <= start + max(20 MB, 10% of start). Measured with `reused` sessions, 8 rounds of 100 x 500
tokens left +3.9 MB (0.5 MB a round), so 20 MB is five times the noise of a long run; 10% scales it for larger
processes. It catches state kept per chat from about 70 KB (300 chats), e.g. Gradio's ~150 KB per new session;
smaller per-chat leaks need more rounds: the RSS column shows the trend per round, the last line the average.

Times are reported, never judged: per-chat tokens/s = tokens / (completion - submission), its "p95" is the slow
tail (the rate 95% of chats beat); ttfu is the time to the first update carrying text; "at once" is the most
chats between their process_starts and process_completed messages (use --delay to make replies last, so a cap
on concurrent events shows). Exit status 1 when completeness or memory fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script too: `python bench/load.py`

from bench.common import config_text, percentile, process, tail  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.upstream import tagged_tokens  # noqa: E402

MODEL = "scripted/scripted-1"
MB = 1024 * 1024


# ---- processes --------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """The running upstream and app: where to reach the app, and the processes to measure."""

    url: str
    app: subprocess.Popen
    upstream: subprocess.Popen
    logs: Path
    upstream_url: str = ""


@contextlib.contextmanager
def running_stack(
    workdir: Path,
    tokens: int,
    concurrency: int,
    delay: float = 0.0,
    max_sessions: int = 1000,
    rate: float | None = None,
    sized: bool = False,
) -> Iterator[Stack]:
    """Start the tagged upstream and the real app (`python -m webui`) in `workdir`; stop both on exit. `rate`
    paces each reply (tokens a second); `sized` makes a message's text the length of its reply instead."""
    upstream_port, app_port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
    config = workdir / "config.toml"
    text = config_text(upstream_url, workdir / "data", concurrency=concurrency, max_sessions=max_sessions)
    config.write_text(text, encoding="utf-8")
    upstream = [sys.executable, "-m", "tests.upstream", "--sized" if sized else "--tagged"]
    upstream += ["--port", str(upstream_port), "--tokens", str(tokens), "--delay", str(delay)]
    if rate:
        upstream += ["--rate", str(rate)]
    app = [sys.executable, "-m", "webui", "--config", str(config), "--port", str(app_port)]
    url = f"http://127.0.0.1:{app_port}/"
    with (
        process(upstream, f"{upstream_url}/models", log=workdir / "upstream.log", cwd=ROOT) as upstream_process,
        process(app, f"{url}gradio_api/info", log=workdir / "app.log", cwd=workdir) as app_process,
    ):
        yield Stack(url, app_process, upstream_process, workdir, upstream_url)


def rss_bytes(pid: int) -> int:
    """Resident set size now (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (/proc/<pid>/stat), to show which process was busy."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakRss:
    """Samples a process's RSS every 50 ms in a thread while the block runs; `peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()


# ---- one chat, one round ----------------------------------------------------------------------------------


@dataclass
class Chat:
    """What one chat saw: the text rebuilt from the streamed updates, the final value, timings, and problems."""

    nonce: str
    session: str
    sticky: str = ""  # a load balancer's sticky cookie (deploy/nginx.conf), to place the chat on a replica
    submitted: float = 0.0
    started: float | None = None  # process_starts received
    first_text: float | None = None  # first update carrying text
    finished: float | None = None  # process_completed received
    streamed: str = ""
    final: str | None = None
    updates: int = 0
    problems: list[str] = field(default_factory=list)


def expected_text(nonce: str, tokens: int) -> str:
    return "".join(tagged_tokens(nonce, tokens))


async def chat_fn_index(client: httpx.AsyncClient, url: str) -> int:
    """The queue's id of the app's `chat` API endpoint, from the page config."""
    config = (await client.get(f"{url}config")).raise_for_status().json()
    for dependency in config["dependencies"]:
        if dependency.get("api_name") == "chat":
            return dependency["id"]
    raise RuntimeError("the app has no `chat` API endpoint")


def apply_update(chat: Chat, value) -> None:
    """Apply one streamed output: the first is the whole value, later ones Gradio diffs of it. The endpoint yields
    the text so far, so anything but an append (or no change) is a problem."""
    if isinstance(value, str):
        if not value.startswith(chat.streamed):
            chat.problems.append(f"update {chat.updates} replaced the text instead of extending it")
        chat.streamed = value
        return
    for operation, path, piece in value:
        if operation == "append" and path == []:
            chat.streamed += piece
        elif operation == "replace" and path == []:
            chat.problems.append(f"update {chat.updates} replaced the text instead of extending it")
            chat.streamed = piece
        else:
            chat.problems.append(f"update {chat.updates}: unexpected diff {operation} {path}")


def on_message(chat: Chat, message: dict) -> None:
    """Handle one queue message for this chat's event."""
    kind = message.get("msg")
    output = message.get("output") or {}
    now = time.perf_counter()
    if kind in ("process_generating", "process_completed") and not message.get("success", True):
        chat.problems.append(f"{kind} failed: {output.get('error') or output}")
    elif kind == "process_starts":
        chat.started = now
    elif kind == "process_generating":
        chat.updates += 1
        apply_update(chat, output["data"][0])
        if chat.first_text is None and chat.streamed:
            chat.first_text = now
    elif kind == "process_completed":
        chat.finished = now
        chat.final = output["data"][0]
    elif kind == "unexpected_error":
        chat.problems.append(f"unexpected_error: {message.get('message')}")


async def run_chat(client: httpx.AsyncClient, url: str, fn_index: int, chat: Chat) -> Chat:
    """One chat as a browser tab runs it: join the queue, then read the session's SSE stream until the server
    closes it (after process_completed, when the session has nothing else pending)."""
    chat.submitted = time.perf_counter()
    body = {"data": [chat.nonce, MODEL], "fn_index": fn_index, "session_hash": chat.session, "event_data": None}
    # (An explicit cookie header wins over the client's jar, which holds whatever the last answer set.)
    headers = {"cookie": f"switchboard_replica={chat.sticky}"} if chat.sticky else None
    (await client.post(f"{url}gradio_api/queue/join", json=body, headers=headers)).raise_for_status()
    params = {"session_hash": chat.session}
    async with client.stream("GET", f"{url}gradio_api/queue/data", params=params, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                on_message(chat, json.loads(line[5:]))
    return chat


async def guarded_chat(client: httpx.AsyncClient, url: str, fn_index: int, chat: Chat, timeout: float) -> Chat:
    """`run_chat`, with a failure or a hang recorded as the chat's problem instead of ending the round."""
    try:
        return await asyncio.wait_for(run_chat(client, url, fn_index, chat), timeout)
    except Exception as error:  # the round goes on; the chat counts as incomplete
        chat.problems.append(f"client error: {type(error).__name__}: {error}")
        return chat


async def run_round(url: str, chats: list[Chat], timeout: float) -> list[Chat]:
    """All chats at once, over enough connections for each to hold its stream and post its join."""
    room = 2 * len(chats) + 8
    limits = httpx.Limits(max_connections=room, max_keepalive_connections=room)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30, read=timeout), trust_env=False) as client:
        fn_index = await chat_fn_index(client, url)
        return list(await asyncio.gather(*(guarded_chat(client, url, fn_index, c, timeout) for c in chats)))


# ---- checking and figures ---------------------------------------------------------------------------------


def reply_problems(chat: Chat, tokens: int) -> list[str]:
    """Everything wrong with one chat's reply, with lost / duplicated / foreign tokens counted."""
    problems = list(chat.problems)
    expected = expected_text(chat.nonce, tokens)
    if chat.final is None and not problems:
        problems.append("no completion message")
    for label, text in (("streamed", chat.streamed), ("final", chat.final)):
        if text is not None and text != expected:
            problems.append(f"{label} text differs: {token_diff(chat.nonce, tokens, text)}")
    return problems


def token_diff(nonce: str, tokens: int, text: str) -> str:
    """Lost, duplicated, foreign and out-of-order tokens of `text` against the expected reply."""
    expected = [token.strip() for token in tagged_tokens(nonce, tokens)]
    got = text.split()
    counts = Counter(got)
    wanted = set(expected)
    lost = sum(1 for token in expected if token not in counts)
    duplicated = sum(count - 1 for token, count in counts.items() if token in wanted and count > 1)
    foreign = sum(count for token, count in counts.items() if token not in wanted)
    ordered = [token for token in got if token in wanted] == [token for token in expected if token in counts]
    return f"{lost} lost, {duplicated} duplicated, {foreign} foreign, {'in' if ordered else 'OUT OF'} order"


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals open at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = best = 0
    for _, step in edges:
        open_now += step
        best = max(best, open_now)
    return best


@dataclass
class Round:
    """One round: its chats, wall time, the app's RSS after it, and each process's CPU time during it."""

    chats: list[Chat]
    tokens: int
    wall: float
    rss_after: int
    app_cpu: float
    upstream_cpu: float
    client_cpu: float

    def failures(self) -> dict[str, list[str]]:
        found = {chat.nonce: reply_problems(chat, self.tokens) for chat in self.chats}
        return {nonce: problems for nonce, problems in found.items() if problems}

    def rates(self) -> list[float]:
        return [self.tokens / (c.finished - c.submitted) for c in self.chats if c.finished]

    def first_updates(self) -> list[float]:
        return [c.first_text - c.submitted for c in self.chats if c.first_text]

    def at_once(self) -> int:
        return most_at_once([(c.started, c.finished) for c in self.chats if c.started and c.finished])


@dataclass
class Report:
    chats: int
    tokens: int
    sessions: str
    rounds: list[Round]
    warmup: Round
    rss_start: int
    rss_peak: int
    rss_after: int

    @property
    def memory_bound(self) -> int:
        return max(20 * MB, self.rss_start // 10)

    @property
    def memory_ok(self) -> bool:
        return self.rss_after <= self.rss_start + self.memory_bound

    @property
    def kept_per_chat(self) -> float:
        """Bytes of RSS kept per measured chat (after - start, spread over every chat of the measured rounds)."""
        return (self.rss_after - self.rss_start) / max(1, self.chats * len(self.rounds))

    def failures(self) -> dict[str, list[str]]:
        return {nonce: p for r in [self.warmup, *self.rounds] for nonce, p in r.failures().items()}

    @property
    def complete(self) -> bool:
        return not self.failures()


def new_chats(label: str, count: int, sessions: str) -> list[Chat]:
    """`count` chats with nonces unique to the run; `fresh` sessions are new, `reused` ones the same each round."""
    if sessions not in ("fresh", "reused"):
        raise ValueError(f"sessions must be 'fresh' or 'reused', not {sessions!r}")
    return [
        Chat(f"{label}c{i:03d}", secrets.token_hex(8) if sessions == "fresh" else f"load-slot-{i:04d}")
        for i in range(count)
    ]


def cpu_now(stack: Stack) -> list[float]:
    """CPU seconds used so far by the app, the upstream and this client: which of them was busy."""
    return [cpu_seconds(stack.app.pid), cpu_seconds(stack.upstream.pid), time.process_time()]


def measure_round(stack: Stack, label: str, chats: int, tokens: int, sessions: str, timeout: float) -> Round:
    """Run `chats` concurrent chats once."""
    cpu_before = cpu_now(stack)
    began = time.perf_counter()
    results = asyncio.run(run_round(stack.url, new_chats(label, chats, sessions), timeout))
    wall = time.perf_counter() - began
    cpu = [after - before for after, before in zip(cpu_now(stack), cpu_before, strict=True)]
    return Round(results, tokens, wall, rss_bytes(stack.app.pid), *cpu)


def measure(
    stack: Stack,
    chats: int,
    tokens: int,
    rounds: int,
    *,
    sessions: str = "fresh",
    settle: float = 5.0,
    timeout: float = 300,
) -> Report:
    """Warm up with one round of the same shape, then run `rounds` rounds, then let the app settle. Nonces are
    unique per call, so `measure` can run more than once on one stack."""
    run = secrets.token_hex(2)
    warmup = measure_round(stack, f"{run}w", chats, tokens, sessions, timeout)
    time.sleep(1)
    rss_start = rss_bytes(stack.app.pid)
    with PeakRss(stack.app.pid) as peak:
        measured = [measure_round(stack, f"{run}r{n}", chats, tokens, sessions, timeout) for n in range(rounds)]
        time.sleep(settle)
    return Report(chats, tokens, sessions, measured, warmup, rss_start, peak.peak, rss_bytes(stack.app.pid))


# ---- output -----------------------------------------------------------------------------------------------

HEADER = (
    f"{'round':<7} {'complete':>9} {'at once':>7} {'wall s':>7} {'agg tok/s':>9} {'chat p50':>8} {'p95':>6} "
    f"{'ttfu p50':>8} {'p95':>6} {'RSS MB':>7}  {'CPU s: app':>10} {'upstr':>5} {'client':>6}"
)


def round_line(name: str, r: Round) -> str:
    rates, firsts = r.rates(), r.first_updates()
    complete = f"{len(r.chats) - len(r.failures())}/{len(r.chats)}"
    return (
        f"{name:<7} {complete:>9} {r.at_once():>7} {r.wall:7.2f} {len(r.chats) * r.tokens / r.wall:9,.0f} "
        f"{percentile(rates, 0.5):8,.0f} {percentile(rates, 0.05):6,.0f} "
        f"{percentile(firsts, 0.5):8.2f} {percentile(firsts, 0.95):6.2f} {r.rss_after / MB:7.1f}  "
        f"{r.app_cpu:10.1f} {r.upstream_cpu:5.1f} {r.client_cpu:6.1f}"
    )


def render(report: Report) -> str:
    """The figures as a small table, then the verdicts."""
    lines = [
        f"{report.chats} concurrent chats x {report.tokens} tokens, {len(report.rounds)} rounds, "
        f"{report.sessions} sessions",
        HEADER,
        round_line("warm-up", report.warmup),
        *(round_line(f"{n}", r) for n, r in enumerate(report.rounds, 1)),
        "(chat = per-chat tokens/s, its p95 the slow tail; ttfu = s to the first update with text)",
    ]
    start, peak, after = report.rss_start / MB, report.rss_peak / MB, report.rss_after / MB
    lines.append(f"app RSS: start {start:.1f} MB (after warm-up), peak {peak:.1f} MB, after {after:.1f} MB")
    failures = report.failures()
    lines.append(f"completeness: {'PASS' if not failures else f'FAIL ({len(failures)} chats)'}")
    lines += [f"  {nonce}: {'; '.join(problems)}" for nonce, problems in list(failures.items())[:10]]
    lines.append(
        f"memory: {'PASS' if report.memory_ok else 'FAIL'} (after - start = {after - start:+.1f} MB, "
        f"bound +{report.memory_bound / MB:.0f} MB; {report.kept_per_chat / 1024:.0f} KB kept per chat)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", choices=["fresh", "reused"], default="fresh")
    parser.add_argument("--delay", type=float, default=0.0, help="upstream pause before each token, seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait before the final RSS reading")
    parser.add_argument("--max-sessions", type=int, default=1000, help="app.max_sessions (Gradio's kept sessions)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="switchboard-load-") as tmp:
        with running_stack(Path(tmp), args.tokens, max(args.chats, 16), args.delay, args.max_sessions) as stack:
            report = measure(stack, args.chats, args.tokens, args.rounds, sessions=args.sessions, settle=args.settle)
            print(render(report))
            if not report.complete:
                print(f"app log (last lines):\n{tail(stack.logs / 'app.log')}")
    return 0 if report.complete and report.memory_ok else 1


if __name__ == "__main__":
    sys.exit(main())
