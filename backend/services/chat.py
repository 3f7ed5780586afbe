"""ChatService: one request in, one stream of events out, with retries, failover and timeouts hidden inside.

Policy, in order of the route's targets:
- a target resting after repeated failures or a 429 (see cooldown.py) is tried last, and not at all when its
  rest is longer than the provider's `retry_after_cap`;
- before the first output, retryable failures are retried on the same provider (up to its `max_retries`), waiting
  what Retry-After asks (up to the provider's cap) or an exponential backoff with jitter; then the next target;
- after the first output, a retryable failure (drop, stall, error event, malformed stream) moves to the next
  target, which is asked to continue the answer from where it stopped (`Resumed` marks the place); with no target
  left, the error is raised with the partial text attached, so the caller keeps what already streamed;
- silence is timed per provider: `first_token_timeout` until the first output, then `idle_timeout` between
  outputs (backend/providers/_watchdog.py);
- closing or cancelling the stream closes the upstream response (or stops local generation) at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from ..errors import (
    APIError,
    APITimeoutError,
    CoolingDownError,
    RateLimitError,
    SwitchboardError,
    UnsupportedCapabilityError,
)
from ..events import Queued, ReasoningDelta, Resumed, Retrying, Started, StreamEvent, TextDelta, ToolCallDelta
from ..media import has_images, inline_remote_images
from ..providers import Provider
from ..providers._watchdog import SilenceWatchdog
from ..providers.continuation import OverlapTrimmer
from ..request import ChatRequest
from .cooldown import Cooldowns
from .registry import ModelRegistry
from .retry import retry_delay


class ChatService:
    def __init__(self, models: ModelRegistry, cooldowns: Cooldowns | None = None) -> None:
        self.models = models
        self.cooldowns = cooldowns or Cooldowns()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream events for `request` (its `model` a provider/model id or a route name)."""
        targets = self._rested_last(self.plan(request))
        await self._fetch_images(request)
        answer = _Answer()
        failures: list[APIError] = []
        for position, (provider, model) in enumerate(targets):
            target = f"{provider.name}/{model}"
            rest = self.cooldowns.remaining(target)
            if rest:
                if rest > provider.retry_after_cap:
                    failures.append(self._resting_error(provider, model, rest))
                    continue
                yield Retrying(provider.name, model, rest, f"{target} is resting after failures.")
                await asyncio.sleep(rest)
            attempt = 0
            while True:
                # One call to one provider. This loop is the per-token path: kept in this one generator (no
                # helper generator to re-yield through), every token costs one level less on its way up.
                call, trimmer = self._call(provider, model, request, answer)
                watchdog = SilenceWatchdog(provider.first_token_timeout, provider.idle_timeout)
                answer.attempt_started = False
                failure: APIError | None = None
                try:
                    async with aclosing(provider.stream_chat(call)) as events:
                        watchdog.waiting()
                        async for event in events:
                            if not answer.attempt_started and type(event) is not Queued:
                                watchdog.output()
                                watchdog.holding()
                                yield answer.begin(provider.name, model)
                            # `type(event)` inline, no variable: mypy narrows on it, and a TextDelta costs one call
                            if type(event) is TextDelta and event.index == 0:
                                if trimmer is not None:
                                    event = TextDelta(trimmer.feed(event.text))
                                    if not event.text:
                                        watchdog.waiting()
                                        continue
                                answer.pieces.append(event.text)
                            else:
                                if type(event) is ToolCallDelta:
                                    answer.tool_calls = True
                                if (
                                    trimmer is not None
                                    and type(event) is not ReasoningDelta
                                    and (held := trimmer.flush())
                                ):
                                    answer.pieces.append(held)  # the continuation's text before what ends it
                                    watchdog.holding()
                                    yield TextDelta(held)
                            watchdog.holding()
                            yield event
                            watchdog.waiting()
                except asyncio.CancelledError:
                    if not watchdog.expired():
                        raise
                    failure = self._silence_error(provider, model, watchdog)
                except APIError as error:
                    failure = error
                finally:
                    watchdog.close()
                if trimmer is not None and (held := trimmer.flush()):
                    answer.pieces.append(held)
                    yield TextDelta(held)
                if failure is None:
                    self.cooldowns.succeeded(target)
                    return
                last = position + 1 == len(targets)
                delay = self._after(failure, provider, model, attempt, answer, request, last=last)
                if delay is None:
                    failures.append(failure)
                    break
                attempt += 1
                yield Retrying(provider.name, model, delay, failure.user_message())
                await asyncio.sleep(delay)
            if position + 1 < len(targets):
                following, following_model = targets[position + 1]
                yield Retrying(following.name, following_model, 0.0, failures[-1].user_message())
        raise failures[-1]

    async def _fetch_images(self, request: ChatRequest) -> None:
        """Every image of `request`'s messages validated, and those given by http(s) URL fetched (as a stranger
        would: backend/media.py), all sent inline as data URLs."""
        if has_images(request.messages):
            app = self.models.settings.app
            request.messages = await inline_remote_images(
                request.messages,
                allow_private=app.allow_private_image_urls,
                max_bytes=app.max_upload_bytes,
                timeout=app.image_fetch_timeout,
            )

    async def suggest_title(self, model: str, question: str, answer: str, timeout: float = 15.0) -> str:
        """A few-word title for a conversation that starts with `question` and `answer`, from `model`; empty when
        that fails."""
        return await suggest_title(self, model, question, answer, timeout)

    @staticmethod
    def _call(
        provider: Provider[Any], model: str, request: ChatRequest, answer: _Answer
    ) -> tuple[ChatRequest, OverlapTrimmer | None]:
        """The request for this attempt, and the trimmer of repeated text when it continues another's answer."""
        call = request.for_model(model)
        if answer.resuming is None:
            return call, None
        return provider.continuation(call, answer.text()), OverlapTrimmer(answer.text())

    def _after(
        self,
        failure: APIError,
        provider: Provider[Any],
        model: str,
        attempt: int,
        answer: _Answer,
        request: ChatRequest,
        *,
        last: bool,
    ) -> float | None:
        """After a failed attempt: seconds to wait before retrying the same target, or None to move on to the next
        (continuing the answer if it had started). Raises the failure when nothing may follow it."""
        failure.provider = failure.provider or provider.name
        failure.model = failure.model or model
        self.cooldowns.failed(
            f"{provider.name}/{model}",
            failure,
            cooldown=provider.config.cooldown,
            failures_before_cooldown=provider.config.failures_before_cooldown,
        )
        if answer.streamed:
            failure.partial_text = answer.text()
        if answer.attempt_started:  # failed mid-stream: the next target continues the answer
            if last or not answer.resumable(failure, request):
                raise failure
            answer.resuming = failure
            return None
        delay = retry_delay(failure, attempt, provider.retry_after_cap)
        if delay is None or attempt >= provider.max_retries:
            return None
        return delay

    def plan(self, request: ChatRequest) -> list[tuple[Provider[Any], str]]:
        """The (provider, model) targets that can serve `request`, in order; raises before any network call if none."""
        targets: list[tuple[Provider[Any], str]] = []
        refusals: list[UnsupportedCapabilityError] = []
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

    def _rested_last(self, targets: list[tuple[Provider[Any], str]]) -> list[tuple[Provider[Any], str]]:
        """Targets in route order, those resting after failures last (the soonest back first)."""

        def rest(target: tuple[Provider[Any], str]) -> float:
            return self.cooldowns.remaining(f"{target[0].name}/{target[1]}")

        return sorted(targets, key=rest)  # stable: ready targets keep the route's order

    def _resting_error(self, provider: Provider[Any], model: str, rest: float) -> APIError:
        cause = self.cooldowns.cause(f"{provider.name}/{model}")
        cls = RateLimitError if isinstance(cause, RateLimitError) else CoolingDownError
        return cls("resting after failures", provider=provider.name, model=model, retry_after=rest)

    @staticmethod
    def _silence_error(provider: Provider[Any], model: str, watchdog: SilenceWatchdog) -> APITimeoutError:
        if watchdog.fired == "idle":
            message = f"no output for {provider.idle_timeout:g} s"
        else:
            message = f"no output within {provider.first_token_timeout:g} s"
        return APITimeoutError(message, provider=provider.name, model=model)


