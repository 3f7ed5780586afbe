"""Knowledge, what exists of it so far: reading and chunking a 1,000-page PDF, and the exact cosine search over
embeddings at 10,000 and 100,000 chunks, against sqlite-vec's (the extension the issue names) where it can load.

  read       the PDF's pages, in the bounded process of its own documents use (backend/documents/_pdf_reader.py)
  chunk      those pages cut into chunks (backend/knowledge/chunking.py, 500 tokens, 50 of overlap)
  nearest    `nearest` (numpy: one matrix-vector product and a partial sort) for `queries` random unit queries
             among N random unit vectors of `dimensions` float32 numbers, top 10: p50 and p95
  load       N vectors made a matrix from the bytes the store keeps (`vectors_from`): what a search pays when
             the matrix is not kept in memory between questions
  sqlite-vec the same vectors in a vec0 table of an in-memory SQLite, the same queries (`MATCH ... AND k = 10`),
             when the sqlite-vec package is installed and this Python's sqlite3 can load extensions (pyenv's
             default build cannot)

The full-text half (BM25 in the store) and a knowledge chat's first token come with the store's tables.

    python -m bench.retrieval [--pages 1000] [--sizes 10000 100000] [--dimensions 768] [--queries 200]
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable

import numpy as np

from bench.common import Row, median, percentile
from bench.report import command_line
from tests.test_knowledge_chunking import book

TOP = 10


def run(
    pages: int = 1000, sizes: tuple[int, ...] = (10_000, 100_000), dimensions: int = 768, queries: int = 200
) -> list[Row]:
    rows = corpus_rows(pages)
    for size in sizes:
        rows += search_rows(size, dimensions, queries)
    return rows


def corpus_rows(pages: int) -> list[Row]:
    from backend.knowledge.chunking import chunk_sections
    from backend.knowledge.readers import read_sections

    section = f"retrieval: a {pages:,}-page PDF read and cut into chunks"
    pdf = book(pages, 2_400, {})
    began = time.perf_counter()
    sections = asyncio.run(read_sections(pdf, "corpus.pdf", seconds=120))
    read = time.perf_counter() - began
    began = time.perf_counter()
    chunks = chunk_sections("corpus.pdf", sections)
    cut = time.perf_counter() - began
    text_mb = sum(len(s.text.encode()) for s in sections) / 1e6
    chunk_mb = sum(len(c.text.encode()) for c in chunks) / 1e6
    return [
        Row(section, "read its pages (a process of its own)", read, unit="s", note=f"PDF {len(pdf) / 1e6:.1f} MB"),
        Row(
            section,
            "cut them into chunks",
            cut * 1000,
            unit="ms",
            note=f"{len(chunks):,} chunks, {chunk_mb:.1f} MB of text from {text_mb:.1f} MB (overlap)",
        ),
    ]


def search_rows(size: int, dimensions: int, queries: int) -> list[Row]:
    from backend.knowledge.embeddings import nearest, normalized, vector_bytes, vectors_from

    section = f"retrieval: cosine top {TOP} among {size:,} chunks ({dimensions} dimensions)"
    generator = np.random.default_rng(29)
    vectors = normalized(generator.standard_normal((size, dimensions), dtype=np.float32))
    asked = normalized(generator.standard_normal((queries, dimensions), dtype=np.float32))
    numpy_times = timed(lambda query: nearest(query, vectors, TOP), asked)
    blobs = [vector_bytes(vector) for vector in vectors]
    load_times = timed(lambda _: vectors_from(blobs, dimensions), asked[:5])
    p95 = percentile(numpy_times, 0.95)
    rows = [
        Row(
            section,
            "numpy, exact: p50",
            median(numpy_times) * 1000,
            unit="ms",
            note=f"p95 {p95 * 1000:.2f} ms; vectors in memory {vectors.nbytes / 1e6:.0f} MB",
        ),
        Row(section, "matrix from stored bytes, once", median(load_times) * 1000, unit="ms"),
    ]
    vec_times, why_not = sqlite_vec_times(vectors, asked)
    if vec_times:
        rows.append(
            Row(
                section,
                "sqlite-vec vec0, exact: p50",
                median(vec_times) * 1000,
                baseline=median(numpy_times) * 1000,
                unit="ms",
                note=f"p95 {percentile(vec_times, 0.95) * 1000:.2f} ms (ratio: sqlite-vec / numpy)",
            )
        )
    else:
        rows.append(Row(section, "sqlite-vec vec0", float("nan"), unit="ms", note=why_not))
    return rows


def sqlite_vec_times(vectors: np.ndarray, asked: np.ndarray) -> tuple[list[float], str]:
    """sqlite-vec's search times for `asked` among `vectors`, or why it could not run here."""
    try:
        import sqlite_vec
    except ImportError:
        return [], "not installed (pip install sqlite-vec)"
    database = sqlite3.connect(":memory:")
    if not hasattr(database, "enable_load_extension"):
        return [], "this Python's sqlite3 cannot load extensions"
    database.enable_load_extension(True)
    sqlite_vec.load(database)
    database.enable_load_extension(False)
    database.execute(
        f"CREATE VIRTUAL TABLE chunks USING vec0(embedding float[{vectors.shape[1]}] distance_metric=cosine)"
    )
    database.executemany(
        "INSERT INTO chunks(rowid, embedding) VALUES (?, ?)",
        ((row, vector.tobytes()) for row, vector in enumerate(vectors)),
    )
    database.commit()

    def search(query: np.ndarray) -> list[int]:
        found = database.execute(
            "SELECT rowid FROM chunks WHERE embedding MATCH ? AND k = ? ORDER BY distance", (query.tobytes(), TOP)
        )
        return [row for (row,) in found.fetchall()]

    from backend.knowledge.embeddings import nearest

    if search(asked[0]) != [row for row, _ in nearest(asked[0], vectors, TOP)]:
        return [], "found other chunks than numpy: not compared"
    return timed(search, asked), ""


def timed(search: Callable[[np.ndarray], object], asked: np.ndarray) -> list[float]:
    search(asked[0])  # warm caches
    times = []
    for query in asked:
        began = time.perf_counter()
        search(query)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    command_line(run, __doc__)


if __name__ == "__main__":
    main()
