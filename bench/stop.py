"""Stop: the time from pressing Stop to the upstream's connection being closed, so a stopped reply stops costing.

A scripted upstream (in this process, so its clock is ours) streams a long reply slowly. When text has arrived,

  app       the app's `chat` endpoint is cancelled through gradio_client (what the Stop button does: Gradio
            cancels the reply's task), and
  backend   the AsyncClient's stream is closed (`break` out of the loop, then `aclose()`),

and the upstream notes the moment the client hung up. Medians of several stops.

    python -m bench.stop [--repeat 5]
"""

from __future__ import annotations

import asyncio
import time

from bench.common import Row, app, app_config, median
from bench.report import command_line
from tests.upstream import Reply, ScriptedUpstream

SLOW = Reply.text([f"w{i} " for i in range(2000)], delay=0.02)


def app_stops(upstream: ScriptedUpstream, url: str, repeat: int) -> list[float]:
    from gradio_client import Client

    client = Client(url, verbose=False)
    samples = []
    for _ in range(repeat):
        upstream.enqueue(SLOW)
        job = client.submit(message="a long story", api_name="/chat")
        while len(job.outputs()) < 3:  # text is streaming to the client
            time.sleep(0.01)
        request = upstream.chat_requests()[-1]
        pressed = time.monotonic()
        job.cancel()
        if not upstream.wait_for(lambda request=request: request.disconnected_at is not None, timeout=30):
            raise SystemExit("the app did not close the upstream connection within 30 s of Stop")
        samples.append(request.disconnected_at - pressed)
    client.close()
    return samples


async def backend_stops(upstream: ScriptedUpstream, config, repeat: int) -> list[float]:
    from backend import AsyncClient, load_settings

    samples = []
    async with AsyncClient(settings=load_settings(config)) as client:
        for _ in range(repeat):
            upstream.enqueue(SLOW)
            stream = await client.chat.completions.create(model="scripted/scripted-1", messages="go", stream=True)
            received = 0
            async for chunk in stream:
                received += bool(chunk.choices and chunk.choices[0].delta.content)
                if received == 3:
                    break
            request = upstream.chat_requests()[-1]
            pressed = time.monotonic()
            await stream.aclose()
            while request.disconnected_at is None and time.monotonic() - pressed < 30:
                await asyncio.sleep(0.001)
            samples.append(request.disconnected_at - pressed)
    return samples


def run(repeat: int = 5) -> list[Row]:
    section = "Stop: until the upstream connection closes"
    with ScriptedUpstream() as upstream, app_config(upstream.base_url) as config:
        through_backend = median(asyncio.run(backend_stops(upstream, config, repeat)))
        with app(config) as url:
            through_app = median(app_stops(upstream, url, repeat))
    return [
        Row(section, "Stop in the app (gradio_client cancel)", through_app, target="≤ 0.5 s", ok=through_app <= 0.5),
        Row(section, "AsyncClient stream closed", through_backend, target="≤ 0.5 s", ok=through_backend <= 0.5),
    ]


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
