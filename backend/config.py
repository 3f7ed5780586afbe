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
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypeAlias, Union

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from .errors import ConfigError
from .providers import adapters
from .providers._config_base import _ProviderBase, _Strict, http_url
from .providers.anthropic import AnthropicProviderConfig
from .providers.automatic1111 import Automatic1111ProviderConfig
from .providers.gemini import GeminiProviderConfig
from .providers.llama_cpp import LOCAL_MODEL, LlamaCppProviderConfig
from .providers.ollama import OllamaProviderConfig
from .providers.openai import OpenAIProviderConfig

LOCAL_PROVIDER = "local"
ENV_CONFIG = "SWITCHBOARD_CONFIG"

__all__ = [
    "ENV_CONFIG",
    "KINDS",
    "LOCAL_MODEL",
    "LOCAL_PROVIDER",
    "AnthropicProviderConfig",
    "AppConfig",
    "AuthConfig",
    "Automatic1111ProviderConfig",
    "Defaults",
    "GeminiProviderConfig",
    "KnowledgeConfig",
    "LlamaCppProviderConfig",
    "McpToolConfig",
    "OllamaProviderConfig",
    "OpenAIProviderConfig",
    "ProviderConfig",
    "Settings",
    "ToolConfig",
    "WebSearchToolConfig",
    "find_config_file",
    "load_settings",
]


class AppConfig(_Strict):
    """How the web app runs."""

    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    max_upload_mb: float = Field(10, gt=0)
    max_upload_folder_mb: float = Field(
        2000, ge=0, description="MB Gradio's upload folder may hold (uploads, files it serves); 0: no limit"
    )
    upload_kept_minutes: float = Field(
        60, gt=0, description="uploads are deleted this long after they arrive (a sent message keeps its own copy)"
    )
    concurrency: int = Field(16, ge=1, description="replies streamed at once through the UI, for all visitors")
    max_sessions: int = Field(
        1000, ge=10, description="browser sessions whose state the server keeps (about 200 KB each); older ones go"
    )
    stream_interval_ms: int = Field(40, ge=0, le=1000, description="how often the UI pushes streamed text")
    updates_per_second: float = Field(
        100, gt=0, description="UI updates a second for all streaming replies together; more replies, slower each"
    )
    embedded_model: bool = Field(True, description="offer the bundled offline model as provider 'local'")
    data_dir: Path = Field(Path("~/.local/share/switchboard"), description="generated images and their details")
    allow_private_image_urls: bool = Field(False, description="let image URLs point at private/loopback hosts")
    image_fetch_timeout: float = Field(15.0, gt=0)
    document_read_timeout: float = Field(
        20.0, gt=0, description="CPU seconds reading one attached PDF may take (2,000 pages of text: ~6 s)"
    )
    # Per visitor (the logged-in user; without logins, the client address), across chat, images, vision and API.
    max_concurrent_per_visitor: int = Field(3, ge=0, description="replies generated at once; 0: no limit")
    max_requests_per_minute: int = Field(30, ge=0, description="requests started in any 60 s; 0: no limit")
    max_upload_mb_per_hour: float = Field(200, ge=0, description="MB uploaded in any hour; 0: no limit")
    max_message_chars: int = Field(
        200_000, ge=1, description="longest message, system prompt or preset a visitor may send, save or import"
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="other web origins whose pages may call this app with its logins (CORS)"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses of reverse proxies whose X-Forwarded-For names the visitor (e.g. 127.0.0.1)",
    )
    # A reply that calls tools ([tools.*]): how far it may go before it stops with one sentence.
    max_tool_steps: int = Field(8, ge=1, le=100, description="rounds of tool calls in one reply")
    tool_deadline: float = Field(
        300.0, gt=0, description="seconds one reply may spend on its tool steps, waiting for confirmations included"
    )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)


_PASSWORD_IN_URL = "holds a password: put it in an environment variable and name it with password_env"


class _PasswordFromEnvironment(_Strict):
    """A service reached by URL whose password (if any) is in the environment variable `password_env` names."""

    password_env: str | None = Field(None, description="environment variable holding the password")

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None


