"""Documents attached to a chat message: text files and PDFs, read into text the model is sent with the message.

Every model gets them (not only vision ones): a document is text. What a file is, is decided by its content, not
its name: a PDF must parse as one (pypdf), a text file must decode as UTF-8 and hold no NUL bytes. A refusal is
one sentence naming the file (unreadable, encrypted, no text in it, too large for the model). Reading runs on a
worker thread: a big PDF must not stall the server for everyone else.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import OwnMessageError

log = logging.getLogger(__name__)

TEXT_EXTENSIONS = frozenset(
    [
        ".txt",
        ".md",
        ".markdown",
        ".csv",
        ".tsv",
        ".json",
        ".jsonl",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".xml",
        ".html",
        ".htm",
        ".css",
        ".log",
        ".rst",
        ".tex",
        ".sql",
        ".py",
        ".js",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".kt",
        ".c",
        ".h",
        ".cpp",
        ".hpp",
        ".cc",
        ".cs",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".swift",
        ".sh",
        ".bash",
        ".zsh",
        ".ps1",
        ".r",
        ".m",
        ".lua",
        ".pl",
        ".scala",
        ".dart",
        ".vue",
        ".svelte",
    ]
)
DOCUMENT_EXTENSIONS = TEXT_EXTENSIONS | {".pdf"}
CHARS_PER_TOKEN = 4  # a rough average for English text and code: enough to tell a document that cannot fit
MAX_PDF_PAGES = 2000


class DocumentError(OwnMessageError):
    """A file attached as a document that cannot be read as one, or does not fit."""


@dataclass(frozen=True, slots=True)
class Document:
    """An attached document: its file name, its text, and the file as attached (`data`, of type `mime`)."""

    name: str
    text: str
    mime: str
    data: bytes = b""

    def for_model(self) -> str:
        """The document as the model reads it, named, ahead of the message it came with."""
        return f'<document name="{self.name}">\n{self.text}\n</document>'


def is_document(name: str) -> bool:
    """Whether a file of this name is attached as a document (not an image)."""
    return Path(name).suffix.lower() in DOCUMENT_EXTENSIONS


async def read_document(path: str | Path, *, name: str | None = None, max_bytes: int) -> Document:
    """The text of the document at `path` (`name`: what the person called it); DocumentError with one sentence
    when it is not a readable text file or PDF, or is larger than `max_bytes`."""
    path = Path(path)
    shown = Path(name or path.name).name
    try:
        size = path.stat().st_size
    except OSError:
        raise DocumentError(f"{shown}: the file could not be read.") from None
    if size > max_bytes:
        raise DocumentError(f"{shown}: the file is larger than {max_bytes // 1_000_000} MB.")
    data = await asyncio.to_thread(path.read_bytes)
    if shown.lower().endswith(".pdf") or data.startswith(b"%PDF-"):
        text = await asyncio.to_thread(_pdf_text, data, shown)
        return Document(shown, text, "application/pdf", data)
    return Document(shown, _plain_text(data, shown), "text/plain", data)


def check_fits(documents: list[Document], model: str, context_length: int | None, text: str = "") -> None:
    """Refuse, in one sentence, documents that cannot fit in the model's context (when it is known) with the
    message and room left for an answer (a quarter of the context)."""
    if not documents or not context_length:
        return
    tokens = (sum(len(document.for_model()) for document in documents) + len(text)) // CHARS_PER_TOKEN
    budget = context_length * 3 // 4
    if tokens > budget:
        names = ", ".join(document.name for document in documents)
        raise DocumentError(
            f"{names}: about {tokens:,} tokens, more than {model} can read with room for an answer "
            f"({context_length:,} tokens of context); attach a part of it, or pick a model with a longer context."
        )


def _plain_text(data: bytes, name: str) -> str:
    if b"\x00" in data[:65536]:
        raise DocumentError(f"{name}: this is not a text file (attach text, code, Markdown, CSV, JSON or a PDF).")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentError(f"{name}: the text is not UTF-8; save it as UTF-8 and attach it again.") from None
    if not text.strip():
        raise DocumentError(f"{name}: the file is empty.")
    return text


def _pdf_text(data: bytes, name: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError(f"{name}: the PDF is protected by a password; attach an unprotected copy.")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise DocumentError(f"{name}: the PDF has more than {MAX_PDF_PAGES:,} pages.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as error:
        log.info("unreadable PDF %s: %s", name, type(error).__name__)
        raise DocumentError(f"{name}: this file cannot be read as a PDF.") from None
    text = "\n\n".join(f"[page {number}]\n{page.strip()}" for number, page in enumerate(pages, 1) if page.strip())
    if not text:
        raise DocumentError(f"{name}: the PDF has no text to read (a scan?); attach a PDF with text in it.")
    return text
