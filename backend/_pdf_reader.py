"""A PDF's text, read in a process of its own that backend/documents.py starts for each PDF: the PDF's bytes on
standard input, one JSON object on standard output, `{"text": "..."}` or `{"refused": KIND}` (a key of
`documents.REFUSALS`).

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
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return {"refused": "encrypted"}
        if len(reader.pages) > MAX_PDF_PAGES:
            return {"refused": "pages"}
        pages = [page.extract_text() or "" for page in reader.pages]
    except LimitReachedError:  # pypdf's own bounds on one stream (its bytes, its operators)
        return {"refused": "too_long"}
    except MemoryError:
        return {"refused": "too_large"}
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError):
        return {"refused": "unreadable"}
    text = "\n\n".join(f"[page {number}]\n{page.strip()}" for number, page in enumerate(pages, 1) if page.strip())
    return {"text": text} if text else {"refused": "no_text"}


def main() -> None:
    cpu_seconds, memory_bytes = int(sys.argv[1]), int(sys.argv[2])
    limit(cpu_seconds, memory_bytes)
    answer = pdf_text(sys.stdin.buffer.read())
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