class StoreConfig(_PasswordFromEnvironment):
    """Where conversations live: one SQLite file under app.data_dir by default, or a PostgreSQL database shared
    by several app processes. The password never goes in this file: name the variable that holds it."""

    url: str = Field("", description="empty: SQLite at data_dir/switchboard.db; or postgresql+asyncpg://USER@HOST/DB")

    @field_validator("url")
    @classmethod
    def _supported_without_password(cls, value: str) -> str:
        if not value:
            return value
        # (sqlite+aiosqlite:/// is what an earlier version asked for: still read, the same file.)
        if not value.startswith(("sqlite:///", "sqlite+aiosqlite:///", "postgresql+asyncpg://")):
            raise ValueError(f"must start with sqlite:/// or postgresql+asyncpg:// (got {value[:40]!r})")
        from sqlalchemy.engine import make_url

        try:
            password = make_url(value).password
        except Exception:
            raise ValueError("is not a database URL") from None
        if password:
            raise ValueError(_PASSWORD_IN_URL)
        return value

    @field_validator("password_env")
    @classmethod
    def _password_is_set(cls, name: str | None) -> str | None:
        if name is not None and not os.environ.get(name):
            raise ValueError(f"environment variable {name} is not set (it should hold the database password)")
        return name


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


class KnowledgeConfig(_Strict):
    """Knowledge: files split into chunks, indexed, and the best chunks for each question sent with it. Searched by
    the words of the store's full-text index with nothing configured; by meaning too with an embedding model."""

    context_share: float = Field(
        0.5, gt=0, le=0.9, description="share of the model's context the sources sent with a question may take"
    )
    chunk_tokens: int = Field(500, ge=50, le=8000, description="tokens of text in a chunk, about (4 characters each)")
    overlap_tokens: int = Field(
        50, ge=0, description="tokens a chunk repeats of the one before it in the same passage, so no sentence is cut"
    )
    max_knowledge_mb: float = Field(
        100, ge=0, description="MB of files one owner's knowledge may hold, every collection together; 0: no limit"
    )
    embedding_model: str = Field(
        "", description="a provider/model listed under its provider's embedding_models; empty: search by words only"
    )

    @model_validator(mode="after")
    def _overlap_below_half(self) -> KnowledgeConfig:
        if self.overlap_tokens * 2 > self.chunk_tokens:
            raise ValueError(f"overlap_tokens must be at most half of chunk_tokens ({self.chunk_tokens // 2})")
        return self


# Each adapter module declares its config class; the union is whatever backend.providers registers.
KINDS: tuple[str, ...] = tuple(adapters())
if TYPE_CHECKING:
    ProviderConfig: TypeAlias = _ProviderBase
else:
    ProviderConfig = Annotated[
        Union[tuple(adapter.config_class for adapter in adapters().values())],  # noqa: UP007 (a runtime union)
        Field(discriminator="kind"),
    ]


class _ToolBase(_Strict):
    """What every `[tools.NAME]` table has, whatever the tool. Subclasses set `kind` to their one `Literal`."""

    kind: str
    confirm: bool = Field(False, description="each call waits for the person's OK (Approve / Deny)")
    shared: bool = Field(
        False, description="visitors of a shared instance other than admins may use it (default: owner and admins)"
    )
    default: bool = Field(False, description="on in new chats; otherwise each chat turns it on")
    timeout: float = Field(30.0, gt=0, description="seconds one call may take before it is cancelled")
    max_result_chars: int = Field(
        100_000, ge=100, description="a longer result is cut to this many characters before the model reads it"
    )


class McpToolConfig(_ToolBase):
    """An MCP server: a command run over stdio (`command`, `env`, `pass_env`, `cwd`) or a streamable-HTTP
    endpoint (`url`, `headers_env`). Each of its tools reaches the model as `NAME__TOOL`."""

    kind: Literal["mcp"]
    command: list[str] = Field(default_factory=list, description="the server's program and its arguments")
    env: dict[str, str] = Field(default_factory=dict, description="variables set for the server (no secrets)")
    pass_env: list[str] = Field(
        default_factory=list, description="names of the app's environment variables passed on to the server"
    )
    cwd: Path | None = Field(None, description="the server's working directory")
    url: str = Field("", description="a streamable-HTTP server's endpoint, e.g. http://127.0.0.1:8000/mcp")
    headers_env: dict[str, str] = Field(
        default_factory=dict, description="HTTP header name -> environment variable holding its value"
    )
    allowed_tools: list[str] | None = Field(None, description="only these of the server's tools; empty: all")
    start_timeout: float = Field(60.0, gt=0, description="seconds the server may take to start and list its tools")

    @model_validator(mode="after")
    def _one_transport(self) -> McpToolConfig:
        if bool(self.command) == bool(self.url):
            raise ValueError('give either command = ["program", "arg", ...] (stdio) or url = "http://..." (HTTP)')
        if self.url:
            try:
                http_url(self.url, 40)
            except ValueError as error:
                raise ValueError(f"url {error}") from None
        if self.command and (self.headers_env or not self.command[0]):
            raise ValueError("headers_env is for url servers; command needs a program name first")
        if self.url and (self.env or self.pass_env or self.cwd):
            raise ValueError("env, pass_env and cwd are for command servers (stdio)")
        for header, variable in self.headers_env.items():
            if not os.environ.get(variable):
                raise ValueError(f"headers_env.{header}: environment variable {variable} is not set")
        for variable in self.pass_env:
            if variable not in os.environ:
                raise ValueError(f"pass_env: environment variable {variable} is not set")
        return self


