"""A PDF's text, read in a process of its own that backend/documents/reader.py starts for each PDF: the PDF's bytes on
standard input, one JSON object on standard output, `{"text": "..."}` or `{"refused": KIND}` (a key of
`documents.REFUSALS`). With a third argument `pages`, the answer is `{"pages": ["...", ...]}` instead: each page's
text on its own (an empty string for a page without any), so a reader that cites pages (knowledge) knows them.

Why a process: a PDF of a few kilobytes can keep pypdf busy for hours (its pages all point at one compressed
content stream of a few hundred thousand text operators, which is parsed again for every page: 3.4 s a page here),
and pure-Python parsing on the server's threads holds the interpreter's lock that every other visitor's request
needs (six such sends made another user's login take 121 s). Here it runs with limits the kernel enforces: CPU
seconds (RLIMIT_CPU: the process is stopped past them), memory (RLIMIT_AS), no core dump, and a lower priority
than the server's, so the server answers everyone else first.

It imports nothing of Switchboard's (only the standard library and pypdf): it starts in about 0.1 s.
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys

MAX_PDF_PAGES = 2000
NICENESS = 10  # the server's own work comes first


def limit(cpu_seconds: int, memory_bytes: int) -> None:
    """Hold this process to `cpu_seconds` of CPU and `memory_bytes` of address space, at a lower priority."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))  # SIGXCPU, then SIGKILL a second on
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.nice(NICENESS)


def pdf_text(data: bytes) -> dict[str, str]:
    """The answer for one PDF: its text, page by page, or why it cannot be read."""
    pages = _pages(data)
    if isinstance(pages, str):
        return {"refused": pages}
    return {"text": "\n\n".join(f"[page {number}]\n{page}" for number, page in enumerate(pages, 1) if page)}


def pdf_pages(data: bytes) -> dict[str, list[str]] | dict[str, str]:
    """The answer for one PDF in the `pages` mode: the text of each of its pages, or why it cannot be read."""
    pages = _pages(data)
    return {"refused": pages} if isinstance(pages, str) else {"pages": pages}


def _pages(data: bytes) -> list[str] | str:
    """The text of each page (stripped; "" for a page without text), or the kind of refusal."""
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return "encrypted"
        if len(reader.pages) > MAX_PDF_PAGES:
            return "pages"
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except LimitReachedError:  # pypdf's own bounds on one stream (its bytes, its operators)
        return "too_long"
    except MemoryError:
        return "too_large"
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError):
        return "unreadable"
    return pages if any(pages) else "no_text"


def main() -> None:
    cpu_seconds, memory_bytes = int(sys.argv[1]), int(sys.argv[2])
    by_page = sys.argv[3:] == ["pages"]
    limit(cpu_seconds, memory_bytes)
    data = sys.stdin.buffer.read()
    answer = pdf_pages(data) if by_page else pdf_text(data)
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
