"""Reciprocal rank fusion: one ranking from several (the full-text index's and the embeddings'), by rank alone.

A result's score is the sum, over the rankings that hold it, of 1 / (k + its rank there), ranks from 1 (Cormack,
Clarke and Büttcher, SIGIR 2009, where k = 60 did best). Ranks, not scores: BM25's and cosine's scales have nothing
in common, and need no calibration this way. A result high in one ranking and absent from the other still places;
one fairly high in both places above either.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Iterable[Sequence[K]],
    *,
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[tuple[K, float]]:
    """(result, fused score) best first, for `rankings` (each best first; a result listed twice in one counts at
    its better rank). Equal scores keep the order in which results first appear (the first ranking's first).
    `weights`, one per ranking (default 1 each), scale each ranking's share; `limit` keeps that many."""
    if k < 0:
        raise ValueError("k must not be negative")
    scores: dict[K, float] = {}
    lists = list(rankings)
    if weights is not None and len(weights) != len(lists):
        raise ValueError(f"{len(weights)} weights for {len(lists)} rankings")
    for number, ranking in enumerate(lists):
        weight = 1.0 if weights is None else weights[number]
        seen: set[K] = set()
        for rank, result in enumerate(ranking, 1):
            if result not in seen:
                seen.add(result)
                scores[result] = scores.get(result, 0.0) + weight / (k + rank)
    fused = sorted(scores.items(), key=lambda item: item[1], reverse=True)  # stable: ties keep first appearance
    return fused if limit is None else fused[:limit]
