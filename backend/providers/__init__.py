"""Provider adapters, one module per wire protocol, registered by config `kind`.

`ADAPTER_MODULES` is the one registry: each module there names its adapter class `ADAPTER`, and that class
declares its `kind` and its `config_class`. The config union (`backend.config`), `create_provider` and
`create_client` all read it, so adding a provider kind is one module and one line here. Adapter modules import
no heavy library at load time (llama-cpp-python loads when the local model is first used).
"""

from __future__ import annotations

import functools
from importlib import import_module
from typing import Any

from ._config_base import _ProviderBase
from .base import ModelInfo, Provider

# In the order kinds are listed to people (config errors, `create_client`).
ADAPTER_MODULES = ("openai", "ollama", "anthropic", "gemini", "automatic1111", "llama_cpp")


@functools.cache
def adapters() -> dict[str, type[Provider[Any]]]:
    """Every adapter class by its kind, in registry order."""
    found: dict[str, type[Provider[Any]]] = {}
    for module_name in ADAPTER_MODULES:
        adapter: type[Provider[Any]] = import_module(f"{__name__}.{module_name}").ADAPTER
        found[adapter.kind] = adapter
    return found


def create_provider(name: str, config: _ProviderBase) -> Provider[Any]:
    """Build the adapter for one `[providers.NAME]` table."""
    return adapters()[config.kind](name, config)


__all__ = ["ADAPTER_MODULES", "ModelInfo", "Provider", "adapters", "create_provider"]
