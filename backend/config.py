"""The one typed configuration model, loaded from TOML with pydantic-settings.

Where the file comes from, first match wins: an explicit path (`--config`), `$SWITCHBOARD_CONFIG`, `./config.toml`,
`$XDG_CONFIG_HOME/switchboard/config.toml` (default `~/.config/switchboard/config.toml`). No file at all is valid:
the app then runs on the embedded local model alone.

Single fields can be overridden from the environment with `SWITCHBOARD_` and `__` between levels, e.g.
`SWITCHBOARD_APP__PORT=8000` or `SWITCHBOARD_PROVIDERS__OPENAI__BASE_URL=http://127.0.0.1:8080/v1`.
API keys never live in the file: a provider names the environment variable that holds its key (`api_key_env`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from .errors import ConfigError

LOCAL_PROVIDER = "local"
LOCAL_MODEL = "gemma-3-270m"
ENV_CONFIG = "SWITCHBOARD_CONFIG"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppConfig(_Strict):
    """How the web app runs."""

    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    max_upload_mb: float = Field(10, gt=0)
    concurrency: int = Field(16, ge=1, description="replies streamed at once through the UI, for all visitors")
    max_sessions: int = Field(
        1000, ge=10, description="browser sessions whose state the server keeps (about 150 KB each); older ones go"
    )
    stream_interval_ms: int = Field(40, ge=0, le=1000, description="how often the UI pushes streamed text")
    updates_per_second: float = Field(
        100, gt=0, description="UI updates a second for all streaming replies together; more replies, slower each"
    )
    embedded_model: bool = Field(True, description="offer the bundled offline model as provider 'local'")
    data_dir: Path = Field(Path("~/.local/share/switchboard"), description="generated images and their details")
    allow_private_image_urls: bool = Field(False, description="let image URLs point at private/loopback hosts")
    image_fetch_timeout: float = Field(15.0, gt=0)
    # Per visitor (the logged-in user; without logins, the client address), across chat, images, vision and API.
    max_concurrent_per_visitor: int = Field(3, ge=0, description="replies generated at once; 0: no limit")
    max_requests_per_minute: int = Field(30, ge=0, description="requests started in any 60 s; 0: no limit")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)


class AuthConfig(_Strict):
    """Logins for a shared instance. Both empty: no login (local use, one owner). Never passwords in this file."""

    users_file: Path | None = Field(None, description="name:hash lines, made with `switchboard passwd NAME`")
    users_env: str | None = Field(None, description="an environment variable holding alice:pw1,bob:pw2")

    @property
    def enabled(self) -> bool:
        return self.users_file is not None or self.users_env is not None


class Defaults(_Strict):
    """What each tab starts with: a `provider/model` id (or, for chat, a route name). Empty: the first capable."""

    chat: str | None = None
    image: str | None = None
    vision: str | None = None
    title: str | None = Field(None, description="a chat model that names new conversations; empty: first words")


class _ProviderBase(_Strict):
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
    def _no_keys_in_file(cls, data):
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "API keys are never stored in the config file: export the key in an environment variable and "
                'name it with api_key_env = "NAME"'
            )
        return data


class _HTTPProviderBase(_ProviderBase):
    """Fields every provider reached over HTTP has. Model lists say what each model can do."""

    base_url: str
    api_key_env: str | None = None
    models: list[str] = Field(default_factory=list, description="chat models; empty: ask the endpoint")
    vision_models: list[str] = Field(default_factory=list, description="models that also read images")
    image_models: list[str] = Field(default_factory=list, description="models that generate images")
    headers: dict[str, str] = Field(default_factory=dict)
    proxy: str | None = None
    connect_timeout: float = Field(10.0, gt=0)
    retry_after_cap: float = Field(20.0, ge=0, description="longer Retry-After waits fail over instead")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _key_is_set(cls, name: str | None) -> str | None:
        if name is not None and not os.environ.get(name):
            raise ValueError(f"environment variable {name} is not set (it should hold this provider's API key)")
        return name

    # A key handed over in code (create_client), never read from a file.
    _given_key: str | None = PrivateAttr(None)

    def use_key(self, key: str | None) -> None:
        self._given_key = key

    def api_key(self) -> str | None:
        if self._given_key:
            return self._given_key
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def model_names(self) -> list[str]:
        """Chat-capable models: `models`, then vision models not already listed."""
        return list(dict.fromkeys([*self.models, *self.vision_models]))

    def vision_names(self) -> list[str]:
        return list(self.vision_models)

    def image_names(self) -> list[str]:
        return list(self.image_models)


class OpenAIProviderConfig(_HTTPProviderBase):
    """Any OpenAI-compatible endpoint: OpenAI, OpenRouter, Groq, vLLM, llama.cpp server, LM Studio, Ollama's /v1.
    Its `image_models` use `/images/generations`."""

    kind: Literal["openai"]
    stream_usage: bool = Field(True, description="ask for token usage at the end of a stream")
    continuation: Literal["prompt", "prefill"] = Field(
        "prompt",
        description="how this endpoint continues an answer another provider left unfinished: prompt (any "
        "model) or prefill (vLLM, SGLang, TGI: continue_final_message)",
    )


class OllamaProviderConfig(_HTTPProviderBase):
    """Ollama's native API: /api/chat (NDJSON stream), /api/tags for the model list."""

    kind: Literal["ollama"]
    base_url: str = "http://127.0.0.1:11434"
    keep_alive: str | None = Field(None, description='how long Ollama keeps the model loaded, e.g. "5m"')


