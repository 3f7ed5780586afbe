"""Chunks (backend/knowledge/chunking.py): a fact on page 217 of a 300-page PDF lands in a chunk labelled page 217;
short pages share a chunk that names them all; a long passage is cut in balanced, overlapping pieces; headings are
kept and never mixed."""

from __future__ import annotations

import random

import pytest

from backend.knowledge.chunking import Chunk, chunk_sections, estimate_tokens
from backend.knowledge.readers import Section, read_sections
from tests.test_documents import pdf_with_text

FACT = "The lighthouse keeper's cat is named Marmalade and sleeps on the lamp room stairs."
# fmt: off
WORDS = [
    "harbour", "tide", "rope", "anchor", "gull", "lantern", "keeper", "storm", "coast", "vessel", "island", "beacon",
    "fog", "signal", "cliff", "current", "timber", "salt", "harbourmaster", "ledger", "voyage", "compass",
    "chart", "reef", "wreck", "dawn", "dusk", "north", "south", "shore", "wave",
]
# fmt: on


def prose(rng: random.Random, characters: int) -> str:
    """Sentences of plain words (no brackets: they would need escaping in a PDF string) of about `characters`."""
    sentences: list[str] = []
    while sum(len(sentence) + 1 for sentence in sentences) < characters:
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def book(pages: int, characters: int, facts: dict[int, str]) -> bytes:
    """A PDF of `pages` pages of about `characters` characters each; `facts` puts a sentence mid-page."""
    rng = random.Random(29)
    texts = []
    for number in range(1, pages + 1):
        text = prose(rng, characters)
        if number in facts:
            middle = len(text) // 2
            cut = text.index(". ", middle) + 2
            text = f"{text[:cut]}{facts[number]} {text[cut:]}"
        texts.append(text)
    return pdf_with_text(*texts)


async def test_a_fact_on_page_217_of_300_is_in_a_chunk_labelled_page_217():
    sections = await read_sections(book(300, 2_400, {217: FACT}), "harbour.pdf")  # pages of about 600 tokens
    assert len(sections) == 300 and sections[216].page == 217
    chunks = chunk_sections("harbour.pdf", sections)
    with_fact = [chunk for chunk in chunks if "named Marmalade" in chunk.text]
    assert with_fact and all(chunk.pages == (217, 217) for chunk in with_fact)
    assert {chunk.label for chunk in with_fact} == {"harbour.pdf, page 217"}
    assert all(chunk.tokens <= 500 for chunk in chunks)
    assert all(chunk.pages is not None and chunk.pages[0] == chunk.pages[1] for chunk in chunks)  # pages fill chunks
    assert len(chunks) == 600  # each page in two balanced pieces, not a piece of 500 and a scrap:
    assert min(chunk.tokens for chunk in chunks) >= 250


async def test_short_pages_share_a_chunk_that_names_its_first_and_last_page():
    sections = await read_sections(book(12, 400, {}), "notes.pdf")  # pages of about 100 tokens
    chunks = chunk_sections("notes.pdf", sections)
    assert [chunk.pages for chunk in chunks] == [(1, 4), (5, 8), (9, 12)]
    assert chunks[0].label == "notes.pdf, pages 1–4"
    assert [chunk.text for chunk in chunks] == [
        "\n\n".join(section.text for section in sections[start : start + 4]) for start in (0, 4, 8)
    ]


def test_a_long_passage_is_cut_in_balanced_overlapping_pieces():
    rng = random.Random(7)
    paragraphs = [prose(rng, 300) for _ in range(8)]  # about 600 tokens
    [first, second] = chunk_sections("essay.txt", [Section("\n\n".join(paragraphs))])
    assert 250 <= first.tokens <= 400 and 250 <= second.tokens <= 400
    assert first.text.startswith(paragraphs[0]) and second.text.endswith(paragraphs[-1])
    repeated = max(n for n in range(1, 400) if first.text.endswith(second.text[:n]))
    assert 0 < estimate_tokens(second.text[:repeated]) <= 50  # up to overlap_tokens of the first's end...
    assert second.text[0].isupper() and first.text[-repeated - 2 : -repeated] == ". "  # ...whole sentences

    long_text = prose(random.Random(8), 40_000)  # 10,000 tokens with no paragraphs: cut between sentences
    chunks = chunk_sections("wall.txt", [Section(long_text)], chunk_tokens=500, overlap_tokens=50)
    assert all(chunk.tokens <= 500 for chunk in chunks) and len(chunks) >= 20
    assert all(chunk.text.endswith(".") for chunk in chunks)
    sentences = long_text.split(". ")
    assert all(any(sentence in chunk.text for chunk in chunks) for sentence in sentences)  # none lost, none cut


async def test_headings_are_kept_and_sections_under_other_headings_never_mixed():
    guide = (
        "Read this first.\n\n# Manual\n\nWelcome.\n\n## Install\n\nRun the installer.\n\n### On Linux\n\n"
        "Use apt.\n\n## Upgrade\n\nRun it again.\n\n# Appendix\n\nThanks.\n"
    )
    chunks = chunk_sections("guide.md", await read_sections(guide.encode(), "guide.md"))
    assert [(chunk.label, chunk.text.splitlines()[0]) for chunk in chunks] == [
        ("guide.md", "Read this first."),  # before the first heading: alone
        ("guide.md › Manual", "# Manual"),  # Install and On Linux are under Manual: one chunk
        ("guide.md › Appendix", "# Appendix"),
    ]
    assert "### On Linux" in chunks[1].text and "## Upgrade" in chunks[1].text
    assert chunks[2].search_text == "Appendix\n# Appendix\n\nThanks."

    sections = [
        Section("## Install\n\n" + prose(random.Random(3), 3_000), headings=("Manual", "Install")),
        Section("## Upgrade\n\nRun it again.", headings=("Manual", "Upgrade")),
    ]
    chunks = chunk_sections("guide.md", sections)
    assert [chunk.headings for chunk in chunks] == [("Manual", "Install")] * 2 + [("Manual", "Upgrade")]
    assert chunks[1].search_text.startswith("Manual › Install\n")  # a piece from the middle keeps its headings


def test_overlap_is_at_most_half_a_chunk():
    with pytest.raises(ValueError, match="at most half"):
        chunk_sections("x.txt", [Section("text")], chunk_tokens=100, overlap_tokens=51)
    assert chunk_sections("x.txt", [Section("  "), Section("text")]) == [Chunk("x.txt", "text")]
