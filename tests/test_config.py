"""Configuration: search order, defaults, environment overrides, and one clear line per mistake."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backend import ConfigError, load_settings
from backend.config import LlamaCppProviderConfig, OpenAIProviderConfig

OPENAI = """
[providers.remote]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
models = ["m1", "m2"]
"""


def test_no_file_means_embedded_model_only():
    settings = load_settings()
    assert list(settings.providers) == ["local"]
    assert isinstance(settings.providers["local"], LlamaCppProviderConfig)
    assert settings.defaults.chat == "local/gemma-3-270m"
    assert settings.app.host == "127.0.0.1"


def test_search_order(tmp_path, write_config, monkeypatch):
    xdg = write_config(OPENAI.replace("m1", "from-xdg"), name="xdg/switchboard/config.toml")
    assert "from-xdg" in load_settings().providers["remote"].models, xdg
    write_config(OPENAI.replace("m1", "from-cwd"))
    assert "from-cwd" in load_settings().providers["remote"].models
    env_file = write_config(OPENAI.replace("m1", "from-env"), name="env.toml")
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(env_file))
    assert "from-env" in load_settings().providers["remote"].models
    explicit = write_config(OPENAI.replace("m1", "explicit"), name="explicit.toml")
    assert "explicit" in load_settings(explicit).providers["remote"].models


def test_example_config_is_valid(monkeypatch):
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    settings = load_settings(example)
    assert settings.defaults.chat == "local/gemma-3-270m"
    assert "local" in settings.providers


def test_environment_overrides_single_fields(write_config, monkeypatch):
    path = write_config(OPENAI)
    monkeypatch.setenv("SWITCHBOARD_APP__PORT", "9123")
    monkeypatch.setenv("SWITCHBOARD_PROVIDERS__REMOTE__BASE_URL", "http://127.0.0.1:8080/v1")
    settings = load_settings(path)
    assert settings.app.port == 9123
    remote = settings.providers["remote"]
    assert isinstance(remote, OpenAIProviderConfig)
    assert remote.base_url == "http://127.0.0.1:8080/v1"
    assert remote.models == ["m1", "m2"]  # the rest of the table still comes from the file


def test_key_comes_from_named_variable(write_config, monkeypatch):
    path = write_config(OPENAI + 'api_key_env = "REMOTE_KEY"\n')
    monkeypatch.setenv("REMOTE_KEY", "sk-test-value")
    assert load_settings(path).providers["remote"].api_key() == "sk-test-value"


def test_routes_and_defaults(write_config):
    settings = load_settings(
        write_config(OPENAI + '\n[routes]\nfast = ["remote/m2", "local/gemma-3-270m"]\n[defaults]\nchat = "fast"\n')
    )
    assert settings.routes["fast"] == ["remote/m2", "local/gemma-3-270m"]
    assert settings.defaults.chat == "fast"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[app\nport = 1", "invalid TOML"),
        ('[providers.x]\nkind = "carrier-pigeon"\n', "providers.x: unknown kind 'carrier-pigeon'"),
        ('[providers.x]\nkind = "openai"\n', "providers.x.base_url: Field required"),
        ('[app]\nport = "eighty"\n', "app.port: Input should be a valid integer"),
        ('[app]\ncolour = "blue"\n', "app.colour: unknown field"),
        (OPENAI + '[routes]\nfast = ["remote/nope"]\n', "routes.fast: 'remote/nope': provider 'remote' has no model"),
        (OPENAI + '[routes]\nfast = ["ghost/m1"]\n', "names provider 'ghost', which is not configured"),
        (OPENAI + 'api_key_env = "SURELY_UNSET_KEY"\n', "environment variable SURELY_UNSET_KEY is not set"),
        (OPENAI + 'api_key = "sk-inline"\n', "API keys are never stored in the config file"),
        ('[defaults]\nchat = "nowhere/none"\n', "defaults.chat: 'nowhere/none' names provider 'nowhere'"),
        ('[providers.x]\nkind = "openai"\nbase_url = "ftp://host"\n', "providers.x.base_url: must start with http"),
    ],
)
def test_invalid_config_is_one_line_naming_file_and_field(write_config, text, expected):
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message
    assert "sk-inline" not in message


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def _switchboard(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "webui", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_refuses_bad_config_with_exit_2_and_no_traceback(write_config):
    path = write_config('[providers.x]\nkind = "nope"\n')
    result = _switchboard("--config", str(path))
    assert result.returncode == 2
    kinds = "openai, ollama, anthropic, gemini, automatic1111, llama_cpp"
    expected = f"switchboard: {path}: providers.x: unknown kind 'nope' (expected one of: {kinds})"
    assert result.stderr.strip() == expected
    assert "Traceback" not in result.stderr


def test_cli_check_and_models(write_config):
    path = write_config(OPENAI + '\n[routes]\nfast = ["remote/m1"]\n')
    checked = _switchboard("check", "--config", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "config OK: 2 provider(s), 1 route(s)" in checked.stdout
    listed = _switchboard("models", "--config", str(path))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["remote/m1", "remote/m2", "local/gemma-3-270m", "fast"]


@pytest.mark.parametrize("flags", [["--share"], ["--host", "0.0.0.0"], ["--host", "192.0.2.7"]])
def test_exposed_without_logins_is_refused(flags):
    result = _switchboard(*flags)
    assert result.returncode == 2
    assert "refusing to serve" in result.stderr and "without logins" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "holds a password"),
        ("http://127.0.0.1:6379", "must start with redis://"),
    ],
)
def test_a_redis_url_with_a_password_or_of_another_kind_is_refused(write_config, url, said):
    path = write_config(f'[redis]\nurl = "{url}"\n')
    with pytest.raises(ConfigError, match=said) as caught:
        load_settings(path)
    assert "hunter2" not in str(caught.value)
