"""ChatService: one request in, one stream of events out, with retries and failover hidden inside.

Policy, in order of the route's targets:
- before the first output, retryable failures are retried on the same provider (up to its `max_retries`), waiting
  what Retry-After asks (up to the provider's cap) or an exponential backoff with jitter; then the next target;
- after the first output nothing is retried: the error is raised with the partial text attached, so the caller
  keeps what already streamed;
- closing or cancelling the stream closes the upstream response (or stops local generation) at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

from ..errors import APIError, SwitchboardError, UnsupportedCapabilityError
from ..events import Queued, Retrying, Started, StreamEvent, TextDelta
from ..media import has_images, inline_remote_images
from ..providers import Provider
from ..request import ChatRequest
from ..retry import retry_delay
from .registry import ModelRegistry


class ChatService:
    def __init__(self, models: ModelRegistry) -> None:
        self.models = models

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream events for `request` (its `model` a provider/model id or a route name)."""
        targets = self.plan(request)
        if has_images(request.messages):
            app = self.models.settings.app
            request.messages = await inline_remote_images(
                request.messages,
                allow_private=app.allow_private_image_urls,
                max_bytes=app.max_upload_bytes,
                timeout=app.image_fetch_timeout,
            )
        failures: list[APIError] = []
        for position, (provider, model) in enumerate(targets):
            attempt = 0
            while True:
                partial: list[str] = []
                started = False
                try:
                    async with aclosing(provider.stream_chat(request.for_model(model))) as events:
                        async for event in events:
                            if not started and not isinstance(event, Queued):
                                started = True
                                yield Started(provider.name, model)
                            if type(event) is TextDelta:
                                partial.append(event.text)
                            yield event
                    return
                except APIError as error:
                    error.provider = error.provider or provider.name
                    error.model = error.model or model
                    if started:
                        error.partial_text = "".join(partial)
                        raise
                    delay = retry_delay(error, attempt, provider.retry_after_cap)
                    if delay is None or attempt >= provider.max_retries:
                        failures.append(error)
                        break
                    attempt += 1
                    yield Retrying(provider.name, model, delay, error.user_message())
                    await asyncio.sleep(delay)
            if position + 1 < len(targets):
                following, following_model = targets[position + 1]
                yield Retrying(following.name, following_model, 0.0, failures[-1].user_message())
        raise failures[-1]

    def plan(self, request: ChatRequest) -> list[tuple[Provider, str]]:
        """The (provider, model) targets that can serve `request`, in order; raises before any network call if none."""
        targets, refusals = [], []
        for provider, model in self.models.resolve(request.model):
            try:
                provider.check(request.for_model(model))
            except UnsupportedCapabilityError as refusal:
                refusals.append(refusal)
                continue
            targets.append((provider, model))
        if not targets:
            raise refusals[0]
        return targets


TITLE_PROMPT = (
    "Give a short title (at most six words) for a conversation that starts like this. Answer with the title "
    "only, no quotes.\n\nUser: {question}\nAssistant: {answer}"
)


async def suggest_title(chat: ChatService, model: str, question: str, answer: str, timeout: float = 15.0) -> str:
    """A few-word title for a new conversation from `model`; empty when it fails (the caller keeps its own)."""
    prompt = TITLE_PROMPT.format(question=question[:1000], answer=answer[:1000])
    request = ChatRequest(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=24, temperature=0.2)

    async def run() -> str:
        return "".join([event.text async for event in chat.stream(request) if type(event) is TextDelta])

    try:
        title = await asyncio.wait_for(run(), timeout)
    except (APIError, SwitchboardError, TimeoutError):
        return ""
    return " ".join(title.strip().strip("\"'*#").split())[:80]
