"""`create_client`: one provider and one model, configured in code, with plain-text helpers (seed 002's shape).

    client = create_client(provider="openai", api_key="sk-...", endpoint="https://api.openai.com/v1",
                           model_name="gpt-4o-mini")
    texts = client.run_chat_completions([{"role": "user", "content": "Hi"}], max_tokens=64)
    for piece in client.run_chat_completions_stream([{"role": "user", "content": "Hi"}]):
        print(piece, end="")

It builds a one-provider configuration and runs on the same services as the app and `Client`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..config import LOCAL_MODEL, LOCAL_PROVIDER, Settings
from ..errors import SwitchboardError
from ..providers import adapters
from ..providers._config_base import _HTTPProviderBase
from ..request import Message
from .sync_client import Client


def create_client(
    provider: str = LOCAL_PROVIDER,
    api_key: str | None = None,
    endpoint: str | None = None,
    model_name: str | None = None,
    **provider_options: Any,
) -> ChatClient:
    """A client for one model. `provider` is a kind: openai (any compatible endpoint), ollama, anthropic, gemini,
    or "local" for the embedded model. `provider_options` are that kind's config fields (timeouts, headers...)."""
    if provider in (LOCAL_PROVIDER, "llama_cpp"):
        settings = Settings(providers={LOCAL_PROVIDER: {"kind": "llama_cpp", **provider_options}})
        return ChatClient(Client(settings=settings), f"{LOCAL_PROVIDER}/{model_name or LOCAL_MODEL}")
    remote = _remote_chat_configs()
    if provider not in remote:
        raise ValueError(f"unknown provider {provider!r}: use one of local, {', '.join(remote)}")
    if not model_name:
        raise ValueError("model_name is required for remote providers")
    table = {
        "kind": provider,
        "base_url": endpoint or remote[provider].default_endpoint(),
        "api_key_env": None,
        "models": [model_name],
        **provider_options,
    }
    settings = Settings(app={"embedded_model": False}, providers={provider: table})
    config = settings.providers[provider]
    assert isinstance(config, _HTTPProviderBase)
    config.use_key(api_key)
    return ChatClient(Client(settings=settings), f"{provider}/{model_name}")


def _remote_chat_configs() -> dict[str, type[_HTTPProviderBase]]:
    """The config class of every registered kind that chats over HTTP, by kind."""
    return {
        kind: adapter.config_class
        for kind, adapter in adapters().items()
        if "chat" in adapter.tasks and issubclass(adapter.config_class, _HTTPProviderBase)
    }


class ChatClient:
    """Plain-text chat helpers bound to one model."""

    def __init__(self, client: Client, model: str) -> None:
        self.client = client
        self.model = model

    def run_chat_completions(
        self,
        messages: list[Message],
        max_tokens: int = 256,
        temperature: float = 0,
        top_p: float = 1.0,
        n: int = 1,
        timeout: float = 30,
        guided_json: dict[str, Any] | None = None,
        return_error: bool = False,
    ) -> list[str] | tuple[list[str], SwitchboardError | None]:
        """The reply texts, one per choice (`n`). `guided_json` (a JSON schema) constrains the output.

        With `return_error=True` nothing is raised: the result is `(texts, None)` or `([], error)`."""
        try:
            reply = self.client.chat.completions.create(
                model=self.model,
                messages=_texts_as_content(messages),
                **_params(max_tokens, temperature, top_p, n, timeout, guided_json),
            )
        except SwitchboardError as error:
            if return_error:
                return [], error
            raise
        texts = [choice.message.content or "" for choice in reply.choices]
        return (texts, None) if return_error else texts

    def run_chat_completions_stream(
        self,
        messages: list[Message],
        max_tokens: int = 256,
        temperature: float = 0,
        top_p: float = 1.0,
        n: int = 1,
        timeout: float = 30,
        guided_json: dict[str, Any] | None = None,
        return_error: bool = False,
    ) -> Iterator[str]:
        """The reply text as it streams. With `return_error=True` a failure ends the stream with its message."""
        chunks = self.client.chat.completions.create(
            model=self.model,
            messages=_texts_as_content(messages),
            stream=True,
            **_params(max_tokens, temperature, top_p, n, timeout, guided_json),
        )
        try:
            for chunk in chunks:
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield choice.delta.content
        except SwitchboardError as error:
            if not return_error:
                raise
            yield f"[error] {error.user_message()}"

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _texts_as_content(messages: list[Message]) -> list[Message]:
    """Messages whose content is a list of plain strings (a `run_chat_completions` result put back into the
    conversation, as seed 002's multi-turn example does) with that content as text: providers take a string or
    content parts, never bare strings. Several texts (n > 1) are kept, a blank line apart."""
    return [
        {**message, "content": "\n\n".join(content)}
        if isinstance(content := message.get("content"), list) and content and all(isinstance(p, str) for p in content)
        else message
        for message in messages
    ]


def _params(
    max_tokens: int,
    temperature: float,
    top_p: float,
    n: int,
    timeout: float,
    guided_json: dict[str, Any] | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "timeout": timeout}
    if n != 1:
        params["n"] = n
    if guided_json is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "guided", "schema": guided_json},
        }
    return params
