"""The browser's side of Gradio's queue protocol over plain HTTP, to call any event of the app, including those
hidden from the API, with any input, as a logged-in visitor could with a script.

Used to prove that nothing of one user's is reachable by another through any route: `gradio_client` only calls
public endpoints, but the page itself calls every event by its number (`fn_index`), so an attacker can too.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx


class GradioSession:
    """One browser session: logged in (when credentials are given) and with its own session hash."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
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