class AnthropicProviderConfig(_HTTPProviderBase):
    """Anthropic's Messages API (SSE)."""

    kind: Literal["anthropic"]
    base_url: str = "https://api.anthropic.com"
    api_key_env: str | None = "ANTHROPIC_API_KEY"
    anthropic_version: str = "2023-06-01"
    max_tokens: int = Field(4096, ge=1, description="used when a request sets none (the API requires one)")
    thinking_budget: int | None = Field(
        None,
        ge=1024,
        description="enable extended thinking with this budget; it is added to max_tokens, and temperature is "
        "left at the API's default (thinking requires it)",
    )


class GeminiProviderConfig(_HTTPProviderBase):
    """Google's Gemini API (streamGenerateContent with SSE)."""

    kind: Literal["gemini"]
    base_url: str = "https://generativelanguage.googleapis.com/v1beta"
    api_key_env: str | None = "GEMINI_API_KEY"
    include_thoughts: bool = Field(True, description="stream the model's thought summaries as reasoning")


class Automatic1111ProviderConfig(_HTTPProviderBase):
    """An AUTOMATIC1111 / Forge Stable Diffusion server (/sdapi/v1/txt2img); image generation only.
    Each `image_models` entry is a checkpoint name, or "default" for whatever the server has loaded."""

    kind: Literal["automatic1111"]
    base_url: str = "http://127.0.0.1:7861"
    image_models: list[str] = Field(default_factory=lambda: ["default"])
    steps: int = Field(20, ge=1, le=150)
    cfg_scale: float = Field(7.0, ge=1, le=30)
    sampler_name: str | None = None
    idle_timeout: float | None = Field(
        300.0,
        gt=0,
        validation_alias=AliasChoices("idle_timeout", "read_timeout"),
        description="image generation can take minutes on a CPU",
    )

    def model_names(self) -> list[str]:
        return []


class LlamaCppProviderConfig(_ProviderBase):
    """A GGUF model run in-process by llama-cpp-python; by default the bundled Gemma 3 270M."""

    kind: Literal["llama_cpp"]
    model: str = LOCAL_MODEL
    model_path: Path | None = Field(None, description="a GGUF file; empty: the bundled Gemma 3 270M")
    n_ctx: int = Field(4096, ge=256)
    n_threads: int | None = Field(None, ge=1)
    max_retries: int = Field(0, ge=0, le=10)
    # In-process: a reply may wait behind others in the model's queue, and nothing can stall on a network.
    first_token_timeout: float | None = None
    idle_timeout: float | None = None

    def model_names(self) -> list[str]:
        return [self.model]

    def vision_names(self) -> list[str]:
        return []

    def image_names(self) -> list[str]:
        return []


KINDS = ("openai", "ollama", "anthropic", "gemini", "automatic1111", "llama_cpp")
ProviderConfig = Annotated[
    OpenAIProviderConfig
    | OllamaProviderConfig
    | AnthropicProviderConfig
    | GeminiProviderConfig
    | Automatic1111ProviderConfig
    | LlamaCppProviderConfig,
    Field(discriminator="kind"),
]


