"""What every provider's `[providers.NAME]` table has in common; each adapter module adds its own fields.

Kept apart from the adapters' code so `backend.config` and every adapter module can import it without cycles.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator


def http_url(value: str, shown: int | None = None) -> str:
    """`value` without a trailing slash, if it is an http(s) URL (ValueError otherwise, quoting it, or its first
    `shown` characters)."""
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https:// (got {value[:shown]!r})")
    return value.rstrip("/")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ProviderBase(_Strict):
    """Fields every provider has, whatever it speaks. Subclasses set `kind` to their one `Literal`."""

    kind: str
    max_retries: int = Field(2, ge=0, le=10, description="retries before the first token, per provider")
    first_token_timeout: float | None = Field(
        120.0, gt=0, description="longest wait from sending a request to the first output of the reply"
    )
    idle_timeout: float | None = Field(
        30.0,
        gt=0,
        validation_alias=AliasChoices("idle_timeout", "read_timeout"),  # read_timeout: its name before 0.2
        description="longest silence between two outputs once the reply streams",
    )
    cooldown: float = Field(10.0, ge=0, description="seconds a model is skipped after repeated failures")
    failures_before_cooldown: int = Field(3, ge=1, description="consecutive failures that start a cooldown")

    @model_validator(mode="before")
    @classmethod
    def _no_keys_in_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "API keys are never stored in the config file: export the key in an environment variable and "
                'name it with api_key_env = "NAME"'
            )
        return data

    def model_names(self) -> list[str]:
        """Chat-capable models; empty: ask the endpoint."""
        return []

    def vision_names(self) -> list[str]:
        return []

    def image_names(self) -> list[str]:
        return []

    def tool_names(self) -> list[str]:
        """Models the app may offer its own tools ([tools.*]) to."""
        return []

    def embedding_names(self) -> list[str]:
        """Models that turn text into vectors (knowledge's search by meaning)."""
        return []

    def context_length(self, model: str) -> int | None:
        """Tokens of context `model` takes, when the configuration says."""
        return None

    def reasons(self, model: str) -> bool:
        """Whether the configuration says `model` thinks before it answers."""
        return False


class _HTTPProviderBase(_ProviderBase):
    """Fields every provider reached over HTTP has. Model lists say what each model can do."""

    base_url: str
    api_key_env: str | None = None
    models: list[str] = Field(default_factory=list, description="chat models; empty: ask the endpoint")
    vision_models: list[str] = Field(default_factory=list, description="models that also read images")
    image_models: list[str] = Field(default_factory=list, description="models that generate images")
    tool_models: list[str] = Field(
        default_factory=list, description="models that call tools: the app's own tools ([tools.*]) go only to them"
    )
    embedding_models: list[str] = Field(
        default_factory=list, description="models that turn text into vectors: knowledge searches by meaning with them"
    )
    reasoning_models: list[str] = Field(
        default_factory=list, description="models that think before they answer (their reasoning shows apart)"
    )
    context_lengths: dict[str, int] = Field(
        default_factory=dict, description="tokens of context per model, where known: shown beside the picker"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    proxy: str | None = None
    connect_timeout: float = Field(10.0, gt=0)
    retry_after_cap: float = Field(20.0, ge=0, description="longer Retry-After waits fail over instead")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("api_key_env")
    @classmethod
    def _key_is_set(cls, name: str | None) -> str | None:
        if name is not None and not os.environ.get(name):
            raise ValueError(f"environment variable {name} is not set (it should hold this provider's API key)")
        return name

    # A key handed over in code (create_client), never read from a file.
    _given_key: str | None = PrivateAttr(None)

    @classmethod
    def default_endpoint(cls) -> str | None:
        """The endpoint `create_client` uses when given none: the `base_url` default, if the kind has one."""
        default = cls.model_fields["base_url"].default
        return default if isinstance(default, str) else None

    def use_key(self, key: str | None) -> None:
        self._given_key = key

    def api_key(self) -> str | None:
        if self._given_key:
            return self._given_key
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def model_names(self) -> list[str]:
        """Chat-capable models: `models`, then vision and tool models not already listed."""
        return list(dict.fromkeys([*self.models, *self.vision_models, *self.tool_models]))

    def vision_names(self) -> list[str]:
        return list(self.vision_models)

    def image_names(self) -> list[str]:
        return list(self.image_models)

    def tool_names(self) -> list[str]:
        return list(self.tool_models)

    def embedding_names(self) -> list[str]:
        return list(self.embedding_models)

    def context_length(self, model: str) -> int | None:
        return self.context_lengths.get(model)

    def reasons(self, model: str) -> bool:
        return model in self.reasoning_models
