"""The app waits for work instead of polling Gradio's queue every millisecond (webui/queue_wakeups.py), at rest and
while replies stream, and an event sent to it after a rest, or while another streams, starts at once."""

from __future__ import annotations

import threading
import time

from gradio import queueing
from gradio_client import Client

from tests.upstream import Reply


def counting_looks(monkeypatch) -> list[float]:
    """The delays of every sleep Gradio's queue module takes from now on, until monkeypatch.undo()."""
    looks: list[float] = []
    sleep = queueing.asyncio.sleep

    async def counted(delay, result=None):
        looks.append(delay)
        return await sleep(delay, result)

    monkeypatch.setattr(queueing.asyncio, "sleep", counted)
    return looks


def test_an_idle_app_sleeps_until_an_event_arrives(scripted_backend, serve_app, monkeypatch):
    url = serve_app(scripted_backend)
    client = Client(url, verbose=False)
    assert client.predict(message="Hi", api_name="/chat") == "Hello from the scripted upstream."
    time.sleep(0.5)  # the first request's job is over: the queue is idle

    looks = counting_looks(monkeypatch)
    time.sleep(1.0)
    monkeypatch.undo()
    # Gradio's own loops would have looked about 1,100 times in that second (every 1 ms and every 10 ms).
    assert len(looks) < 20, len(looks)
    assert client.predict(message="Again", api_name="/chat") == "Hello from the scripted upstream."


def test_a_streaming_reply_does_not_make_the_queue_poll(scripted_backend, upstream, serve_app, monkeypatch):
    """While a job runs and no event waits to start, Gradio's loop looks for one every millisecond (and for progress
    every 10 ms): here it waits for a push. An event pushed meanwhile starts at once."""
    url = serve_app(scripted_backend)
    client = Client(url, verbose=False)
    words = [f"w{number} " for number in range(40)]
    upstream.enqueue(Reply.text(words, delay=0.1))  # four seconds of streaming
    streamed: list[str] = []
    streaming = threading.Thread(target=lambda: streamed.append(client.predict(message="Count", api_name="/chat")))
    streaming.start()
    while not upstream.chat_requests():
        time.sleep(0.05)
    time.sleep(0.3)
    looks = counting_looks(monkeypatch)
    time.sleep(1.0)
    monkeypatch.undo()
    # Gradio's own loops would have looked about 1,100 times in that second.
    assert len(looks) < 20, len(looks)
    other = Client(url, verbose=False)
    assert other.predict(message="Meanwhile", api_name="/chat") == "Hello from the scripted upstream."
    streaming.join(10)
    assert streamed == ["".join(words)]
