"""Text turned into vectors by an embedding model, and the chunks nearest a question by cosine similarity.

- `Embedder` sends texts to one provider's embedding model (`embed`: OpenAI-compatible `/embeddings`, Ollama's
  `/api/embed`) in batches of at most BATCH_TEXTS texts and BATCH_CHARS characters, one batch at a time (an
  upstream on a CPU does one at a time anyway, and other visitors' chats share it), and says how far it got after
  each. A batch that fails for a reason worth retrying (429, 5xx, a dropped connection) is retried as a chat is
  before its first token: Retry-After first, else backoff, up to the provider's `max_retries`. Its vectors come back
  float32, of unit length: cosine similarity is then a dot product.
- `nearest` is exact: one matrix-vector product over a collection's vectors and a partial sort. Measured with
  bench/retrieval.py (768 dimensions, top 10, one BLAS thread, a shared 2-core machine): 10,000 chunks 1.1 ms p50,
  100,000 chunks 31 ms p50 (73 ms p95): it reads all 307 MB of their vectors each time, so that is the floor.
  sqlite-vec's vec0 table (exact too, the same vectors and queries) took 9.3 ms and 143 ms p50 (330 ms p95), 4.5 to
  8.5 times longer, and loads only where Python's sqlite3 can load extensions (pyenv's default build cannot): not
  added. Making the matrix from stored bytes takes 283 ms at 100,000: keep it between questions.
- Vectors are kept as float32 bytes (`vector_bytes`), read back with `vectors_from`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import APIError, StreamError
from ..services.retry import retry_delay

if TYPE_CHECKING:
    from ..providers import Provider

log = logging.getLogger(__name__)

BATCH_TEXTS = 32  # texts in one request (OpenAI takes 2,048; a CPU server takes seconds for 32 chunks)
BATCH_CHARS = 64_000  # characters in one request (about 16,000 tokens)
Vectors = NDArray[np.float32]


class Embedder:
    """Vectors from `provider`'s embedding `model`; UnsupportedCapabilityError at once when it makes none (resolve
    a `provider/model` id with `ModelRegistry.resolve_task(model_id, "embeddings")`)."""

    def __init__(
        self,
        provider: Provider[Any],
        model: str,
        *,
        batch_texts: int = BATCH_TEXTS,
        batch_chars: int = BATCH_CHARS,
    ) -> None:
        provider.check_embeddings(model)
        self.provider = provider
        self.model = model
        self.batch_texts = batch_texts
        self.batch_chars = batch_chars

    @property
    def model_id(self) -> str:
        """The `provider/model` id whose vectors these are (vectors of two models are never compared)."""
        return f"{self.provider.name}/{self.model}"

    async def embed(self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None) -> Vectors:
        """A (len(texts), dimensions) matrix of unit vectors, one row per text, in order; `progress(done, total)`
        after each batch. An APIError subclass when a batch fails (after its retries), a StreamError when the
        model's vectors are not of one size."""
        if any(not text for text in texts):
            raise ValueError("an empty text has no embedding")
        rows: list[Vectors] = []
        done = 0
        for batch in self._batches(texts):
            vectors = await self._embed_batch(batch)
            if rows and vectors.shape[1] != rows[0].shape[1]:
                raise StreamError(
                    f"the model answered vectors of {rows[0].shape[1]} and of {vectors.shape[1]} dimensions",
                    provider=self.provider.name,
                    model=self.model,
                )
            rows.append(vectors)
            done += len(batch)
            if progress is not None:
                progress(done, len(texts))
        if not rows:
            return np.empty((0, 0), dtype=np.float32)
        return normalized(np.concatenate(rows))

    async def embed_query(self, text: str) -> Vectors:
        """The unit vector of one text (a question), as a 1-D array."""
        vectors: Vectors = (await self.embed([text]))[0]
        return vectors

    def _batches(self, texts: Sequence[str]) -> Iterator[list[str]]:
        batch: list[str] = []
        chars = 0
        for text in texts:
            if batch and (len(batch) >= self.batch_texts or chars + len(text) > self.batch_chars):
                yield batch
                batch, chars = [], 0
            batch.append(text)
            chars += len(text)
        if batch:
            yield batch

    async def _embed_batch(self, batch: list[str]) -> Vectors:
        attempt = 0
        while True:
            try:
                return await self.provider.embed(batch, self.model)
            except APIError as error:
                delay = retry_delay(error, attempt, self.provider.retry_after_cap)
                if delay is None or attempt >= self.provider.max_retries:
                    raise
                log.info("embedding batch failed (%s); retry %d in %.1f s", type(error).__name__, attempt + 1, delay)
                attempt += 1
                await asyncio.sleep(delay)


def normalized(vectors: Vectors) -> Vectors:
    """`vectors` (rows) scaled to unit length, float32; a row of zeros stays zeros."""
    matrix = np.asarray(vectors, dtype=np.float32)
    lengths = np.linalg.norm(matrix, axis=-1, keepdims=True)
    result: Vectors = np.divide(matrix, lengths, out=np.zeros_like(matrix), where=lengths > 0)
    return result


def nearest(query: Vectors, vectors: Vectors, k: int) -> list[tuple[int, float]]:
    """(row, cosine similarity) of the `k` rows of `vectors` nearest `query`, best first; both of unit length (as
    `Embedder.embed` makes them), so the similarity is their dot product."""
    if k <= 0 or not len(vectors):
        return []
    scores = vectors @ np.asarray(query, dtype=np.float32)
    best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = best[np.argsort(-scores[best], kind="stable")]
    return [(int(row), float(scores[row])) for row in order]


def vector_bytes(vector: Vectors) -> bytes:
    """One vector as the store keeps it: float32, little-endian."""
    return np.asarray(vector, dtype="<f4").tobytes()


def vectors_from(blobs: Sequence[bytes], dimensions: int) -> Vectors:
    """The (len(blobs), dimensions) matrix of vectors kept by `vector_bytes`; ValueError if one is of another size."""
    if any(len(blob) != 4 * dimensions for blob in blobs):
        raise ValueError(f"a stored vector is not of {dimensions} dimensions")
    joined = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dimensions)
    matrix: Vectors = joined.astype(np.float32, copy=False)  # (no copy where float32 is little-endian)
    return matrix
