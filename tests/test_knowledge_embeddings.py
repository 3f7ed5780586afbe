"""Embeddings (backend/knowledge/embeddings.py over the adapters' `embed`): OpenAI-compatible /v1/embeddings and
Ollama's /api/embed against the scripted upstream (in order, in batches, with progress, retried, malformed answers in
one sentence), llama-cpp-python's own server serving the bundled Gemma, kinds and models that make none, and the
exact cosine search."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from backend import Backend, ConfigError, load_settings
from backend.errors import APIError, AuthenticationError, StreamError, UnsupportedCapabilityError
from backend.knowledge.embeddings import Embedder, nearest, normalized, vector_bytes, vectors_from
from tests.conftest import llama_cpp_server
from tests.upstream import Reply, embedding
from tests.wire import json_reply

TEXTS = [
    "The cat sat on the mat.",
    "Dogs chase cats.",
    "Stock prices fell sharply today.",
    "A kitten sleeps on a rug.",
    "Interest rates rose again.",
    "The mat was red.",
    "Cats and dogs.",
]


def embedding_backend(upstream, write_config, kind: str = "openai", extra: str = "") -> Backend:
    base_url = upstream.base_url if kind == "openai" else f"http://127.0.0.1:{upstream.port}"
    config = f"""
    [app]
    embedded_model = true

    [providers.scripted]
    kind = "{kind}"
    base_url = "{base_url}"
    models = ["chat-1"]
    embedding_models = ["embed-1"]
    connect_timeout = 2
    max_retries = 2
    """
    return Backend(load_settings(write_config(textwrap.dedent(config) + textwrap.dedent(extra))))


def expected(texts: list[str]) -> np.ndarray:
    return normalized(np.array([embedding(text) for text in texts], dtype=np.float32))


def embedder(backend: Backend, model_id: str = "scripted/embed-1", **options) -> Embedder:
    return Embedder(*backend.models.resolve_task(model_id, "embeddings"), **options)


async def test_openai_embeddings_come_in_order_in_batches_with_progress(upstream, write_config):
    backend = embedding_backend(upstream, write_config)
    seen: list[tuple[int, int]] = []
    vectors = await embedder(backend, batch_texts=3).embed(TEXTS, progress=lambda *done: seen.append(done))
    assert vectors.dtype == np.float32 and vectors.shape == (7, 64)
    np.testing.assert_allclose(vectors, expected(TEXTS), rtol=1e-6)  # the upstream answers in reverse: put back
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert seen == [(3, 7), (6, 7), (7, 7)]
    bodies = [request.body for request in upstream.embedding_requests()]
    assert [request.path for request in upstream.embedding_requests()] == ["/v1/embeddings"] * 3
    assert bodies[0] == {"model": "embed-1", "input": TEXTS[:3], "encoding_format": "float"}
    assert [body["input"] for body in bodies[1:]] == [TEXTS[3:6], TEXTS[6:]]


async def test_batches_are_also_bounded_by_characters(upstream, write_config):
    backend = embedding_backend(upstream, write_config)
    texts = ["a" * 60, "b" * 60, "c" * 60, "d" * 10]
    await embedder(backend, batch_texts=10, batch_chars=130).embed(texts)
    assert [request.body["input"] for request in upstream.embedding_requests()] == [texts[:2], texts[2:]]


async def test_ollama_embeddings_through_api_embed(upstream, write_config):
    backend = embedding_backend(upstream, write_config, kind="ollama", extra='keep_alive = "10m"\n')
    vectors = await embedder(backend).embed(TEXTS[:2])
    np.testing.assert_allclose(vectors, expected(TEXTS[:2]), rtol=1e-6)
    [request] = upstream.embedding_requests()
    assert request.path == "/api/embed"
    assert request.body == {"model": "embed-1", "input": TEXTS[:2], "keep_alive": "10m"}
    query = await embedder(backend).embed_query("cat on a mat")
    assert query.shape == (64,)


async def test_a_failed_batch_is_retried_as_a_chat_is_and_then_fails_typed(upstream, write_config):
    backend = embedding_backend(upstream, write_config)
    upstream.embedding_replies.append(Reply.error(429, "slow down", headers={"retry-after": "0"}))
    upstream.embedding_replies.append(Reply.error(503, "busy", headers={"retry-after": "0"}))
    vectors = await embedder(backend).embed(TEXTS[:2])
    np.testing.assert_allclose(vectors, expected(TEXTS[:2]), rtol=1e-6)
    assert len(upstream.embedding_requests()) == 3  # two failures, then the answer

    upstream.embedding_replies.append(Reply.error(401, "bad key"))  # not worth a retry
    with pytest.raises(AuthenticationError) as failed:
        await embedder(backend).embed(TEXTS[:2])
    assert failed.value.provider == "scripted" and failed.value.model == "embed-1"
    assert len(upstream.embedding_requests()) == 4


@pytest.mark.parametrize(
    ("answer", "sentence"),
    [
        ({"data": [{"index": 0, "embedding": [1.0, 2.0]}]}, "the answer held 1 embedding for 2 texts"),
        (
            {"data": [{"index": 0, "embedding": [[1.0], [2.0]]}, {"index": 1, "embedding": [[1.0]]}]},
            "one vector per token, not one per text",
        ),
        (
            {"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [1.0]}]},
            "not lists of numbers of one length",
        ),
        ({"data": [{"index": 0, "embedding": ["x"]}, {"index": 1, "embedding": [1.0]}]}, "not lists of numbers"),
        ({"data": [{"index": 0, "embedding": []}, {"index": 1, "embedding": []}]}, "not lists of numbers"),
        ({"error": {"message": "model is loading"}}, "had a server error: model is loading"),
    ],
)
async def test_a_malformed_answer_is_one_sentence(upstream, write_config, answer, sentence):
    backend = embedding_backend(upstream, write_config)
    upstream.embedding_replies.extend([json_reply(answer)] * 3)  # retried like a chat's malformed stream: 1 + 2
    with pytest.raises(APIError) as failed:
        await embedder(backend).embed(TEXTS[:2])
    message = failed.value.user_message()
    assert message.startswith("scripted/embed-1 ") and sentence in message
    assert "\n" not in message and str(upstream.port) not in message
    assert len(upstream.embedding_requests()) == 3


async def test_vectors_of_two_sizes_from_one_model_are_refused(upstream, write_config):
    backend = embedding_backend(upstream, write_config)
    upstream.embedding_replies.append(json_reply({"data": [{"index": 0, "embedding": [1.0, 0.0, 0.0]}]}))
    with pytest.raises(StreamError, match="vectors of 3 and of 64 dimensions"):  # (the second batch's are 64)
        await embedder(backend, batch_texts=1).embed(TEXTS[:2])


async def test_kinds_and_models_that_make_no_embeddings_say_so(upstream, write_config, monkeypatch):
    backend = embedding_backend(upstream, write_config)
    assert backend.models.info("scripted/embed-1").embeddings
    assert not backend.models.info("scripted/chat-1").embeddings
    assert not backend.models.info("local/gemma-3-270m").embeddings
    with pytest.raises(UnsupportedCapabilityError, match="does not make embeddings; list it under embedding_models"):
        Embedder(backend.providers["scripted"], "chat-1")
    with pytest.raises(UnsupportedCapabilityError, match="llama_cpp providers do not make embeddings"):
        Embedder(backend.providers["local"], "gemma-3-270m")
    with pytest.raises(UnsupportedCapabilityError, match="llama_cpp providers do not make embeddings"):
        await backend.providers["local"].embed(["x"], "gemma-3-270m")
    with pytest.raises(UnsupportedCapabilityError) as unknown:
        backend.models.resolve_task("scripted/chat-1", "embeddings")
    assert unknown.value.user_message() == (
        "scripted/chat-1 cannot make embeddings; models that can: scripted/embed-1."
    )
    assert upstream.embedding_requests() == []  # all refused before any request

    monkeypatch.setenv("ANTHROPIC_KEY", "k")
    anthropic = """
    [providers.claude]
    kind = "anthropic"
    api_key_env = "ANTHROPIC_KEY"
    models = ["claude-sonnet-4-5"]
    embedding_models = ["claude-sonnet-4-5"]
    """
    with pytest.raises(ConfigError) as refused:
        load_settings(write_config(anthropic))
    sentence = "providers.claude.embedding_models: anthropic providers do not make embeddings (openai and ollama do)"
    assert sentence in str(refused.value)


def test_nearest_is_exact_and_vectors_round_trip_as_float32_bytes():
    generator = np.random.default_rng(7)
    vectors = normalized(generator.standard_normal((2_000, 48)).astype(np.float32))
    query = normalized(generator.standard_normal(48).astype(np.float32))
    scores = vectors @ query
    found = nearest(query, vectors, 10)
    assert [row for row, _ in found] == list(np.argsort(-scores)[:10])
    assert [score for _, score in found] == sorted((score for _, score in found), reverse=True)
    assert found[0][1] == pytest.approx(float(scores.max()), rel=1e-6)
    assert len(nearest(query, vectors[:5], 10)) == 5 and nearest(query, vectors, 0) == []
    assert nearest(query, np.empty((0, 48), dtype=np.float32), 3) == []

    stored = [vector_bytes(vector) for vector in vectors[:3]]
    assert all(len(blob) == 48 * 4 for blob in stored)
    np.testing.assert_array_equal(vectors_from(stored, 48), vectors[:3])
    with pytest.raises(ValueError, match="not of 64 dimensions"):
        vectors_from(stored, 64)
    assert normalized(np.zeros((1, 4), dtype=np.float32)).tolist() == [[0.0, 0.0, 0.0, 0.0]]


@pytest.fixture(scope="module")
def llama_embedding_server(tmp_path_factory):
    """llama-cpp-python's server making embeddings with the bundled Gemma: its GGUF declares no pooling (the server
    would answer a vector per token), so the server is told to take their mean, as llama.cpp's --pooling mean."""
    options = ["--embedding", "true", "--kv_overrides", "gemma3.pooling_type=int:1", "--n_ctx", "2048"]
    with llama_cpp_server(tmp_path_factory.mktemp("llama-embeddings"), *options) as base_url:
        yield base_url


@pytest.mark.local_model
async def test_embeddings_from_llama_cpp_python_server(llama_embedding_server, write_config):
    config = f"""
    [app]
    embedded_model = false
    [providers.llamaserver]
    kind = "openai"
    base_url = "{llama_embedding_server}"
    models = []
    embedding_models = ["gemma"]
    """
    backend = Backend(load_settings(write_config(config)))
    model = embedder(backend, "llamaserver/gemma", batch_texts=2)
    texts = ["The cat sat on the mat.", "Stock prices fell sharply today.", "A kitten slept on the rug."]
    vectors = await model.embed(texts)
    assert vectors.shape == (3, 640) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(await model.embed(texts[:1]), vectors[:1], rtol=1e-4, atol=1e-5)  # the same text
    query = await model.embed_query("Where did the cat sit?")
    ranked = [row for row, _ in nearest(query, vectors, 3)]
    assert ranked.index(0) < ranked.index(1)  # the cat before the stock market
