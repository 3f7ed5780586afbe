"""An idle app waits for work instead of polling Gradio's queue every millisecond (webui/queue_wakeups.py), and
an event sent to it after a rest starts as before."""

from __future__ import annotations

import time

from gradio import queueing
from gradio_client import Client


def test_an_idle_app_sleeps_until_an_event_arrives(scripted_backend, serve_app, monkeypatch):
    url = serve_app(scripted_backend)
    client = Client(url, verbose=False)
    assert client.predict(message="Hi", api_name="/chat") == "Hello from the scripted upstream."
    time.sleep(0.5)  # the first request's job is over: the queue is idle

    looks: list[float] = []
    sleep = queueing.asyncio.sleep

    async def counted(delay, result=None):
        looks.append(delay)
        return await sleep(delay, result)

    monkeypatch.setattr(queueing.asyncio, "sleep", counted)
    time.sleep(1.0)
    monkeypatch.undo()
    # Gradio's own loops would have looked about 1,100 times in that second (every 1 ms and every 10 ms).
    assert len(looks) < 20, len(looks)
    assert client.predict(message="Again", api_name="/chat") == "Hello from the scripted upstream."