class Settings(BaseSettings):
    """The whole configuration. Build it with `load_settings()`, which finds the file and reports errors."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", env_nested_delimiter="__", extra="forbid")

    app: AppConfig = Field(default_factory=AppConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    defaults: Defaults = Field(default_factory=Defaults)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    routes: dict[str, list[str]] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: explicit arguments, then single fields from the environment, then the TOML file.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    @model_validator(mode="after")
    def _complete_and_consistent(self) -> Settings:
        for name in self.providers:
            if "/" in name or not name:
                raise ValueError(f"provider name {name!r} must be non-empty and contain no '/'")
        if self.app.embedded_model and LOCAL_PROVIDER not in self.providers:
            self.providers[LOCAL_PROVIDER] = LlamaCppProviderConfig(kind="llama_cpp")
        if not self.providers:
            raise ValueError("no providers: add a [providers.NAME] table or set app.embedded_model = true")
        for route, targets in self.routes.items():
            if route in self.providers or "/" in route:
                raise ValueError(f"route name {route!r} must contain no '/' and differ from every provider name")
            if not targets:
                raise ValueError(f"routes.{route} is empty: list at least one provider/model")
            for target in targets:
                problem = self._unknown_model(target)
                if problem:
                    raise ValueError(f"routes.{route}: {problem}")
        if self.defaults.chat is None:
            self.defaults.chat = self._first_chat_model()
        elif self.defaults.chat not in self.routes:
            problem = self._unknown_model(self.defaults.chat)
            if problem:
                raise ValueError(f"defaults.chat: {problem}")
        if self.defaults.title is not None and self.defaults.title not in self.routes:
            problem = self._unknown_model(self.defaults.title)
            if problem:
                raise ValueError(f"defaults.title: {problem}")
        for task in ("image", "vision"):
            capable = self.capable_models(task)
            chosen = getattr(self.defaults, task)
            if chosen is None:
                setattr(self.defaults, task, capable[0] if capable else None)
            elif chosen not in capable:
                offered = ", ".join(capable) or f"none: list models under {task}_models of a provider"
                raise ValueError(f"defaults.{task}: {chosen!r} is not a configured {task} model ({offered})")
        return self

    def capable_models(self, task: str) -> list[str]:
        """Every `provider/model` id configured for `task`: "chat", "vision" or "image"."""
        names = {"chat": "model_names", "vision": "vision_names", "image": "image_names"}[task]
        return [f"{p}/{m}" for p, config in self.providers.items() for m in getattr(config, names)()]

    def _unknown_model(self, model_id: str) -> str | None:
        provider, _, model = model_id.partition("/")
        if not model:
            return f"{model_id!r} is not of the form provider/model"
        config = self.providers.get(provider)
        if config is None:
            return f"{model_id!r} names provider {provider!r}, which is not configured"
        declared = config.model_names()
        if declared and model not in declared:
            return f"{model_id!r}: provider {provider!r} has no model {model!r} (it lists {', '.join(declared)})"
        return None

    def _first_chat_model(self) -> str:
        if LOCAL_PROVIDER in self.providers:
            return f"{LOCAL_PROVIDER}/{self.providers[LOCAL_PROVIDER].model_names()[0]}"
        for name, config in self.providers.items():
            if config.model_names():
                return f"{name}/{config.model_names()[0]}"
        return next(iter(self.routes), f"{next(iter(self.providers))}/default")


def find_config_file(explicit: str | os.PathLike | None = None) -> Path | None:
    """The config file to read, in the documented search order, or None when there is none."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (given with --config)")
        return path
    from_env = os.environ.get(ENV_CONFIG)
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (named by ${ENV_CONFIG})")
        return path
    candidates = [Path("config.toml"), _user_config_dir() / "config.toml"]
    return next((path for path in candidates if path.is_file()), None)


def _user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "switchboard"


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Find, read and validate the configuration; any problem is a ConfigError with one line naming file and field."""
    file = find_config_file(path)
    label = str(file) if file else "configuration"
    if file is not None:
        try:
            tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: invalid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read: {exc}") from None
    settings_cls = type("FileSettings", (Settings,), {"model_config": SettingsConfigDict(toml_file=file)})
    try:
        return settings_cls()
    except ValidationError as exc:
        raise ConfigError(f"{label}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = _field_path(first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "union_tag_invalid":
        message = f"unknown kind {first['input'].get('kind')!r} (expected one of: {', '.join(KINDS)})"
    elif first["type"] == "union_tag_not_found":
        message = f'missing "kind" (one of: {", ".join(KINDS)})'
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{loc + ': ' if loc else ''}{message}{more}"


def _field_path(loc: tuple) -> str:
    parts = [str(part) for part in loc]
    # pydantic puts the union tag in the location (providers.openai.openai.base_url); readers want the TOML path.
    if len(parts) >= 3 and parts[0] == "providers" and parts[2] in KINDS:
        del parts[2]
    return ".".join(parts)
