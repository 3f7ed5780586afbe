"""What the model is sent with a question answered from knowledge, and the citations kept with its reply.

The best chunks (best first) go to the model as long as they fit a budget of tokens, each numbered and named:

    Sources:
    [1] manual.pdf, page 217
    <the chunk's text>

after an instruction to cite them as [1], [2]. The budget is `context_share` of the model's context (0.5 by
default), and never more than what the conversation leaves once a quarter of the context is kept for the answer
(as a document sent whole keeps it, backend/documents/): with the built-in model's 4,096 tokens and a question of
100, sources take at most 2,048; after a conversation of 2,500, at most 572. A model whose context length is not
configured is taken to have UNKNOWN_CONTEXT. Sizes are the app's estimates (backend/knowledge/chunking.py).

Each source sent becomes a `Citation` (its number, where it is from, the chunk's id and text): stored with the
reply, so a citation still shows its passage once the file has left the collection, and exported with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from .chunking import Chunk, estimate_tokens

ANSWER_SHARE = 0.25  # of the context, kept for the answer
UNKNOWN_CONTEXT = 8_192  # tokens of context assumed for a model whose context length is not configured
INSTRUCTION = (
    "Answer from the numbered sources below when they hold the answer. Cite each source you use as [n], its "
    "number in square brackets, right after what it supports. If the sources do not hold the answer, say so."
)
SOURCES_HEADING = "Sources:"
_MARKER = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")
_NUMBER_RANGE = re.compile(r"(\d+)\s*[–-]\s*(\d+)")
_MOST_IN_RANGE = 50  # "[1-99999]" is no citation anyone means


class Citation(BaseModel):
    """A source the model was sent with a question: its `number` in the prompt ([n]), where it is from (`file`,
    `label` as shown, a PDF's first and last `pages`, the `headings` above it), the chunk's `chunk_id` in the store
    and its `text`."""

    model_config = ConfigDict(frozen=True)

    number: int
    file: str
    label: str
    pages: tuple[int, int] | None = None
    headings: tuple[str, ...] = ()
    chunk_id: int | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class Sources:
    """What goes to the model ahead of the question (`text`: the instruction and the numbered sources; "" when
    none fits), the `citations` it numbers, and its size in (estimated) `tokens`."""

    text: str
    citations: list[Citation]
    tokens: int


def source_budget(context_length: int | None, conversation_tokens: int, *, share: float = 0.5) -> int:
    """Tokens the sources of one question may take: `share` of the context, and no more than what the
    conversation (`conversation_tokens`: everything else the model is sent, the question included) leaves once
    ANSWER_SHARE of the context is kept for the answer; 0 when nothing is left."""
    context = context_length or UNKNOWN_CONTEXT
    left = context - conversation_tokens - int(context * ANSWER_SHARE)
    return max(0, min(int(context * share), left))


def build_sources(chunks: Iterable[Chunk], budget: int) -> Sources:
    """The sources for `chunks` (best first) that fit in `budget` tokens, instruction and heading included, numbered
    from 1 in that order. A chunk too large for what is left is passed over for the next, smaller ones; a chunk
    given twice is sent once."""
    head = f"{INSTRUCTION}\n\n{SOURCES_HEADING}"
    used = estimate_tokens(head)
    entries: list[str] = []
    citations: list[Citation] = []
    sent: set[object] = set()
    for chunk in chunks:
        key = chunk.id if chunk.id is not None else (chunk.file, chunk.text)
        if key in sent:
            continue
        entry = f"[{len(citations) + 1}] {chunk.label}\n{chunk.text}"
        cost = estimate_tokens(entry) + 1  # the blank line before it
        if used + cost > budget:
            continue
        sent.add(key)
        used += cost
        entries.append(entry)
        citations.append(_citation(len(citations) + 1, chunk))
    if not citations:
        return Sources("", [], 0)
    return Sources(head + "\n" + "\n\n".join(entries), citations, used)


def cited_numbers(answer: str, citations: Sequence[Citation]) -> list[int]:
    """The numbers of `citations` that `answer` cites ([2], [1, 3], [2][4], [1-3]), in the order first cited;
    markers naming no source given are not citations."""
    known = {citation.number for citation in citations}
    found: dict[int, None] = {}
    for marker in _MARKER.finditer(answer):
        for number in _marker_numbers(marker.group(1)):
            if number in known:
                found.setdefault(number, None)
    return list(found)


def _marker_numbers(inside: str) -> Iterable[int]:
    for part in re.split(r"\s*[,;]\s*", inside):
        span = _NUMBER_RANGE.fullmatch(part)
        if span is None:
            yield int(part)
            continue
        first, last = int(span.group(1)), int(span.group(2))
        if first <= last <= first + _MOST_IN_RANGE:
            yield from range(first, last + 1)


def _citation(number: int, chunk: Chunk) -> Citation:
    return Citation(
        number=number,
        file=chunk.file,
        label=chunk.label,
        pages=chunk.pages,
        headings=chunk.headings,
        chunk_id=chunk.id,
        text=chunk.text,
    )
