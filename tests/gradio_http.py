"""The browser's side of Gradio's queue protocol over plain HTTP, to call any event of the app, including those
hidden from the API, with any input, as a logged-in visitor could with a script.

Used to prove that nothing of one user's is reachable by another through any route: `gradio_client` only calls
public endpoints, but the page itself calls every event by its number (`fn_index`), so an attacker can too.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx


class GradioSession:
    """One browser session: logged in (when credentials are given) and with its own session hash."""

    def __init__(
        self, url: str, username: str | None = None, password: str | None = None, cookies: dict[str, str] | None = None
    ) -> None:
        self.http = httpx.Client(base_url=url, timeout=30, cookies=cookies)
        if username is not None:
            response = self.http.post("login", data={"username": username, "password": password or ""})
            response.raise_for_status()
        self.config = self.http.get("config").json()
        self.session_hash = secrets.token_hex(8)
        self._elements = {
            block["props"].get("elem_id"): block["id"] for block in self.config["components"] if "props" in block
        }

    def close(self) -> None:
        self.http.close()

    def fn_index(self, elem_id: str, trigger: str) -> int:
        """The number of the event that `trigger` on the component `elem_id` starts."""
        target = [self._elements[elem_id], trigger]
        return next(dep["id"] for dep in self.config["dependencies"] if target in dep["targets"])

    def api_fn_index(self, api_name: str) -> int:
        return next(dep["id"] for dep in self.config["dependencies"] if dep.get("api_name") == api_name)

    def call(
        self, fn_index: int, data: list[Any], trigger_id: int | None = None, event_data: Any = None
    ) -> dict[str, Any]:
        """Run one event to its end; the `process_completed` message (`success`, `output`)."""
        return self.result(self.join(fn_index, data, trigger_id, event_data))

    def join(self, fn_index: int, data: list[Any], trigger_id: int | None = None, event_data: Any = None) -> str:
        """Start one event in this session's queue; its event id."""
        joined = self.http.post(
            "gradio_api/queue/join",
            json={
                "data": data,
                "event_data": event_data,
                "fn_index": fn_index,
                "trigger_id": trigger_id,
                "session_hash": self.session_hash,
            },
        )
        joined.raise_for_status()
        return str(joined.json()["event_id"])

    def run(self, fn_index: int, data: list[Any]) -> dict[str, Any]:
        """Run an event the page calls outside the queue (`queue=False`, such as Stop); Gradio's answer."""
        body = {"data": data, "event_data": None, "fn_index": fn_index, "trigger_id": None}
        answered = self.http.post("gradio_api/run/predict", json={**body, "session_hash": self.session_hash})
        answered.raise_for_status()
        return dict(answered.json())

    # --- the Chat tab, as its page drives it ------------------------------------------------------------------

    def page_load(self) -> int:
        """The page-load event that lists the chats and opens the one the page's address names (?chat=ID): the
        load with the most outputs (others fill in smaller things, such as the presets)."""
        loads = [dep for dep in self.config["dependencies"] if dep["targets"] and dep["targets"][0][1] == "load"]
        return int(max(loads, key=lambda dep: len(dep["outputs"]))["id"])

    def then_of(self, fn_index: int) -> int:
        """The event that follows `fn_index` when it ends (its `.then` or `.success`)."""
        return int(next(dep["id"] for dep in self.config["dependencies"] if dep.get("trigger_after") == fn_index))

    def send(self, text: str) -> tuple[list[Any], str]:
        """Send `text` as a new chat's first message with the default model, as the message box does: the chat as
        shown then, and the new chat's id."""
        submit = self.fn_index("message", "submit")
        model = next(
            c["props"]["value"] for c in self.config["components"] if c["props"].get("elem_id") == "model-picker"
        )
        added = self.call(submit, [{"text": text, "files": []}, [], None, model, "", 0.7, 1, 0, -1, "", ""])
        if not added["success"]:
            raise AssertionError(f"the message was refused: {added['output']}")
        return added["output"]["data"][0], added["output"]["data"][-1]

    def open_address(self, conversation_id: str) -> list[Any]:
        """Load the page at the chat's address (?chat=ID), as a reload does (the page sends its address's query
        with every event, as the browser does): the chat as its load shows it."""
        self.http.params = {"chat": conversation_id}
        opened = self.call(self.page_load(), [None])  # no time zone (a browser gives its own): UTC
        if not opened["success"] or opened["output"]["data"][-2] != conversation_id:
            raise AssertionError(f"the chat did not open: {opened['output']}")
        return list(opened["output"]["data"][0])

    def follow(self, fn_index: int, data: list[Any], seconds: float | None = None) -> dict[str, Any] | None:
        """Start an event of the page's and read its updates for `seconds` (then leave, as a closed page does), or
        to its end (None): its last message then."""
        event_id = self.join(fn_index, data)
        deadline = None if seconds is None else time.perf_counter() + seconds
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                if deadline is not None and time.perf_counter() > deadline:
                    return None
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                        return dict(message)
        raise AssertionError("the page's stream ended before the reply")

    def result(self, event_id: str) -> dict[str, Any]:
        """Read this session's queue messages until `event_id` completes; its `process_completed` message."""
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": self.session_hash}) as stream:
            stream.raise_for_status()
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    return dict(message)
        raise AssertionError(f"event {event_id} never completed")


def answer_text(messages: list[dict[str, Any]]) -> str:
    """The assistant's text in a Chatbot value, without its notes (footers, reasoning: messages with a title)."""
    return "".join(
        m["content"] if isinstance(m["content"], str) else "".join(p.get("text", "") for p in m["content"])
        for m in messages
        if m["role"] == "assistant" and not (m.get("metadata") or {}).get("title")
    )
