"""Provider adapters, one module per wire protocol, registered by config `kind`.

Adapters are imported on first use so `import backend` stays fast (llama-cpp-python alone takes a while).
"""

from __future__ import annotations

from importlib import import_module

from .base import Provider

ADAPTERS: dict[str, str] = {
    "openai": "backend.providers.openai:OpenAIProvider",
    "llama_cpp": "backend.providers.llama_cpp:LlamaCppProvider",
    "ollama": "backend.providers.ollama:OllamaProvider",
    "anthropic": "backend.providers.anthropic:AnthropicProvider",
    "gemini": "backend.providers.gemini:GeminiProvider",
    "automatic1111": "backend.providers.automatic1111:Automatic1111Provider",
}


def create_provider(name: str, config) -> Provider:
    """Build the adapter for one `[providers.NAME]` table."""
    module_name, _, class_name = ADAPTERS[config.kind].partition(":")
    adapter = getattr(import_module(module_name), class_name)
    return adapter(name, config)


__all__ = ["ADAPTERS", "Provider", "create_provider"]
