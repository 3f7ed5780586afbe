"""Web search through a SearXNG instance's JSON API: `GET {url}/search?q=...&format=json`.

The model gets the first `max_results` results as title, URL and snippet (SearXNG's `content`), numbered. The
request goes out as any URL chosen from outside does (backend/public_fetch.py): no credentials, no redirects,
only to a public address unless the table says `allow_private = true` (a SearXNG on this machine), its answer
read up to 2 MB within the tool's `timeout`. What comes back is untrusted text like any tool result.
"""

from __future__ import annotations

import json
from typing import Any

from ..config import WebSearchToolConfig
from ..public_fetch import FetchRefused, fetch_public
from .calls import Outcome, cut

MAX_ANSWER_BYTES = 2_000_000  # a SearXNG page of results is tens of KB
MAX_SNIPPET_CHARS = 500


class WebSearch:
    """The `[tools.NAME]` table of kind "web_search": one function, named NAME, taking a `query`."""

    def __init__(self, name: str, config: WebSearchToolConfig) -> None:
        self.name = name
        self.config = config

    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": "Search the web. Returns the first results, each with its title, URL and a snippet.",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string", "description": "what to search for"}},
                    "required": ["query"],
                },
            },
        }

    async def search(self, arguments: dict[str, Any], timeout: float) -> Outcome:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return Outcome("Give the search as a non-empty string argument `query`.", error=True)
        try:
            body = await fetch_public(
                f"{self.config.url}/search",
                params={"q": query, "format": "json"},
                headers={"Accept": "application/json"},
                allow_private=self.config.allow_private,
                max_bytes=MAX_ANSWER_BYTES,
                timeout=timeout,
            )
        except FetchRefused as refused:
            hint = " (set allow_private = true in its table for a search server on this machine)"
            return Outcome(f"The search failed: {refused}{hint if refused.reason == 'private' else ''}", error=True)
        results = _results(body)
        if results is None:
            return Outcome("The search server did not answer with SearXNG's JSON (is format json enabled?).", True)
        return Outcome(cut(_listing(results[: self.config.max_results]), self.config.max_result_chars))

    async def aclose(self) -> None:
        """Nothing stays open between searches."""


def _results(body: bytes) -> list[dict[str, Any]] | None:
    try:
        answer = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        return None
    return [result for result in results if isinstance(result, dict) and isinstance(result.get("url"), str)]


def _listing(results: list[dict[str, Any]]) -> str:
    if not results:
        return "No results."
    lines = []
    for number, result in enumerate(results, 1):
        title = " ".join(str(result.get("title") or result["url"]).split())
        snippet = " ".join(str(result.get("content") or "").split())[:MAX_SNIPPET_CHARS]
        lines.append(f"{number}. {title}\n   {result['url']}" + (f"\n   {snippet}" if snippet else ""))
    return "\n".join(lines)
