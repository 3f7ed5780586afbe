"""The conversation store: what the UI waits on, in SQLite and PostgreSQL against the JSON files used before.

Each store gets the same data, N conversations of 20 messages (each about 300 characters of varied words) for one
owner, written through its own `save`, and then times

  send        what the UI saves when someone sends a message in a 20-message chat: the question and the reply's
              empty message added (the JSON store rewrote the whole conversation),
  save        a new 20-message conversation (what an import writes for each),
  checkpoint  a streamed reply written every second: a 20-message conversation is read once, then one assistant
              message is added; the SQL stores append each second's text to it (`checkpoint`, as the server's reply
              tasks do) about 200 characters at a time; the JSON store saved the whole conversation with the
              message grown by as much,
  list        the 50 newest (`list(owner, limit=50)`; the JSON store has no limit: it lists all, we take 50),
  search      a word that occurs in 5 of the conversations,
  first list  once, from a new store object on the same data (a restart): the JSON store reads every file then,

as p50 and p95 of several repetitions, each SQL store's ratio to the JSON store. The stores:

  JSON files  bench/json_store.py, the store Switchboard used before (one file per conversation, fsynced, an
              in-memory index of every conversation's text for list and search),
  SQLite      `SQLStore.for_settings(folder)` (WAL, synchronous=NORMAL),
  PostgreSQL  a throwaway local cluster (tests/postgres.py; fsync off), ANALYZEd after the load as autovacuum
              soon would be (search is also timed before); skipped, with the reason, without its binaries.

Target (issue 11): nothing the UI waits on slower than 1.5x the JSON store; search faster, p95 ≤ 50 ms at 10,000.

    python -m bench.store [--conversations 10000] [--repeat 100] [--stores json sqlite postgresql]
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from backend.conversations import Conversation, ReplyPart, StoredMessage
from bench.common import Row, percentile
from bench.report import command_line

OWNER = "bench@example.com"
MESSAGES = 20
MESSAGE_CHARS = 300
SEARCHED = "xylophonist"  # letters x and y never occur in the generated words, so no other word contains it
SEARCH_HITS = 5
CHECKPOINT_CHARS = 200  # about a second of a streamed reply
LOAD_BATCH = 25
NAMES = {"json": "JSON files (before)", "sqlite": "SQLite", "postgresql": "PostgreSQL"}

_SYLLABLES = [c + v for c in "bcdfghklmnprstvw" for v in "aeiou"] + ["an", "er", "in", "on", "st", "th", "qu"]


def vocabulary(size: int = 4000, seed: int = 11) -> list[str]:
    """Pseudo-words of 1 to 4 syllables: varied text, as a full-text index sees it, the same on every run."""
    rng = random.Random(seed)
    words = {"".join(rng.choices(_SYLLABLES, k=rng.choice((1, 2, 2, 3, 3, 4)))) for _ in range(size * 2)}
    return sorted(words)[:size]


WORDS = vocabulary()


def text(rng: random.Random, chars: int = MESSAGE_CHARS) -> str:
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words).capitalize() + "."


def conversation(number: int, total: int) -> Conversation:
    """Conversation `number` of `total`: the same on every call; 5 of them hold the searched word."""
    rng = random.Random(number)
    messages = [
        StoredMessage(
            role="user" if position % 2 == 0 else "assistant",
            text=text(rng),
            created=1_700_000_000 + number * 60 + position,
            **({} if position % 2 == 0 else {"provider": "scripted", "model": "scripted-1", "seconds": 1.5}),
        )
        for position in range(MESSAGES)
    ]
    every = max(1, total // SEARCH_HITS)
    if number < total and number % every == 7 % every:
        words = messages[9].text.split()
        words.insert(len(words) // 2, SEARCHED)
        messages[9].text = " ".join(words)
    return Conversation(
        id=f"{number:016x}",
        created=1_700_000_000 + number * 60,
        updated=1_700_000_000 + number * 60,
        model="scripted/scripted-1",
        messages=messages,
    )


# ---- the stores -----------------------------------------------------------------------------------------------


class Engine:
    """How to open one kind of store on a folder (a new object on the same data each time)."""

    def __init__(
        self,
        key: str,
        opener: Callable[[], Any],
        note: str = "",
        settle: Callable[[], Awaitable[None]] | None = None,
        indexed: Callable[[], Awaitable[float]] | None = None,
    ) -> None:
        self.key = key
        self.name = NAMES[key]
        self.open = opener
        self.note = note
        self.settle = settle  # what the server does on its own soon after a bulk write (PostgreSQL: ANALYZE)
        self.indexed = indexed  # the seconds until the search index has what the store indexes after a write


async def close(store: Any) -> None:
    """Close a store's connections: the JSON store's own, or the SQL conversations' database's."""
    aclose = getattr(store, "aclose", None) or getattr(getattr(store, "database", None), "aclose", None)
    if aclose is not None:
        await aclose()


async def newest(store: Any, key: str) -> list:
    """The 50 newest conversations, as the sidebar shows them."""
    if key == "json":  # no limit: it sorts all of them
        return (await store.list(OWNER))[:50]
    return await store.list(OWNER, limit=50)


async def timings(operation: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await operation()
        samples.append(time.perf_counter() - began)
    return samples


async def load(store: Any, name: str, conversations: int) -> float:
    """Write the N conversations through the store's own `save`, a batch at a time; the seconds it took."""
    began = time.perf_counter()
    step = max(LOAD_BATCH, conversations // 10 // LOAD_BATCH * LOAD_BATCH)
    for start in range(0, conversations, LOAD_BATCH):
        batch = [conversation(number, conversations) for number in range(start, min(start + LOAD_BATCH, conversations))]
        await asyncio.gather(*(store.save(OWNER, c) for c in batch))
        done = start + len(batch)
        if done % step == 0 or done == conversations:
            print(
                f"   {name}: {done:,}/{conversations:,} conversations written ({time.perf_counter() - began:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return time.perf_counter() - began


async def measure(engine: Engine, conversations: int, repeat: int) -> dict[str, list[float]]:
    """Every operation's samples (seconds) on one kind of store, loaded with the N conversations first."""
    store = engine.open()
    results: dict[str, list[float]] = {}
    try:
        # One call before the concurrent saves of the load, as the owner's first page load would be: with several
        # first calls at once, the SQL store can hand out its engine before its migration has run (SQLite:
        # "no such table") and run its per-owner import of JSON files twice (PostgreSQL: a duplicate key).
        await newest(store, engine.key)
        results["load"] = [await load(store, engine.name, conversations)]
        if engine.indexed is not None:  # the load's last conversations: work the store does once writes pause
            results["indexed after load"] = [await engine.indexed()]
        await newest(
            store, engine.key
        )  # warm: the engine's connection pool, the JSON index (both already used by the load)

        results["list"] = await timings(lambda: newest(store, engine.key), repeat)
        found = await store.list(OWNER, SEARCHED)
        if len(found) != SEARCH_HITS:
            raise RuntimeError(f"{engine.name}: search found {len(found)} conversations, not {SEARCH_HITS}")
        if engine.settle is not None:
            results["search unsettled"] = await timings(lambda: store.list(OWNER, SEARCHED), 5)
            await engine.settle()
        results["search"] = await timings(lambda: store.list(OWNER, SEARCHED), repeat)

        streaming = engine.key != "json"  # the JSON store had no replies of their own: it saved the whole chat
        chats = iter([await store.get(OWNER, conversation(n, conversations).id) for n in range(repeat)])

        async def send() -> None:
            chat = next(chats)
            chat.add(StoredMessage(role="user", text=text(rng, MESSAGE_CHARS)))
            chat.add(StoredMessage(role="assistant", status="streaming" if streaming else "complete"))
            await store.save(OWNER, chat)

        rng = random.Random(1)
        results["send"] = await timings(send, repeat)

        fresh = [conversation(conversations + number, conversations) for number in range(repeat)]
        fresh_iter = iter(fresh)
        results["save"] = await timings(lambda: store.save(OWNER, next(fresh_iter)), repeat)
        if engine.indexed is not None:
            results["indexed after"] = [await engine.indexed()]
        for saved in fresh:
            await store.delete(OWNER, saved.id)

        reply = await Streamed.begin(store, streaming, conversation(conversations // 2, conversations).id)
        rng = random.Random(0)

        async def checkpoint() -> None:
            await reply.append(" " + text(rng, CHECKPOINT_CHARS))

        results["checkpoint"] = await timings(checkpoint, repeat)
        results.update(await long_reply(store, streaming, conversations))
    finally:
        await close(store)

    restarted = engine.open()
    try:
        began = time.perf_counter()
        await newest(restarted, engine.key)
        results["first list"] = [time.perf_counter() - began]
    finally:
        await close(restarted)
    return results


class Streamed:
    """A reply growing in a store as each kind of store took it: the SQL stores append each second's text to it
    (`checkpoint`, as the server's reply tasks do) and write it whole at its end; the JSON store saved the whole
    conversation, the reply so far included, every time."""

    def __init__(self, store: Any, streaming: bool, reply: Conversation, position: int) -> None:
        self.store, self.streaming, self.reply, self.position = store, streaming, reply, position
        self.seq = 0

    @classmethod
    async def begin(cls, store: Any, streaming: bool, conversation_id: str) -> Streamed:
        """An assistant message added to the stored conversation, saved empty."""
        reply = await store.get(OWNER, conversation_id)
        status = "streaming" if streaming else "complete"
        position = reply.add(StoredMessage(role="assistant", provider="scripted", model="scripted-1", status=status))
        await store.save(OWNER, reply)
        return cls(store, streaming, reply, position)

    async def append(self, added: str) -> None:
        if self.streaming:
            await self.store.checkpoint(OWNER, self.reply.id, self.position, self.seq, ReplyPart(text=added))
            self.seq += 1
        else:
            self.reply.nodes[self.position].text += added
            await self.store.save(OWNER, self.reply)

    async def end(self, whole: str) -> None:
        final = self.reply.nodes[self.position].model_copy(update={"text": whole, "status": "complete"})
        if self.streaming:
            await self.store.finish_reply(OWNER, self.reply.id, self.position, final)
        else:
            self.reply.nodes[self.position] = final
            await self.store.save(OWNER, self.reply)


LONG_REPLY_TOKENS = 20_000
TOKENS_PER_CHECKPOINT = 50  # a second of a model streaming 50 tokens a second
CHARS_PER_TOKEN = 4


async def long_reply(store: Any, streaming: bool, conversations: int) -> dict[str, list[float]]:
    """Every checkpoint of a 20,000-token reply (one per 50 tokens: 400, about 80,000 characters in all), then
    its end: the SQL stores append each second's text; the JSON store rewrote the whole conversation, the reply so
    far included, every time."""
    reply = await Streamed.begin(store, streaming, conversation(conversations // 3, conversations).id)
    piece = "word " * (TOKENS_PER_CHECKPOINT * CHARS_PER_TOKEN // 5)
    samples = []
    for _ in range(LONG_REPLY_TOKENS // TOKENS_PER_CHECKPOINT):
        began = time.perf_counter()
        await reply.append(piece)
        samples.append(time.perf_counter() - began)
    began = time.perf_counter()
    await reply.end(piece * len(samples))
    ended = time.perf_counter() - began
    tenth = len(samples) // 10
    return {"long first": samples[:tenth], "long last": samples[-tenth:], "long all": samples, "long end": [ended]}


def engines(folder: Path, wanted: tuple[str, ...], stack: list[Callable[[], None]]) -> list[Engine]:
    """The stores to measure, each in a folder of its own (a SQL store imports JSON files it finds in its folder)."""
    from backend.store import SQLStore
    from bench.json_store import FileConversationStore

    found = []
    if "json" in wanted:
        root = folder / "json" / "conversations"
        found.append(Engine("json", lambda: FileConversationStore(root)))
    if "sqlite" in wanted:
        found.append(Engine("sqlite", lambda: SQLStore.for_settings(folder / "sqlite").conversations))
    if "postgresql" in wanted:
        from sqlalchemy import text as sql

        from tests.postgres import ThrowawayPostgres, unavailable

        reason = unavailable()
        if reason:
            print(f"   PostgreSQL skipped: {reason}", file=sys.stderr, flush=True)
        else:
            try:
                server = ThrowawayPostgres().start()
            except RuntimeError as error:
                print(f"   PostgreSQL skipped: {str(error).splitlines()[0]}", file=sys.stderr, flush=True)
                return found
            stack.append(server.stop)
            url = server.new_database("bench_store")

            def connect() -> Any:
                from sqlalchemy.ext.asyncio import create_async_engine

                return create_async_engine(url, connect_args={"password": server.password})

            async def analyze() -> None:
                """What autovacuum does within a minute or so of a bulk write: statistics for the planner. Without
                them it expects few rows per owner and filters every one of the owner's rows by the search."""
                database = connect()
                async with database.begin() as connection:
                    await connection.execute(sql("ANALYZE"))
                await database.dispose()

            async def indexed() -> float:
                """Seconds until no conversation waits for its search vector (made once writes pause)."""
                database = connect()
                waiting = sql("SELECT count(*) FROM conversations WHERE search_vector IS NULL")
                async with database.connect() as connection:
                    began = time.perf_counter()
                    while await connection.scalar(waiting):
                        await connection.commit()  # the next count in a new snapshot
                        await asyncio.sleep(0.005)
                    took = time.perf_counter() - began
                await database.dispose()
                return took

            found.append(
                Engine(
                    "postgresql",
                    lambda: SQLStore(url, folder / "postgresql", password=server.password).conversations,
                    note="local throwaway cluster, fsync off; ANALYZE after the load",
                    settle=analyze,
                    indexed=indexed,
                )
            )
    return found


# ---- rows -----------------------------------------------------------------------------------------------------

OPERATIONS = {
    "send": ("send a message in a 20-message chat (question and empty reply added, save)", "≤ 1.5x JSON"),
    "save": ("save a new 20-message conversation", "≤ 1.5x JSON"),
    "checkpoint": (f"checkpoint a streamed reply (+{CHECKPOINT_CHARS} characters, save)", "≤ 1.5x JSON"),
    "list": ("list the 50 newest", "≤ 1.5x JSON"),
    "search": (f"search a word in {SEARCH_HITS} conversations", "faster than JSON"),
}


def rows_for(
    results: dict[str, dict[str, list[float]]], conversations: int, notes: dict[str, str], repeat: int
) -> list[Row]:
    rows: list[Row] = []
    baseline = results.get("json")
    for operation, (title, target) in OPERATIONS.items():
        section = f"store: {title}, among {conversations:,} conversations of {MESSAGES} messages"
        for key, samples in results.items():
            for label, fraction in (("p50", 0.5), ("p95", 0.95)):
                value = percentile(samples[operation], fraction)
                base = percentile(baseline[operation], fraction) if baseline and key != "json" else None
                row_target, ok = "", None
                if base is not None:
                    ok = value < base if operation == "search" else value <= 1.5 * base
                    row_target = target
                    if operation == "search" and label == "p95":
                        row_target += ", ≤ 50 ms"
                        ok = ok and value <= 0.05
                elif key == "json" and baseline:
                    base = value
                rows.append(
                    Row(
                        section,
                        f"{NAMES[key]}, {label}",
                        value,
                        baseline=base,
                        target=row_target,
                        ok=ok,
                        note=notes[key],
                    )
                )
    section = (
        f"store: a {LONG_REPLY_TOKENS:,}-token reply written as it streams "
        f"({LONG_REPLY_TOKENS // TOKENS_PER_CHECKPOINT} checkpoints, one a second)"
    )
    for key, samples in results.items():
        first, last = percentile(samples["long first"], 0.5), percentile(samples["long last"], 0.5)
        flat = {"target": "≤ 1.5x (no growth)", "ok": last <= 1.5 * first} if key != "json" else {}
        rows += [
            Row(section, f"{NAMES[key]}: last tenth's checkpoints vs first tenth's, p50", last, first, **flat),
            Row(section, f"{NAMES[key]}: all the checkpoints together", sum(samples["long all"])),
            Row(section, f"{NAMES[key]}: the reply's end", samples["long end"][0]),
        ]
    section = f"store: one-off costs, {conversations:,} conversations"
    for key, samples in results.items():
        rows.append(
            Row(
                section,
                f"{NAMES[key]}: first list after a restart",
                samples["first list"][0],
                note="reads every file into its index" if key == "json" else "connects, checks the schema",
            )
        )
    for key, samples in results.items():
        if "search unsettled" in samples:
            rows.append(
                Row(
                    section,
                    f"{NAMES[key]}: search right after the load, before ANALYZE",
                    percentile(samples["search unsettled"], 0.5),
                    note="median of 5; the planner has no statistics yet and scans all the owner's rows",
                )
            )
    for key, samples in results.items():
        for sample, what in (("indexed after", f"the {repeat} new conversations"), ("indexed after load", "the load")):
            if sample in samples:
                rows.append(
                    Row(
                        section,
                        f"{NAMES[key]}: search vectors of {what} all made, after the last write",
                        samples[sample][0],
                        note="the store makes them once writes pause; search finds a chat without one meanwhile",
                    )
                )
    for key, samples in results.items():
        rows.append(
            Row(
                section,
                f"{NAMES[key]}: writing the {conversations:,} conversations",
                samples["load"][0],
                note=f"{LOAD_BATCH} saves at a time",
            )
        )
    return rows


def run(conversations: int = 10_000, repeat: int = 100, stores: tuple = ("json", "sqlite", "postgresql")) -> list[Row]:
    results: dict[str, dict[str, list[float]]] = {}
    notes: dict[str, str] = {}
    cleanup: list[Callable[[], None]] = []
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-store-") as folder:
        try:
            for engine in engines(Path(folder), tuple(stores), cleanup):
                began = time.perf_counter()
                results[engine.key] = asyncio.run(measure(engine, conversations, repeat))
                notes[engine.key] = engine.note
                print(f"   {engine.name}: {time.perf_counter() - began:.0f} s in all", file=sys.stderr, flush=True)
        finally:
            for stop in reversed(cleanup):
                stop()
    return rows_for(results, conversations, notes, repeat)


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
