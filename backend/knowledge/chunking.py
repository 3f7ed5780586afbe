"""Sections of a file cut into chunks of about `chunk_tokens` tokens, each saying where it comes from (the file,
its page or pages, the headings above it), for the index to find and the model to cite.

- A section that fits is one chunk; a longer one is cut into as few pieces as fit, of about equal size (a 600-token
  page makes two of 300, not one of 500 and a scrap of 100), at the largest boundary that works: paragraphs, then
  lines, sentences, words (semantic-text-splitter, Unicode's rules for sentences and words: 1,000 pages of 600
  tokens in 0.15 s, bench/retrieval.py).
  Each piece after the first starts with up to `overlap_tokens` that end the one before it (its last sentences,
  found by the same splitter), so what is said across the cut is whole in one of them.
- Neighbouring small sections are packed into one chunk while they fit, when each is the first's or under its
  headings: consecutive short pages of a PDF share a chunk that names its first and last page; a section never
  joins one under other headings (nor one before the first heading), so the headings a chunk names are all it
  holds. Packed sections do not overlap (they were never one passage).

Sizes are estimates, as everywhere in the app: CHARS_PER_TOKEN characters a token (backend/documents/).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..documents.reader import CHARS_PER_TOKEN
from .readers import Section

CHUNK_TOKENS = 500
OVERLAP_TOKENS = 50
HEADING_SEPARATOR = " › "


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a file the index finds and the model reads: its `text`, the `file` it is from, its first and last
    `pages` (a PDF's; equal for one page), the `headings` above it, and `id`, the store's, once stored."""

    file: str
    text: str
    pages: tuple[int, int] | None = None
    headings: tuple[str, ...] = ()
    id: int | None = None

    @property
    def label(self) -> str:
        """Where the chunk is from, as a citation names it: "manual.pdf, page 217", "manual.pdf, pages 216-217",
        "notes.md › Install › Linux", "data.csv"."""
        if self.pages is not None:
            first, last = self.pages
            return f"{self.file}, page {first}" if first == last else f"{self.file}, pages {first}–{last}"
        return HEADING_SEPARATOR.join((self.file, *self.headings))

    @property
    def search_text(self) -> str:
        """What an index reads of the chunk: its headings, then its text (a piece cut from the middle of a section
        is still found by the words of its headings)."""
        if not self.headings:
            return self.text
        return f"{HEADING_SEPARATOR.join(self.headings)}\n{self.text}"

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.text)


def estimate_tokens(text: str) -> int:
    """Tokens in `text`, estimated as the app estimates them everywhere (CHARS_PER_TOKEN characters a token)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def chunk_sections(
    file: str,
    sections: Sequence[Section],
    *,
    chunk_tokens: int = CHUNK_TOKENS,
    overlap_tokens: int = OVERLAP_TOKENS,
) -> list[Chunk]:
    """The chunks of a file's `sections` (as backend/knowledge/readers.py reads them), in order: each at most
    `chunk_tokens` tokens, estimated (see the module's docstring)."""
    if overlap_tokens * 2 > chunk_tokens:
        raise ValueError("overlap_tokens must be at most half of chunk_tokens")
    chunks: list[Chunk] = []
    packed: list[Section] = []
    size = 0
    for piece in _pieces(sections, chunk_tokens, overlap_tokens):
        tokens = estimate_tokens(piece.text)
        if packed and (size + tokens + 1 > chunk_tokens or not _under(piece.headings, packed[0].headings)):
            chunks.append(_packed(file, packed))
            packed, size = [], 0
        packed.append(piece)
        size += tokens + 1  # the blank line between packed sections
    if packed:
        chunks.append(_packed(file, packed))
    return chunks


def _pieces(sections: Sequence[Section], chunk_tokens: int, overlap_tokens: int) -> Iterator[Section]:
    """Each section whole when it fits, else cut into balanced pieces, each after the first led by the end of the
    one before it."""
    most = chunk_tokens * CHARS_PER_TOKEN
    overlap = overlap_tokens * CHARS_PER_TOKEN
    for section in sections:
        text = section.text.strip()
        if not text:
            continue
        if len(text) <= most:
            yield Section(text, section.page, section.headings)
            continue
        for piece in _cut(text, most - overlap, overlap):
            yield Section(piece, section.page, section.headings)


def _cut(text: str, most: int, overlap: int) -> Iterator[str]:
    """`text` in pieces of at most `most` characters, as few as fit and of about equal size, each after the first
    led by up to `overlap` characters that end the one before it (its last sentences, or words)."""
    from semantic_text_splitter import TextSplitter

    # As few pieces as fit, each filled to about an equal share before the splitter looks for a boundary.
    share = math.ceil(len(text) / math.ceil(len(text) / most))
    pieces = TextSplitter((share, most)).chunk_indices(text)
    tails = TextSplitter(overlap) if overlap else None
    for number, (start, piece) in enumerate(pieces):
        lead = start
        if number and tails is not None:
            before_start, before = pieces[number - 1]
            last_start, _ = tails.chunk_indices(before)[-1]
            lead = before_start + last_start
        yield text[lead : start + len(piece)]


def _under(headings: tuple[str, ...], first: tuple[str, ...]) -> bool:
    """Whether a section under `headings` may join a chunk that starts under `first`: the same, or below it (text
    before a file's first heading joins none under a heading: the chunk would name none of them)."""
    return headings[: len(first)] == first and (bool(first) or not headings)


def _packed(file: str, sections: list[Section]) -> Chunk:
    pages = [section.page for section in sections if section.page is not None]
    return Chunk(
        file=file,
        text="\n\n".join(section.text for section in sections),
        pages=(min(pages), max(pages)) if pages else None,
        headings=sections[0].headings,
    )
