"""Replicas: many chats against one app process, and against two and three behind nginx (deploy/nginx.conf)
sharing a Redis, as they are deployed; on this machine.

Each chat asks for `--tokens` tokens at `--rate` a second (a model's pace) and is read over Gradio's queue
protocol, as a browser tab reads it (bench/load.py: every reply checked token for token); a load's chats are all
sent in the same instant, each as a new visitor. Measured at each load, the replica counts taking turns (all the
sets run from the start, so drift in the machine's speed touches them alike):

  1 replica     the app alone (no nginx, no Redis: what one process serves);
  N replicas    N app processes with one config behind nginx, sharing a Redis. Each chat carries a sticky key
                that nginx places on replica (chat number mod N), found by asking nginx where each key goes: the
                chats split evenly, as many visitors do under its consistent hashing (a few hundred can split
                40/30/30, and the round then waits on the busiest replica).

With `--cpu-quota 0.4` each replica runs in a cgroup of its own held to 0.4 of a core (bench/cpu_quota.py: cgroup
v2 or v1, whichever is writable; one sentence and no quotas where none is); the upstream, nginx, Redis and this
client stay outside. The replicas, not the machine, are then the bottleneck, so what a second and a third replica
buy shows on a 2-core machine (3 x 0.4 = 1.2 cores). Without it every process shares the machine's cores.

Reported: all chats' tokens per second together (N replicas against one: the ratio), the per-chat rate (median and
slowest tenth, from a chat's first text to its last) as a fraction of the upstream's pace, time to first token
p95, and whether every reply was exact; then, for each count, the most chats at once kept at the pace, per core of
quota. A load is kept at the pace when all chats together get 90 % of the tokens a second they ask for (chats x
rate): a replica short of CPU starts new visitors' chats late (Gradio builds each one's session), and each then
streams at its pace, so the per-chat rate alone would hide it. Targets (issues 15 and 31): at a load where one
replica falls below the pace, two give >= 1.6x and three >= 2.2x its tokens a second, or keep the pace themselves
(where the chats ask for less than that, it is all they can give). `--plot PATH` draws tokens a second against
load for each count (a PNG).

    python -m bench.replicas [--loads 25 50 100 150 200 300] [--tokens 2000] [--rate 50] [--counts 1 2 3]
                             [--cpu-quota 0.4] [--plot bench/replicas.png]
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import load
from bench.common import ROOT, Row, child_env, config_text, median, percentile, process
from bench.cpu_quota import CpuQuotas
from bench.report import command_line
from tests.conftest import free_port
from tests.nginx import REPLICA_HEADER, ThrowawayNginx
from tests.redis_server import ThrowawayRedis

PLOT = Path(__file__).resolve().parent / "replicas.png"
FIGURE = f"![Tokens a second against chats at once, for 1, 2 and 3 replicas]({PLOT.name})"  # in RESULTS.md
PACE = 0.9  # replicas keep pace when the chats together get 90 % of the tokens a second they ask for, or more
SCALING_TARGETS = {2: 1.6, 3: 2.2}  # N replicas' tokens a second against one, where one falls below the pace
REDIS_PASSWORD_VARIABLE = "SWITCHBOARD_BENCH_REDIS_PASSWORD"
STICKY_PROBE = "/switchboard-bench-where"  # any path: nginx names the replica on every answer (tests/nginx.py)


# ---- the replicas -------------------------------------------------------------------------------------------


@dataclass
class ReplicaSet:
    """Replicas running with one config: the URL to send to, and the sticky key of each chat (empty for one
    replica, reached directly)."""

    count: int
    url: str
    keys: list[str] = field(default_factory=list)


@contextlib.contextmanager
def replica_set(
    workdir: Path,
    upstream_url: str,
    count: int,
    concurrency: int,
    quotas: CpuQuotas | None = None,
    redis: ThrowawayRedis | None = None,
) -> Iterator[ReplicaSet]:
    """`count` app processes with one config (each under `quotas`, if given), nginx in front of two or more,
    sharing `redis` (database `count`, so sets do not meet)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.toml"
    text = config_text(upstream_url, workdir / "data", concurrency=concurrency, max_sessions=4 * concurrency)
    env = child_env()
    if count > 1 and redis is not None:
        database = f"{redis.url.rsplit('/', 1)[0]}/{count}"
        text += f'\n[redis]\nurl = "{database}"\npassword_env = "{REDIS_PASSWORD_VARIABLE}"\n'
        env[REDIS_PASSWORD_VARIABLE] = redis.password
    config.write_text(text, encoding="utf-8")
    ports = [free_port() for _ in range(count)]
    with contextlib.ExitStack() as running:
        for number, port in enumerate(ports):
            command = [sys.executable, "-m", "webui", "--config", str(config), "--port", str(port)]
            if quotas is not None:
                command = quotas.confined(command, f"{count}-{number}")
            ready = f"http://127.0.0.1:{port}/gradio_api/info"
            log = workdir / f"app{number}.log"
            running.enter_context(process(command, ready, log=log, env=env, cwd=workdir))
        if count == 1:
            yield ReplicaSet(1, f"http://127.0.0.1:{ports[0]}/")
            return
        nginx = ThrowawayNginx(ports).start()
        running.callback(nginx.stop)
        yield ReplicaSet(count, nginx.url, balanced_keys(nginx.url, ports, concurrency))


