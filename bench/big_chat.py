"""A big conversation: what it costs everyone else, and what it costs a session.

    python -m bench.big_chat [--sessions 1000] [--messages 1998] [--megabytes 4.9]

Three processes: the scripted upstream, the real app (`python -m webui`, with two logins) and this client.

  latency   Visitor B (bob) asks for their chat list (the search box's event: one event through Gradio's queue,
            start to result) every 20 ms, first with the app at rest, then while visitor A (alice) imports 12,000
            empty messages (426 KB: the attack of issue 24, which froze the server for 21 s), imports a chat of
            --messages messages and --megabytes (just under the 5 MB import limit), opens it, opens it again by its
            address (a reload), sends a message into it (a 500-token reply, streamed at 100 tokens a second) and
            exports it. B's median and slowest answers under the attack, against at rest.
  memory    The app's resident memory (VmRSS) after the chat was opened in WARM_UP sessions, then after it was
            opened in --sessions more, each a new Gradio session (a browser tab): the growth per session.

`python -m bench --only bigchat` runs it as a section of the suite; tests/test_big_chat.py asserts generous bounds
on smaller runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Row, child_env, config_text, percentile, process, scripted_upstream  # noqa: E402
from bench.load import rss_bytes  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.gradio_http import GradioSession  # noqa: E402

FILE_META = {"_type": "gradio.FileData"}
EMPTY_MESSAGES = 12_000  # the attack: 426 KB of empty messages
BIG_MESSAGES = 1998  # the most a chat holds (backend.MAX_MESSAGES), less one exchange to send
WARM_UP = 20  # sessions that open the chat before memory is measured
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
A, B = ("alice", USERS["alice"]), ("bob", USERS["bob"])
REPLY = ("--tokens", "500", "--rate", "100")  # the scripted upstream's reply


def chat_export(messages: int, size: int) -> bytes:
    """An OpenAI-style export of `messages` alternating user and assistant messages (lines of words), about
    `size` bytes in all."""
    line = "lorem ipsum dolor sit amet consectetur\n"
    overhead = len(json.dumps({"role": "assistant", "content": ""})) + 2
    each = max(0, size // max(messages, 1) - overhead) * len(line) // (len(json.dumps(line)) - 2)
    words = (line * (each // len(line) + 1))[:each]
    turns = [{"role": ("user", "assistant")[n % 2], "content": words} for n in range(messages)]
    return json.dumps({"title": "A big chat", "messages": turns}).encode()


@contextmanager
def running_app(workdir: Path, *, max_sessions: int = 1000, logins: bool = False) -> Iterator[tuple[str, int]]:
    """The scripted upstream (a 500-token reply, 100 tokens a second) and the real app in processes of their own,
    with the logins USERS if `logins`; yields the app's URL and process id."""
    with scripted_upstream(*REPLY) as upstream_url:
        config = workdir / "config.toml"
        text = config_text(upstream_url, workdir / "data", max_sessions=max_sessions)
        env = child_env()
        if logins:
            text += '\n[auth]\nusers_env = "BIG_CHAT_USERS"\n'
            env["BIG_CHAT_USERS"] = ",".join(f"{name}:{password}" for name, password in USERS.items())
        config.write_text(text, encoding="utf-8")
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        command = [sys.executable, "-m", "webui", "--config", str(config), "--port", str(port)]
        with process(command, f"{url}gradio_api/app_id", log=workdir / "app.log", cwd=workdir, env=env) as app:
            yield url, app.pid


