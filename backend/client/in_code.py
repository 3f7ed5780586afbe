"""Providers configured in code, as gpt4free's clients take them, with no TOML file:

    client = Client(provider="openai", api_key="sk-...")                       # a kind name
    client = Client(provider=Provider("ollama", base_url="http://127.0.0.1:11434"))
    client = AsyncClient(
        provider=RetryProvider(["openai", Provider("gemini", api_key="...")], single_provider_retry=True),
        image_provider="openai", api_key="sk-...", proxies="http://proxy.local:3128",
    )
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[...])

Model names are passed as g4f code passes them (no `provider/` prefix, and they need not be listed anywhere):
each call's name is asked of the provider, or of each provider of a retry chain in turn, which behaves as a route
of the configuration (retries, cooldowns, an answer continued mid-stream by the next provider). Underneath it is
an ordinary Settings, so everything behaves as the configured equivalent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from ..config import LOCAL_PROVIDER, Settings
from ..providers._config_base import _HTTPProviderBase
from ..providers.openai import OPENAI_URL

IMAGES = "images"  # the name of the image provider among the providers


class Provider:
    """One provider: a kind (openai, ollama, anthropic, gemini, local) and, where needed, its endpoint, key and any
    other field of that kind's configuration (timeouts, headers, proxy...)."""

    def __init__(self, kind: str, base_url: str | None = None, api_key: str | None = None, **options: Any) -> None:
        self.kind, self.base_url, self.api_key, self.options = kind, base_url, api_key, options

    def __repr__(self) -> str:  # never the key
        return f"Provider({self.kind!r}, base_url={self.base_url!r})"


class RetryProvider:
    """Providers tried in order for each request. `single_provider_retry`: each is retried up to `max_retries`
    times (before its first token) before the next is tried; otherwise each is tried once."""

    def __init__(
        self, providers: Sequence[str | Provider], *, single_provider_retry: bool = False, max_retries: int = 3
    ) -> None:
        if not providers:
            raise ValueError("RetryProvider needs at least one provider")
        self.providers = [p if isinstance(p, Provider) else Provider(p) for p in providers]
        self.single_provider_retry = single_provider_retry
        self.max_retries = max_retries


class InCode(TypedDict, total=False):
    """The keyword arguments of `Client` and `AsyncClient` that configure providers in code."""

    provider: str | Provider | RetryProvider | None
    image_provider: str | Provider | None
    api_key: str | None
    base_url: str | None
    proxies: str | dict[str, str] | None


class Naming:
    """Model names as code passes them, to the ids of the Settings built for them (`provider/model`, or a route
    over a retry chain's providers)."""

    def __init__(self, settings: Settings, chain: list[str]) -> None:
        self.settings, self.chain = settings, chain
        # Providers given no list of models: they take any name (a list given in code is kept to).
        self._unlisted = {
            name
            for name in chain
            if isinstance(config := settings.providers[name], _HTTPProviderBase) and not config.model_names()
        }

    def chat(self, model: str | None, *, images: bool = False) -> str:
        """The id for `model`; `images`: the request carries images."""
        if not model:
            raise ValueError("pass model=... (the provider's own name for it)")
        for name in self.chain:
            self._declare(name, model, images)
        if len(self.chain) == 1:
            return f"{self.chain[0]}/{model}"
        route = f"retry:{model}"
        self.settings.routes.setdefault(route, [f"{name}/{model}" for name in self.chain])
        return route

    def _declare(self, provider: str, model: str, images: bool) -> None:
        """On a provider given no list of models, list `model` as code uses it, and as reading images once it is
        sent one: the kinds take only listed models once any is listed, and send images only to models listed as
        reading them. What such a model can do is the caller's to know, and the upstream's to refuse."""
        config = self.settings.providers[provider]
        if provider not in self._unlisted or not isinstance(config, _HTTPProviderBase):
            return
        if model not in config.models:
            config.models.append(model)
        if images and model not in config.vision_models:
            config.vision_models.append(model)

    def image(self, model: str | None) -> str:
        """The image model's id; it is added to the image provider's list (the kinds refuse unlisted ones). No model
        is the provider's first image model: listed in its options (`image_models=[...]`), else the first asked for."""
        config = self.settings.providers.get(IMAGES)
        if config is None:
            raise ValueError("pass image_provider=... to generate images")
        assert isinstance(config, _HTTPProviderBase)
        model = model or next(iter(config.image_models), None)
        if not model:
            raise ValueError("pass model=... (the image provider's own name for it)")
        if model not in config.image_models:
            config.image_models.append(model)
        return f"{IMAGES}/{model}"


def settings_in_code(
    provider: str | Provider | RetryProvider | None = None,
    *,
    image_provider: str | Provider | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    proxies: str | dict[str, str] | None = None,
) -> tuple[Settings, Naming]:
    """Settings for providers given in code, and the naming of their models. `api_key`, `base_url` and `proxies`
    apply to every provider that does not set its own. With an `image_provider` only, it chats too; with neither,
    the provider is kind "openai" (any compatible endpoint: `base_url`, else api.openai.com)."""
    provider = provider or image_provider or "openai"
    chain = provider.providers if isinstance(provider, RetryProvider) else [_as_provider(provider)]
    retries = None
    if isinstance(provider, RetryProvider):
        retries = provider.max_retries if provider.single_provider_retry else 0
    proxy = _proxy(proxies)
    tables: dict[str, dict[str, Any]] = {}
    keys: dict[str, str | None] = {}
    for item in chain:
        name = _unique(item.kind, tables)
        tables[name] = _table(item, base_url=base_url, proxy=proxy, retries=retries)
        keys[name] = item.api_key or api_key
    if image_provider is not None:
        item = _as_provider(image_provider)
        tables[IMAGES] = _table(item, base_url=base_url, proxy=proxy, retries=None)
        keys[IMAGES] = item.api_key or api_key
    settings = Settings(app={"embedded_model": False}, providers=tables)
    for name, key in keys.items():
        config = settings.providers[name]
        if isinstance(config, _HTTPProviderBase):
            config.use_key(key)
    return settings, Naming(settings, [name for name in tables if name != IMAGES])


def _as_provider(given: str | Provider) -> Provider:
    return given if isinstance(given, Provider) else Provider(given)


def _unique(kind: str, taken: dict[str, Any]) -> str:
    name, number = kind, 1
    while name in taken:
        number += 1
        name = f"{kind}-{number}"
    return name


def _table(item: Provider, *, base_url: str | None, proxy: str | None, retries: int | None) -> dict[str, Any]:
    """The configuration table of one provider."""
    if item.kind in (LOCAL_PROVIDER, "llama_cpp"):
        return {"kind": "llama_cpp", **item.options}
    table: dict[str, Any] = {"kind": item.kind, "api_key_env": None, "models": []}
    endpoint = item.base_url or base_url or (OPENAI_URL if item.kind == "openai" else None)
    if endpoint:
        table["base_url"] = endpoint
    if proxy and "proxy" not in item.options:
        table["proxy"] = proxy
    if retries is not None:
        table["max_retries"] = retries
    return {**table, **item.options}


def _proxy(proxies: str | dict[str, str] | None) -> str | None:
    """g4f's `proxies`: a URL, or a mapping as requests takes it ({"all": ...}, {"https": ...})."""
    if proxies is None or isinstance(proxies, str):
        return proxies or None
    for scheme in ("all", "https", "http"):
        if proxies.get(scheme):
            return proxies[scheme]
    return None