def balanced_keys(url: str, ports: list[int], chats: int) -> list[str]:
    """Sticky keys for `chats` chats, the i-th placed by nginx on replica i mod len(ports)."""
    per_replica = -(-chats // len(ports))
    found: dict[str, list[str]] = {f"127.0.0.1:{port}": [] for port in ports}
    with httpx.Client(trust_env=False, timeout=30) as client:
        number = 0
        while any(len(keys) < per_replica for keys in found.values()):
            if number > 100 * chats:
                raise RuntimeError(f"nginx placed {number} keys without filling every replica: {found}")
            key = f"visitor{number}"
            number += 1
            answer = client.get(url.rstrip("/") + STICKY_PROBE, headers={"cookie": f"switchboard_replica={key}"})
            replica = found[answer.headers[REPLICA_HEADER]]
            if len(replica) < per_replica:
                replica.append(key)
    lists = list(found.values())
    return [lists[i % len(lists)][i // len(lists)] for i in range(chats)]


# ---- one round ----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One round: its chats, wall time, and the reply each chat asked for."""

    chats: list[load.Chat]
    wall: float
    tokens: int
    rate: float

    def exact(self) -> list[load.Chat]:
        return [chat for chat in self.chats if not load.reply_problems(chat, self.tokens)]

    def throughput(self) -> float:
        return len(self.exact()) * self.tokens / self.wall

    def rates(self) -> list[float]:
        timed = [c for c in self.exact() if c.finished and c.first_text]
        return [self.tokens / (c.finished - c.first_text) for c in timed] or [0.0]

    def pace(self) -> float:
        """The tokens a second all chats got, as a fraction of what they asked for (chats x rate)."""
        return self.throughput() / (len(self.chats) * self.rate)

    def keeps_pace(self) -> bool:
        """All chats together got at least 90 % of the tokens a second they asked for. (Not each chat's own
        rate: a replica short of CPU starts the chats late, one after another, and each then streams at its pace,
        or faster, catching up with what the upstream has sent meanwhile.)"""
        return self.pace() >= PACE

    def first_tokens(self) -> list[float]:
        return [c.first_text - c.submitted for c in self.exact() if c.first_text] or [float("nan")]


def one_round(replicas: ReplicaSet, chats: int, tokens: int, rate: float) -> Outcome:
    """`chats` chats at once, as new visitors, each placed by its sticky key."""
    batch = load.new_chats(f"r{secrets.token_hex(3)}", chats, "fresh")
    for chat, key in zip(batch, replicas.keys, strict=False):
        chat.sticky = key
    began = time.perf_counter()
    done = asyncio.run(load.run_round(replicas.url, batch, timeout=tokens / 5 + 120))
    return Outcome(done, time.perf_counter() - began, tokens, rate)


# ---- the run ------------------------------------------------------------------------------------------------


@dataclass
class Scaling:
    """Every round's outcome by (replicas, chats), and how the replicas were held."""

    loads: tuple[int, ...]
    counts: tuple[int, ...]
    tokens: int
    rate: float
    cpu_quota: float  # cores per replica, as applied; 0 for none
    held: str  # one sentence: the quotas, or why there are none
    outcomes: dict[tuple[int, int], Outcome] = field(default_factory=dict)


def measure(loads: tuple[int, ...], tokens: int, rate: float, counts: tuple[int, ...], cpu_quota: float) -> Scaling:
    with contextlib.ExitStack() as running:
        quotas = running.enter_context(CpuQuotas(cpu_quota)) if cpu_quota else None
        held = quotas.describe() if quotas is not None else "no CPU quotas"
        if quotas is not None and not quotas.available:
            print(f"   replicas: {held}; the replicas share the machine", file=sys.stderr, flush=True)
            quotas = None
        scaling = Scaling(loads, counts, tokens, rate, cpu_quota if quotas is not None else 0.0, held)
        work = Path(running.enter_context(tempfile.TemporaryDirectory(prefix="switchboard-bench-")))
        port = free_port()
        upstream_url = f"http://127.0.0.1:{port}/v1"
        command = [sys.executable, "-m", "tests.upstream", "--tagged", "--port", str(port), "--tokens", str(tokens)]
        command += ["--rate", str(rate)]
        running.enter_context(process(command, f"{upstream_url}/models", log=work / "upstream.log", cwd=ROOT))
        redis = None
        if any(count > 1 for count in counts):
            redis = ThrowawayRedis().start()
            running.callback(redis.stop)
        sets = [
            running.enter_context(replica_set(work / str(n), upstream_url, n, max(loads), quotas, redis))
            for n in counts
        ]
        for replicas in sets:
            one_round(replicas, 5 * replicas.count, tokens, rate)  # warm up every replica
        for number, chats in enumerate(loads):
            for replicas in sets[number % len(sets) :] + sets[: number % len(sets)]:
                print(f"   replicas: {chats} chats against {replicas.count}", file=sys.stderr, flush=True)
                scaling.outcomes[(replicas.count, chats)] = one_round(replicas, chats, tokens, rate)
        return scaling


def run(
    loads: tuple[int, ...] = (25, 50, 100, 150, 200, 300),
    tokens: int = 2000,
    rate: float = 50,
    counts: tuple[int, ...] = (1, 2, 3),
    cpu_quota: float = 0.0,
    plot: str = "",
) -> list[Row]:
    if counts[0] != 1:
        raise SystemExit("--counts starts with 1: the others are measured against one replica")
    scaling = measure(loads, tokens, rate, counts, cpu_quota)
    if plot:
        draw(scaling, Path(plot))
    return rows(scaling)


# ---- results ------------------------------------------------------------------------------------------------


def label(count: int) -> str:
    return "1 replica" if count == 1 else f"{count} replicas behind nginx"


def held_words(scaling: Scaling) -> str:
    return f", each replica held to {scaling.cpu_quota:g} of a core" if scaling.cpu_quota else ""


def rows(scaling: Scaling) -> list[Row]:
    out: list[Row] = []
    for chats in scaling.loads:
        section = f"replicas: {chats} chats at once, {scaling.tokens:,} tokens at {scaling.rate:g}/s each"
        section += held_words(scaling)
        one = scaling.outcomes[(1, chats)]
        for count in scaling.counts:
            out += count_rows(section, count, scaling.outcomes[(count, chats)], one)
    return out + sizing_rows(scaling)


def count_rows(section: str, count: int, outcome: Outcome, one: Outcome) -> list[Row]:
    rates, rate = outcome.rates(), outcome.rate
    exact = len(outcome.exact())
    throughput = Row(
        section,
        f"{label(count)}: tokens a second, all chats",
        outcome.throughput(),
        unit="tokens/s",
        note=f"{outcome.pace():.0%} of the pace",
    )
    wanted = SCALING_TARGETS.get(count)
    if count > 1:
        throughput.baseline = one.throughput()
    if wanted is not None and one.keeps_pace():
        throughput.note += "; 1 replica keeps pace at this load: nothing to gain"
    elif wanted is not None:
        # Where the chats ask for less than the target, keeping their pace is all replicas can give.
        throughput.target = f"≥ {wanted:g}x 1 replica's (below the pace here), or the pace"
        throughput.ok = outcome.throughput() >= wanted * one.throughput() or outcome.keeps_pace()
    return [
        throughput,
        Row(
            section,
            f"{label(count)}: per-chat rate, median / slowest tenth",
            median(rates) / rate,
            unit="%",
            note=f"{median(rates):.1f} / {percentile(rates, 0.1):.1f} of {rate:g} tokens/s",
        ),
        Row(section, f"{label(count)}: time to first token, p95", percentile(outcome.first_tokens(), 0.95)),
        Row(
            section,
            f"{label(count)}: replies complete and exact",
            exact / len(outcome.chats),
            unit="%",
            target="100%",
            ok=exact == len(outcome.chats),
        ),
    ]


def kept_at_pace(scaling: Scaling, count: int) -> int:
    """The most chats at once that `count` replicas streamed at the pace (0 if none of the loads)."""
    return max((chats for chats in scaling.loads if scaling.outcomes[(count, chats)].keeps_pace()), default=0)


def sizing_rows(scaling: Scaling) -> list[Row]:
    section = f"replicas: sizing, {scaling.tokens:,}-token chats at {scaling.rate:g} tokens/s{held_words(scaling)}"
    out = []
    for count in scaling.counts:
        kept = kept_at_pace(scaling, count)
        if kept == max(scaling.loads):
            note = "at every load measured: the limit is higher"
        elif scaling.cpu_quota:
            note = f"{kept / (count * scaling.cpu_quota):,.0f} chats per core of quota"
        else:
            note = ""
        if not scaling.cpu_quota and scaling.held.startswith("no CPU quotas:"):  # asked for, not possible here
            note = f"{scaling.held}; {note}" if note else scaling.held
        name = f"{label(count)}: most chats at once at ≥ {PACE:.0%} of the pace"
        out.append(Row(section, name, kept, unit="chats", note=note))
    return out


def draw(scaling: Scaling, path: Path) -> None:
    """Tokens a second against chats at once, a line per replica count, with the pace every chat asked for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    loads = list(scaling.loads)
    axes.plot(loads, [chats * scaling.rate for chats in loads], "k:", label="every chat at its pace")
    for count in scaling.counts:
        throughput = [scaling.outcomes[(count, chats)].throughput() for chats in loads]
        axes.plot(loads, throughput, marker="o", label=label(count))
    axes.set_xlabel(f"chats at once ({scaling.tokens:,} tokens at {scaling.rate:g}/s each)")
    axes.set_ylabel("tokens a second, all chats")
    held = f"each replica held to {scaling.cpu_quota:g} of a core" if scaling.cpu_quota else "no CPU quotas"
    axes.set_title(f"Switchboard replicas ({held})", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    print(f"   replicas: plot written to {path}", file=sys.stderr, flush=True)


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
