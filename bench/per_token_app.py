"""The common pattern, to compare the app against: a plain `gr.ChatInterface` whose function streams a reply
from an OpenAI-compatible upstream and yields the whole text so far after every token.

It reads the stream with httpx + httpx-sse, as switchboard's backend does, so the comparison is about how the
text is handed to Gradio, not about the HTTP client.

    python bench/per_token_app.py BASE_URL PORT
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import gradio as gr
import httpx
from httpx_sse import connect_sse


def build(base_url: str) -> gr.ChatInterface:
    client = httpx.Client(timeout=120)

    def reply(message: str, history: list) -> Iterator[str]:
        body = {"model": "scripted-1", "messages": [{"role": "user", "content": message}], "stream": True}
        text = ""
        with connect_sse(client, "POST", f"{base_url}/chat/completions", json=body) as source:
            for event in source.iter_sse():
                if event.data == "[DONE]":
                    break
                for choice in json.loads(event.data).get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        text += piece
                        yield text

    return gr.ChatInterface(reply, api_name="chat", concurrency_limit=None)


if __name__ == "__main__":
    build(sys.argv[1]).launch(server_name="127.0.0.1", server_port=int(sys.argv[2]), quiet=True)