class _Answer:
    """What one request has streamed so far, across the providers that took part in it."""

    __slots__ = ("attempt_started", "pieces", "resuming", "streamed", "tool_calls")

    def __init__(self) -> None:
        self.pieces: list[str] = []  # answer text of choice 0
        self.streamed = False  # some provider produced output
        self.attempt_started = False  # the current provider produced output
        self.tool_calls = False
        self.resuming: APIError | None = None  # the mid-stream failure the next provider continues after

    def text(self) -> str:
        return "".join(self.pieces)

    def begin(self, provider: str, model: str) -> Started | Resumed:
        """The first output of an attempt: Started, or Resumed when it continues another provider's answer."""
        self.attempt_started = self.streamed = True
        if self.resuming is not None:
            return Resumed(provider, model, self.resuming.user_message())
        return Started(provider, model)

    def resumable(self, failure: APIError, request: ChatRequest) -> bool:
        """Whether another provider can continue this answer: a passing failure, one choice, no tool call."""
        return failure.retryable and request.n in (None, 1) and not self.tool_calls


TITLE_PROMPT = (
    "Give a short title (at most six words) for a conversation that starts like this. Answer with the title "
    "only, no quotes.\n\nUser: {question}\nAssistant: {answer}"
)


async def suggest_title(chat: ChatService, model: str, question: str, answer: str, timeout: float = 15.0) -> str:
    """A few-word title for a new conversation from `model`; empty when it fails (the caller keeps its own).
    Also `ChatService.suggest_title`."""
    prompt = TITLE_PROMPT.format(question=question[:1000], answer=answer[:1000])
    request = ChatRequest(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=24, temperature=0.2)

    async def run() -> str:
        return "".join([event.text async for event in chat.stream(request) if isinstance(event, TextDelta)])

    try:
        title = await asyncio.wait_for(run(), timeout)
    except (APIError, SwitchboardError, TimeoutError):
        return ""
    return " ".join(title.strip().strip("\"'*#").split())[:80]
