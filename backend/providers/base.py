"""What every provider adapter is: one class per wire protocol, yielding the shared stream events."""

from __future__ import annotations

from abc import ABC
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from ..errors import UnsupportedCapabilityError
from ..events import StreamEvent
from ..media import has_images
from ..request import ChatRequest
from ._config_base import _ProviderBase
from .continuation import continuation_request

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ..request import ImageRequest

ConfigT = TypeVar("ConfigT", bound=_ProviderBase)


@dataclass(slots=True)
class GeneratedImage:
    """What an adapter returns: image bytes (PNG, JPEG or WebP) and what the provider said about them."""

    data: bytes
    mime: str = "image/png"
    revised_prompt: str | None = None
    seed: int | None = None
    url: str | None = None  # set (and `data` empty) when the image lives elsewhere: fetched without credentials


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a model id can do, read from the configuration and its adapter (no request is sent to find out).
    For a route, each capability is that of any of its models."""

    id: str
    chat: bool = True  # answers chat messages
    vision: bool = False  # reads images in messages
    images: bool = False  # generates images
    negative_prompt: bool = False  # image generation honours a negative prompt
    reasoning: bool = False  # thinks before it answers (its configuration says so)
    tools: bool = False  # may be offered the app's own tools (its provider's `tool_models`)
    embeddings: bool = False  # turns text into vectors (its provider's `embedding_models`, on a kind that can)
    context_length: int | None = None  # tokens of context, when known
    bundled: bool = False  # the small offline model that ships with the app


class Provider(ABC, Generic[ConfigT]):
    """A configured upstream. `stream_chat` receives a request whose `model` is this provider's own model name.

    An adapter module defines one subclass and names it `ADAPTER`; listing the module in
    `backend.providers.ADAPTER_MODULES` is all it takes to add a provider kind."""

    kind: ClassVar[str]  # the `kind` of its `[providers.NAME]` tables
    config_class: ClassVar[type[_ProviderBase]]  # the pydantic model of those tables
    # Request parameters this adapter can honour; others are refused before any network call.
    supported_params: ClassVar[frozenset[str]] = frozenset()
    # What the adapter can do at all ("chat", "image", "embed"); the config's model lists say which models do it.
    tasks: ClassVar[frozenset[str]] = frozenset({"chat"})
    takes_negative_prompt: ClassVar[bool] = False  # image generation honours ImageRequest.negative_prompt
    # How this protocol continues an answer another provider left unfinished (see backend/providers/continuation.py).
    continuation_style: ClassVar[str] = "prompt"

    def __init__(self, name: str, config: ConfigT) -> None:
        self.name = name
        self.config = config

    @property
    def max_retries(self) -> int:
        return self.config.max_retries

    @property
    def retry_after_cap(self) -> float:
        return 20.0

    @property
    def first_token_timeout(self) -> float | None:
        return self.config.first_token_timeout

    @property
    def idle_timeout(self) -> float | None:
        return self.config.idle_timeout

    def model_info(self, model: str) -> ModelInfo:
        """What this provider's `model` can do."""
        return ModelInfo(
            id=f"{self.name}/{model}",
            chat="chat" in self.tasks and (model in self.config.model_names() or not self.config.model_names()),
            vision=model in self.config.vision_names(),
            images=model in self.config.image_names(),
            negative_prompt=self.takes_negative_prompt and model in self.config.image_names(),
            reasoning=self.config.reasons(model),
            tools=model in self.config.tool_names(),
            embeddings="embed" in self.tasks and model in self.config.embedding_names(),
            context_length=self.config.context_length(model),
        )

    def continuation(self, request: ChatRequest, partial: str) -> ChatRequest:
        """`request` (already for this provider's model) asking to go on from the unfinished answer `partial`."""
        return continuation_request(request, partial, self.continuation_style)

    def declared_models(self) -> list[str]:
        return self.config.model_names()

    async def list_models(self) -> list[str]:
        """Models this provider offers: the configured list, or what the upstream reports."""
        return self.declared_models()

    def check(self, request: ChatRequest) -> None:
        """Raise UnsupportedCapabilityError when the request asks for something this model cannot do."""
        if "chat" not in self.tasks:
            raise UnsupportedCapabilityError(
                f"{self.kind} providers only generate images", provider=self.name, model=request.model
            )
        if has_images(request.messages) and request.model not in self.config.vision_names():
            raise UnsupportedCapabilityError(
                "this model does not read images; pick a vision model, or list it under vision_models in the "
                "config if it does.",
                provider=self.name,
                model=request.model,
            )
        if request.server_tools and request.model not in self.config.tool_names():
            raise UnsupportedCapabilityError(
                "this model is not offered the app's tools; pick a model that calls tools, or list it under "
                "tool_models in the config if it does.",
                provider=self.name,
                model=request.model,
            )
        unsupported = sorted(set(request.params()) - self.supported_params)
        if unsupported:
            raise UnsupportedCapabilityError(
                f"parameter{'s' if len(unsupported) > 1 else ''} {', '.join(unsupported)} not supported",
                provider=self.name,
                model=request.model,
            )

    def check_embeddings(self, model: str) -> None:
        """Raise UnsupportedCapabilityError unless this provider's `model` turns text into vectors."""
        if "embed" not in self.tasks:
            raise UnsupportedCapabilityError(
                f"{self.kind} providers do not make embeddings", provider=self.name, model=model
            )
        if model not in self.config.embedding_names():
            raise UnsupportedCapabilityError(
                "this model does not make embeddings; list it under embedding_models in the config if it does.",
                provider=self.name,
                model=model,
            )

    def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream the answer as events; raise an APIError subclass on failure. Closing the iterator stops at once."""
        raise UnsupportedCapabilityError("chat is not supported", provider=self.name, model=request.model)

    async def generate_images(self, request: ImageRequest) -> list[GeneratedImage]:
        """Generate images for an ImageRequest; a list of GeneratedImage."""
        raise UnsupportedCapabilityError("image generation is not supported", provider=self.name, model=request.model)

    async def embed(self, texts: list[str], model: str) -> NDArray[np.float32]:
        """One vector per text, in order, as the rows of a float32 matrix (as the model made them: not normalised);
        an APIError subclass on failure. Callers check the model with `check_embeddings` first, and send batches
        (backend/knowledge/embeddings.py)."""
        raise UnsupportedCapabilityError(
            f"{self.kind} providers do not make embeddings", provider=self.name, model=model
        )

    def warm_up(self) -> None:
        """Start slow preparation (loading a model) in the background; most providers have none."""

    async def aclose(self) -> None:
        """Release connections or models."""
