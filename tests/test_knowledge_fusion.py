"""Reciprocal rank fusion (backend/knowledge/fusion.py): the full-text and the embeddings' rankings made one, by
rank alone."""

from __future__ import annotations

import pytest

from backend.knowledge.fusion import reciprocal_rank_fusion


def test_results_in_both_rankings_rise_and_scores_are_the_sum_of_reciprocal_ranks():
    words = ["a", "b", "c"]  # the full-text index's ranking, best first
    meaning = ["c", "a", "d"]  # the embeddings'
    fused = reciprocal_rank_fusion([words, meaning])
    assert [result for result, _ in fused] == ["a", "c", "b", "d"]
    assert dict(fused) == pytest.approx(
        {"a": 1 / 61 + 1 / 62, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 63}, rel=1e-12
    )


def test_ties_keep_first_appearance_duplicates_count_once_weights_and_limit():
    assert [r for r, _ in reciprocal_rank_fusion([["x", "y"], ["y", "x"]])] == ["x", "y"]  # equal: first seen first
    assert dict(reciprocal_rank_fusion([["x", "x", "y"]])) == pytest.approx({"x": 1 / 61, "y": 1 / 63})
    weighted = reciprocal_rank_fusion([["x", "y"], ["y", "x"]], weights=[1.0, 2.0], k=0)
    assert weighted == [("y", pytest.approx(1 / 2 + 2 / 1)), ("x", pytest.approx(1 / 1 + 2 / 2))]
    assert reciprocal_rank_fusion([[1, 2, 3], [4]], limit=2) == [(1, 1 / 61), (4, 1 / 61)]
    assert reciprocal_rank_fusion([]) == [] and reciprocal_rank_fusion([[], []]) == []
    with pytest.raises(ValueError, match="2 weights for 1 rankings"):
        reciprocal_rank_fusion([["x"]], weights=[1.0, 1.0])
