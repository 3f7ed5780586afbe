"""The sources sent with a question (backend/knowledge/prompting.py): a budget that the built-in model's 4,096
tokens bound, numbered sources that name where they are from, and citations kept with the reply."""

from __future__ import annotations

import json

from backend.knowledge.chunking import Chunk, estimate_tokens
from backend.knowledge.prompting import (
    INSTRUCTION,
    Citation,
    Sources,
    build_sources,
    cited_numbers,
    source_budget,
)


def page_chunk(page: int, tokens: int, chunk_id: int) -> Chunk:
    return Chunk("manual.pdf", f"Page {page} says: " + "word " * (tokens - 5), pages=(page, page), id=chunk_id)


def test_the_budget_is_a_share_of_the_context_and_what_the_conversation_leaves():
    assert source_budget(4_096, 100) == 2_048  # half of the built-in model's context
    assert source_budget(4_096, 2_500) == 572  # 4,096 - 2,500 - a quarter kept for the answer
    assert source_budget(4_096, 3_500) == 0
    assert source_budget(4_096, 100, share=0.25) == 1_024
    assert source_budget(None, 100) == 4_096  # unknown context: 8,192 assumed
    assert source_budget(128_000, 1_000) == 64_000


def test_sources_for_a_4096_token_model_fit_its_budget_numbered_and_named():
    budget = source_budget(4_096, 300)
    ranked = [page_chunk(217, 450, 9), page_chunk(12, 450, 3), page_chunk(40, 1_500, 5), page_chunk(88, 450, 7)]
    ranked += [page_chunk(217, 450, 9), page_chunk(99, 450, 11), page_chunk(5, 200, 12)]
    sources = build_sources(ranked, budget)
    assert sources.tokens <= budget and estimate_tokens(sources.text) <= budget
    # Page 40's chunk does not fit what is left, nor does page 99's after three: the smaller page 5 still does.
    # Page 217's second copy is not sent twice.
    assert [citation.chunk_id for citation in sources.citations] == [9, 3, 7, 12]
    assert sources.text.startswith(INSTRUCTION + "\n\nSources:\n[1] manual.pdf, page 217\nPage 217 says:")
    assert "\n\n[2] manual.pdf, page 12\nPage 12 says:" in sources.text
    assert "\n\n[4] manual.pdf, page 5\nPage 5 says:" in sources.text and "Page 40" not in sources.text
    first = sources.citations[0]
    assert (first.number, first.file, first.label, first.pages) == (1, "manual.pdf", "manual.pdf, page 217", (217, 217))
    assert first.text == ranked[0].text
    assert build_sources(ranked, 100) == Sources("", [], 0)  # nothing fits: nothing is sent


def test_headed_sources_and_citations_round_trip_as_json():
    chunk = Chunk("guide.md", "Use apt.", headings=("Manual", "Install"), id=4)
    sources = build_sources([chunk], 1_000)
    assert "[1] guide.md › Manual › Install\nUse apt." in sources.text
    stored = json.loads(json.dumps([citation.model_dump(mode="json") for citation in sources.citations]))
    assert stored == [
        {
            "number": 1,
            "file": "guide.md",
            "label": "guide.md › Manual › Install",
            "pages": None,
            "headings": ["Manual", "Install"],
            "chunk_id": 4,
            "text": "Use apt.",
        }
    ]
    assert [Citation.model_validate(item) for item in stored] == sources.citations


def test_the_numbers_an_answer_cites_are_those_of_sources_sent():
    citations = [Citation(number=n, file="f", label="f") for n in range(1, 7)]
    answer = "Cats sleep [2]. Dogs bark [1, 3][4]; both [5-6]. Not a source: [9], [1-99999], [0]. Again [2]."
    assert cited_numbers(answer, citations) == [2, 1, 3, 4, 5, 6]
    assert cited_numbers("No citations here.", citations) == []