class Visitor(GradioSession):
    """A browser tab driving the Chat tab's sidebar and message box through Gradio's queue, as its page does;
    `said` collects what the app said in toasts (warnings, notes) to this tab."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None) -> None:
        super().__init__(url, username, password)
        self.said: list[str] = []

    def result(self, event_id: str) -> dict[str, Any]:
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": self.session_hash}) as stream:
            stream.raise_for_status()
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") != event_id:
                    continue
                if message.get("msg") == "log":
                    self.said.append(str(message.get("log")))
                if message.get("msg") == "process_completed":
                    return dict(message)
        raise RuntimeError(f"event {event_id} never completed")

    def import_chat(self, data: bytes) -> dict[str, Any]:
        """Upload `data` and import it, as the sidebar's Import does; the event's `process_completed` message."""
        uploaded = self.http.post("gradio_api/upload", files={"files": ("chat.json", data, "application/json")})
        uploaded.raise_for_status()
        file = {"path": uploaded.json()[0], "orig_name": "chat.json", "meta": FILE_META}
        return self.call(self.fn_index("import", "upload"), [file, ""])

    def imported_id(self, data: bytes) -> str:
        done = self.import_chat(data)
        conversation_id = done["output"]["data"][-1] if done["success"] else None
        if not isinstance(conversation_id, str) or not conversation_id:
            raise RuntimeError(f"the import failed: {self.said[-1:]} {done['output']}")
        return conversation_id

    def open_chat(self, conversation_id: str) -> dict[str, Any]:
        """Pick the chat in the sidebar; the event's `process_completed` message."""
        picked = {"groups": [], "empty": "", "action": {"kind": "open", "id": conversation_id}}
        return self.call(self.fn_index("chat-list", "select"), [picked])

    def export_chat(self, conversation_id: str, kind: str = "json") -> dict[str, Any]:
        picked = {"groups": [], "empty": "", "action": {"kind": "export", "id": conversation_id, "format": kind}}
        return self.call(self.fn_index("chat-list", "download"), [picked])

    def send_into(self, conversation_id: str, text: str) -> dict[str, Any]:
        """Send `text` into the open chat (its id as the page holds it) and follow the reply to its end, as the
        page does (which sends the chat as it shows it along); the message's `process_completed` message."""
        submit = self.fn_index("message", "submit")
        picker = next(c for c in self.config["components"] if c["props"].get("elem_id") == "model-picker")
        model = picker["props"]["value"]
        box = {"text": text, "files": []}
        sent = self.call(submit, [box, [], None, model, "", 0.7, 1, 0, -1, "", conversation_id])
        if sent["success"]:
            self.call(self.then_of(submit), [sent["output"]["data"][0], None, ""])
        return sent

    def search(self, query: str = "") -> float:
        """The chat list for `query` (the search box's event); the seconds it took, start to result."""
        began = time.perf_counter()
        done = self.call(self.fn_index("chat-search", "change"), [query, ""])
        if not done["success"]:
            raise RuntimeError(f"the chat list failed: {done['output']}")
        return time.perf_counter() - began


@dataclass
class Waits:
    """Visitor B's waits (seconds) for their chat list."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def worst(self) -> float:
        return max(self.samples, default=float("nan"))

    def __str__(self) -> str:
        p95 = percentile(self.samples, 0.95) * 1000
        return f"median {self.median * 1000:.1f} ms, p95 {p95:.1f} ms, slowest {self.worst * 1000:.1f} ms"


def waits_while(url: str, action: Callable[[], object], *, every: float = 0.02, logins: bool = False) -> Waits:
    """Visitor B's waits for their chat list while `action` runs (in this thread): B asks from a thread of its
    own, one request at a time, `every` seconds apart, from before the action starts until it has ended."""
    bob = Visitor(url, *B) if logins else Visitor(url)
    bob.search()  # B's session exists before the measurement
    waits, done = Waits(), threading.Event()

    def ask() -> None:
        while not done.is_set():
            waits.samples.append(bob.search())
            done.wait(every)

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    try:
        time.sleep(4 * every)
        action()
        time.sleep(4 * every)
    finally:
        done.set()
        asking.join()
        bob.close()
    return waits


@dataclass
class Attack:
    """What visitor A's steps answered (each step's `process_completed` message)."""

    said: list[str] = field(default_factory=list)  # to A, in toasts
    sent: dict[str, Any] = field(default_factory=dict)
    exported: dict[str, Any] = field(default_factory=dict)
    conversation_id: str = ""


def attack(url: str, data: bytes, done: Attack, *, logins: bool = False) -> Callable[[], None]:
    """Visitor A's attack and use of a big chat (see the module's note), its answers noted in `done`."""

    def run() -> None:
        alice = Visitor(url, *A) if logins else Visitor(url)
        alice.import_chat(chat_export(EMPTY_MESSAGES, 0))
        done.conversation_id = alice.imported_id(data)
        alice.open_chat(done.conversation_id)
        alice.open_address(done.conversation_id)
        done.sent = alice.send_into(done.conversation_id, "and one more question")
        done.exported = alice.export_chat(done.conversation_id)
        done.said = alice.said
        alice.close()

    return run


def memory_per_session(url: str, pid: int, conversation_id: str, sessions: int, warm_up: int = WARM_UP) -> float:
    """Bytes of the app's resident memory each session that opened the chat adds (after `warm_up` sessions did)."""

    def open_in_new_sessions(count: int) -> None:
        for _ in range(count):
            tab = Visitor(url)
            opened = tab.open_chat(conversation_id)
            if not opened["success"]:
                raise RuntimeError(f"the chat did not open: {opened['output']}")
            tab.close()

    open_in_new_sessions(warm_up)
    before = rss_bytes(pid)
    open_in_new_sessions(sessions)
    return (rss_bytes(pid) - before) / sessions


