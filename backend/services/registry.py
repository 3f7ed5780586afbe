"""Turns the model ids people type (`provider/model`, or a route name) into providers to call, in order."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import SwitchboardError, UnknownModelError, UnsupportedCapabilityError
from ..providers import ModelInfo, Provider

log = logging.getLogger(__name__)

# What a task is called in a sentence, and the provider field that lists its models.
_TASKS = {
    "image": ("generate images", "image_models"),
    "vision": ("read images", "vision_models"),
    "embeddings": ("make embeddings", "embedding_models"),
}


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """One entry of a model picker."""

    id: str  # what to pass as `model`: provider/model or a route name
    provider: str  # provider name, or "route"
    label: str


class ModelRegistry:
    def __init__(self, settings: Settings, providers: dict[str, Provider[Any]]) -> None:
        self.settings = settings
        self.providers = providers
        self._listed: dict[str, list[str]] = {name: p.declared_models() for name, p in providers.items()}

    @property
    def default_chat(self) -> str:
        return self.settings.defaults.chat or ""

    def resolve(self, model_id: str) -> list[tuple[Provider[Any], str]]:
        """The (provider, model name) pairs to try for `model_id`, in order."""
        if model_id in self.settings.routes:
            return [self._target(target) for target in self.settings.routes[model_id]]
        return [self._target(model_id)]

    def _target(self, model_id: str) -> tuple[Provider[Any], str]:
        provider_name, _, model = model_id.partition("/")
        provider = self.providers.get(provider_name)
        if provider is None or not model:
            raise self._unknown(model_id)
        declared = provider.declared_models()
        if declared and model not in declared:
            raise UnknownModelError(
                f"Unknown model {model_id!r}: provider {provider_name!r} offers {', '.join(declared)}."
            )
        return provider, model

    def _unknown(self, model_id: str) -> UnknownModelError:
        routes = ", ".join(self.settings.routes) or "none configured"
        return UnknownModelError(
            f"Unknown model {model_id!r}: use provider/model, e.g. {self.default_chat}, or a route ({routes})."
        )

    def info(self, model_id: str) -> ModelInfo:
        """What `model_id` can do; UnknownModelError when the configuration does not define it. For a route,
        each capability is that of any of its models (the service picks those that can serve a request)."""
        if model_id in self.settings.routes:
            targets = [self._target(target) for target in self.settings.routes[model_id]]
        else:
            provider_name, _, model = model_id.partition("/")
            provider = self.providers.get(provider_name)
            if provider is None or not model:
                raise self._unknown(model_id)
            targets = [(provider, model)]  # image models are not chat models: no declared-model check here
        described = [provider.model_info(model) for provider, model in targets]
        if len(described) == 1:
            return described[0]
        return ModelInfo(
            id=model_id,
            chat=any(info.chat for info in described),
            vision=any(info.vision for info in described),
            images=any(info.images for info in described),
            negative_prompt=any(info.negative_prompt for info in described),
            reasoning=any(info.reasoning for info in described),
            tools=any(info.tools for info in described),
            embeddings=any(info.embeddings for info in described),
            context_length=min((info.context_length for info in described if info.context_length), default=None),
            bundled=all(info.bundled for info in described),
        )

    def resolve_task(self, model_id: str, task: str) -> tuple[Provider[Any], str]:
        """The provider and model name for an image ("image"), vision ("vision") or embedding ("embeddings")
        model id."""
        capable = self.settings.capable_models(task)
        if model_id not in capable:
            what, listed = _TASKS[task]
            offered = ", ".join(capable) or f"none configured (list models under {listed})"
            raise UnsupportedCapabilityError(f"{model_id or 'no model'} cannot {what}; models that can: {offered}.")
        provider_name, _, model = model_id.partition("/")
        return self.providers[provider_name], model

    def choices(self, task: str) -> list[ModelChoice]:
        """Picker entries for "image" or "vision" models."""
        return [
            ModelChoice(model_id, model_id.partition("/")[0], model_id.replace("/", " · ", 1))
            for model_id in self.settings.capable_models(task)
        ]

    async def refresh(self, timeout: float = 5.0) -> None:
        """Ask providers without a configured model list what they serve; a failure only logs a warning."""

        async def ask(name: str, provider: Provider[Any]) -> None:
            try:
                self._listed[name] = await asyncio.wait_for(provider.list_models(), timeout)
            except (SwitchboardError, TimeoutError) as exc:
                log.warning("could not list models of provider %s: %s", name, exc)

        await asyncio.gather(*(ask(n, p) for n, p in self.providers.items() if not p.declared_models()))

    def chat_choices(self) -> list[ModelChoice]:
        """Every configured model grouped by provider (config order), then routes."""
        choices = [
            ModelChoice(f"{name}/{model}", name, f"{name} · {model}")
            for name in self.providers
            for model in self._listed.get(name, [])
        ]
        choices += [
            ModelChoice(route, "route", f"route · {route} → {', '.join(targets)}")
            for route, targets in self.settings.routes.items()
        ]
        return choices