class WebSearchToolConfig(_ToolBase):
    """Web search through a SearXNG instance's JSON API (its `search.formats` must include json)."""

    kind: Literal["web_search"]
    url: str = Field(description="the SearXNG instance, e.g. https://searx.example.org")
    max_results: int = Field(5, ge=1, le=20, description="results given to the model per search")
    allow_private: bool = Field(
        False, description="let url point at a loopback or private address (a SearXNG on this machine)"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value, 40)


if TYPE_CHECKING:
    ToolConfig: TypeAlias = McpToolConfig | WebSearchToolConfig
else:
    ToolConfig = Annotated[McpToolConfig | WebSearchToolConfig, Field(discriminator="kind")]
TOOL_KINDS = ("mcp", "web_search")
# A tool's name is part of the function names models see, which most APIs limit to these characters.
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


class RedisConfig(_PasswordFromEnvironment):
    """What is live, shared by several app processes (replicas) behind a load balancer: replies being written (a
    page on any replica follows and stops them), and limits. Empty: one process, which keeps them itself. The
    password never goes in this file: name the variable that holds it."""

    url: str = Field("", description="empty: one app process; or redis://HOST:PORT/DB (rediss:// for TLS)")

    @field_validator("url")
    @classmethod
    def _redis_url_without_password(cls, value: str) -> str:
        if not value:
            return value
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must start with redis://, rediss:// or unix:// (got {value[:40]!r})")
        from urllib.parse import urlsplit

        if urlsplit(value).password:
            raise ValueError(_PASSWORD_IN_URL)
        return value


class Settings(BaseSettings):
    """The whole configuration. Build it with `load_settings()`, which finds the file and reports errors."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", env_nested_delimiter="__", extra="forbid")

    app: AppConfig = Field(default_factory=AppConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    defaults: Defaults = Field(default_factory=Defaults)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    routes: dict[str, list[str]] = Field(default_factory=dict)
    tools: dict[str, ToolConfig] = Field(default_factory=dict)
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)

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
        self._embedding_models_consistent()
        for name in self.tools:
            if not _TOOL_NAME.fullmatch(name):
                raise ValueError(f"tool name {name!r} must be 1 to 40 letters, digits, '_' or '-'")
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
        """Every `provider/model` id configured for `task`: "chat", "vision", "image", "tools" or "embeddings"."""
        names = {
            "chat": "model_names",
            "vision": "vision_names",
            "image": "image_names",
            "tools": "tool_names",
            "embeddings": "embedding_names",
        }[task]
        return [f"{p}/{m}" for p, config in self.providers.items() for m in getattr(config, names)()]

    def _embedding_models_consistent(self) -> None:
        """Embedding models only on kinds that make embeddings; knowledge's model one of them."""
        embedders = [kind for kind, adapter in adapters().items() if "embed" in adapter.tasks]
        for name, config in self.providers.items():
            if config.embedding_names() and config.kind not in embedders:
                raise ValueError(
                    f"providers.{name}.embedding_models: {config.kind} providers do not make embeddings "
                    f"({' and '.join(embedders)} do)"
                )
        chosen = self.knowledge.embedding_model
        capable = self.capable_models("embeddings")
        if chosen and chosen not in capable:
            offered = ", ".join(capable) or "none: list models under embedding_models of a provider"
            raise ValueError(f"knowledge.embedding_model: {chosen!r} is not a configured embedding model ({offered})")

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


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
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


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
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
    file_config = SettingsConfigDict(toml_file=file)
    settings_cls: type[Settings] = type("FileSettings", (Settings,), {"model_config": file_config})
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
    elif first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(TOOL_KINDS if first["loc"][:1] == ("tools",) else KINDS)
        if first["type"] == "union_tag_invalid":
            message = f"unknown kind {first['input'].get('kind')!r} (expected one of: {kinds})"
        else:
            message = f'missing "kind" (one of: {kinds})'
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{loc + ': ' if loc else ''}{message}{more}"


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in loc]
    # pydantic puts the union tag in the location (providers.openai.openai.base_url, tools.docs.mcp.url); readers
    # want the TOML path.
    if len(parts) >= 3 and parts[2] in {"providers": KINDS, "tools": TOOL_KINDS}.get(parts[0], ()):
        del parts[2]
    return ".".join(parts)