def measure_latency(messages: int, megabytes: float) -> tuple[Waits, Waits, Attack]:
    """B's waits at rest and under A's attack with a chat of `messages` messages and `megabytes` (logins on)."""
    data = chat_export(messages, int(megabytes * 1_000_000))
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        with running_app(Path(folder), logins=True) as (url, _):
            rest = waits_while(url, lambda: time.sleep(3), logins=True)
            done = Attack()
            loaded = waits_while(url, attack(url, data, done, logins=True), logins=True)
    return rest, loaded, done


def measure_memory(messages: int, megabytes: float, sessions: int) -> float:
    """The app's memory per session that opened one chat of `messages` messages and `megabytes`, in bytes."""
    data = chat_export(messages, int(megabytes * 1_000_000))
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        with running_app(Path(folder), max_sessions=sessions + WARM_UP + 10) as (url, pid):
            owner = Visitor(url)
            conversation_id = owner.imported_id(data)
            owner.close()
            return memory_per_session(url, pid, conversation_id, sessions)


def run(sessions: int = 1000, messages: int = BIG_MESSAGES, megabytes: float = 4.9) -> list[Row]:
    rest, loaded, _ = measure_latency(messages, megabytes)
    per_session = measure_memory(messages, megabytes, sessions)
    section = f"big chat: {messages:,} messages, {megabytes} MB, and 12,000 empty messages imported"
    return [
        Row(section, "another visitor's median answer, vs at rest", loaded.median, rest.median),
        Row(
            section,
            "another visitor's slowest answer, vs at rest",
            loaded.worst,
            rest.worst,
            target="≤ 200 ms",
            ok=loaded.worst <= 0.2,
        ),
        Row(
            section,
            f"memory per session that opened the chat ({sessions:,} sessions)",
            per_session / 2**20,
            unit="MB",
            target="≤ 0.5 MB",
            ok=per_session <= 0.5 * 2**20,
            note=f"{per_session / 1024:.0f} KB",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1000, help="sessions that open the chat (memory)")
    parser.add_argument("--messages", type=int, default=BIG_MESSAGES, help="messages of the big chat")
    parser.add_argument("--megabytes", type=float, default=4.9, help="its size")
    args = parser.parse_args()
    data = chat_export(args.messages, int(args.megabytes * 1_000_000))
    print(f"big chat: {args.messages:,} messages, {len(data) / 1e6:.2f} MB")
    rest, loaded, done = measure_latency(args.messages, args.megabytes)
    print(f"B's chat list at rest:       {rest} ({len(rest.samples)} requests)")
    print(f"B's chat list under attack:  {loaded} ({len(loaded.samples)} requests)")
    print(f"  slowest: {loaded.worst / rest.worst:.1f}x at rest; median {loaded.median / rest.median:.1f}x")
    print(f"  said to A: {done.said}; the message sent into the big chat: {_outcome(done.sent)}")
    per_session = measure_memory(args.messages, args.megabytes, args.sessions)
    print(f"memory: {per_session / 1024:.0f} KB a session ({args.sessions:,} sessions opened the chat)")


def _outcome(message: dict[str, Any]) -> str:
    if not message.get("success"):
        return f"refused ({(message.get('output') or {}).get('error')})"
    return "done"


if __name__ == "__main__":
    main()
