"""[knowledge] and embedding_models in the configuration: defaults, bounds, and a model that must be configured."""

from __future__ import annotations

import pytest

from backend import ConfigError, load_settings


def test_knowledge_has_defaults_and_reads_its_table(write_config):
    defaults = load_settings(write_config("")).knowledge
    assert (defaults.context_share, defaults.chunk_tokens, defaults.overlap_tokens) == (0.5, 500, 50)
    assert (defaults.max_knowledge_mb, defaults.embedding_model) == (100, "")
    settings = load_settings(
        write_config(
            """
            [knowledge]
            context_share = 0.3
            chunk_tokens = 800
            overlap_tokens = 100
            max_knowledge_mb = 50
            embedding_model = "ollama/nomic-embed-text"

            [providers.ollama]
            kind = "ollama"
            models = ["llama3.2"]
            embedding_models = ["nomic-embed-text"]
            """
        )
    )
    assert settings.knowledge.embedding_model == "ollama/nomic-embed-text"
    assert settings.capable_models("embeddings") == ["ollama/nomic-embed-text"]
    assert "ollama/nomic-embed-text" not in settings.capable_models("chat")  # an embedding model is no chat model


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("chunk_tokens = 100\noverlap_tokens = 60", "overlap_tokens must be at most half of chunk_tokens (50)"),
        ("context_share = 1.5", "knowledge.context_share: Input should be less than or equal to 0.9"),
        (
            'embedding_model = "local/gemma-3-270m"',
            "knowledge.embedding_model: 'local/gemma-3-270m' is not a configured embedding model (none: list models "
            "under embedding_models of a provider)",
        ),
    ],
)
def test_bad_knowledge_settings_stop_start_up_with_one_line(write_config, table, message):
    with pytest.raises(ConfigError) as refused:
        load_settings(write_config(f"[knowledge]\n{table}\n"))
    assert message in str(refused.value) and "\n" not in str(refused.value)
