"""Documents attached to a chat message: text files and PDFs, read into text the model is sent with the message.

Every model gets them (not only vision ones): a document is text. What a file is, is decided by its content, not
its name: a PDF must parse as one (pypdf), a text file must decode as UTF-8 and hold no NUL bytes. A refusal is
one sentence naming the file (unreadable, encrypted, no text in it, too large for the model, too costly to read).

Reading is bounded, for a document is the cheapest way to make a server work: a 7 KB PDF whose pages all point at
one compressed stream of text operators keeps pypdf busy for hours, and six of them read on the server's worker
threads made another user's login take 121 s (pure-Python parsing holds the interpreter's lock everyone needs).
- A PDF is read in a process of its own (backend/documents/_pdf_reader.py), held by the kernel to `seconds` of CPU and
  PDF_MEMORY_BYTES at a lower priority, and killed if it has not answered within twice that; past either it is
  refused in one sentence. Measured here: 2,000 pages of plain text (the most read) take 5.8 s.
- Files are read and text decoded on two threads of this module's own, never the event loop's default pool.
- `DocumentReader` (one per app) reads at most READERS PDFs at once, with at most WAITING more in line and one
  per visitor at a time (beyond, one sentence), and remembers what each file's content turned out to be: the
  check at the message box and the send read a file once, and a refused file sent again costs nothing.
  `read_pages` reads a PDF page by page within the same bounds, for knowledge (backend/knowledge/), which cites
  pages; `decode_text` is the rule for text files, which knowledge reads by too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import signal
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import OwnMessageError
from ..limits import TooManyRequestsError
from ._pdf_reader import MAX_PDF_PAGES

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
READ_SECONDS = 20.0  # CPU time one PDF may take by default (app.document_read_timeout)
PDF_MEMORY_BYTES = 1_000_000_000  # address space of a PDF's process (2,000 pages of text peak at 80 MB)
START_SECONDS = 5.0  # what a PDF's process may take on top of its CPU time to start and answer
READERS = 2  # PDFs read at once, whoever asks: each may take a core (at a lower priority) for its seconds
WAITING = 4  # PDFs that may wait for a reader; more are refused, not queued without end
PER_VISITOR = 1  # PDFs read at once for one visitor
KNOWN_CHARS = 32_000_000  # text of the documents read lately kept by their content; the oldest go first

# Why a document's content cannot be used (said after the file's name); `{seconds}`: the reading's CPU limit.
REFUSALS = {
    "encrypted": "the PDF is protected by a password; attach an unprotected copy.",
    "pages": f"the PDF has more than {MAX_PDF_PAGES:,} pages.",
    "unreadable": "this file cannot be read as a PDF.",
    "no_text": "the PDF has no text to read (a scan?); attach a PDF with text in it.",
    "too_long": "this PDF takes too long to read (more than {seconds:g} s); attach a part of it, or its text.",
    "too_large": "this PDF takes too much memory to read; attach a part of it, or its text.",
    "not_text": "this is not a text file (attach text, code, Markdown, CSV, JSON or a PDF).",
    "not_utf8": "the text is not UTF-8; save it as UTF-8 and attach it again.",
    "empty": "the file is empty.",
}
_READER = Path(__file__).with_name("_pdf_reader.py")
# Reading files and decoding text: off the event loop, and off its default pool (logins, images, the store's files).
_files = ThreadPoolExecutor(max_workers=2, thread_name_prefix="switchboard-documents")
T = TypeVar("T")


class DocumentError(OwnMessageError):
    """A file attached as a document that cannot be read as one, or does not fit."""


class _Refused(Exception):
    """A document's content cannot be used: why (a key of REFUSALS). `lasting`: the content alone decides it (a
    PDF that ran out of wall-clock time on a busy server may be read another time)."""

    def __init__(self, kind: str, *, lasting: bool = True) -> None:
        super().__init__(kind)
        self.kind = kind if kind in REFUSALS else "unreadable"
        self.lasting = lasting


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


async def read_document(
    path: str | Path, *, name: str | None = None, max_bytes: int, seconds: float = READ_SECONDS
) -> Document:
    """The text of the document at `path` (`name`: what the person called it); DocumentError with one sentence
    when it is not a readable text file or PDF, is larger than `max_bytes`, or takes more than `seconds` of CPU
    to read. (Nothing bounds how many run at once, nor remembers them: a server uses `DocumentReader`.)"""
    shown, data = await _load(path, name, max_bytes)
    try:
        mime, text = await _content(data, _is_pdf(shown, data), seconds)
    except _Refused as refused:
        raise _refusal(shown, refused.kind, seconds) from None
    return Document(shown, text, mime, data)


def decode_text(data: bytes, *, name: str) -> str:
    """The text of a text file's bytes (UTF-8, a byte-order mark dropped); DocumentError with one sentence naming
    the file when they hold NUL bytes (not text), are not UTF-8 or hold nothing but blanks."""
    try:
        return _plain_text(data)
    except _Refused as refused:
        raise _refusal(name, refused.kind, READ_SECONDS) from None


async def read_pdf_pages(data: bytes, *, name: str, seconds: float = READ_SECONDS) -> list[str]:
    """The text of each page of the PDF `data` ("" for a page without any), read as `read_document` reads a PDF;
    DocumentError with one sentence naming the file (`name`) when it cannot be. (Unbounded in number, like
    `read_document`: a server uses `DocumentReader.read_pages`.)"""
    try:
        return await _pdf_pages(data, seconds)
    except _Refused as refused:
        raise _refusal(name, refused.kind, seconds) from None


class DocumentReader:
    """Documents read for the visitors of one app (see the module's docstring): `read` reads a file at most once
    for all of them (found again by its content), at most READERS PDFs at once with at most WAITING in line, and
    one PDF at a time per visitor; a visitor over that, or anyone when the line is full, is refused in one sentence
    (TooManyRequestsError). These bound this process's work, so they are counted here, not across replicas."""

    def __init__(self, *, max_bytes: int, seconds: float = READ_SECONDS) -> None:
        self.max_bytes = max_bytes
        self.seconds = seconds
        self.parsed = 0  # files whose content was read; one read again is found among those known
        self._known: OrderedDict[bytes, tuple[str, str] | str] = OrderedDict()  # -> (mime, text), or refusal kind
        self._known_chars = 0
        self._readers = asyncio.Semaphore(READERS)
        self._admitted = 0  # PDFs being read or waiting for a reader
        self._visitors: dict[str, int] = {}  # PDFs being read or waiting, per visitor

    async def read(self, path: str | Path, *, name: str | None = None, visitor: str) -> Document:
        """The document at `path` for `visitor` (whose reading is counted), as `read_document` reads it."""
        shown, data = await _load(path, name, self.max_bytes)
        pdf = _is_pdf(shown, data)
        key = await _off_loop(_digest, data, pdf)
        known = self._known.get(key)
        if known is None:
            try:
                known = await self._read_new(data, pdf, shown, visitor)
            except _Refused as refused:  # (not for ever: it may be read another time)
                raise _refusal(shown, refused.kind, self.seconds) from None
            self._remember(key, known)
        else:
            self._known.move_to_end(key)
        if isinstance(known, str):
            raise _refusal(shown, known, self.seconds)
        mime, text = known
        return Document(shown, text, mime, data)

    async def read_pages(self, data: bytes, *, name: str, visitor: str) -> list[str]:
        """The text of each page of the PDF `data` for `visitor`, as `read_pdf_pages` reads it, within this
        reader's bounds (a turn among READERS, WAITING, PER_VISITOR). A lasting refusal is remembered by content
        as `read` remembers it; the pages are not (their reader keeps them)."""
        shown = Path(name).name
        key = await _off_loop(_digest, data, True)
        known = self._known.get(key)
        if isinstance(known, str):
            raise _refusal(shown, known, self.seconds)
        try:
            with self._turn(shown, visitor):
                async with self._readers:
                    self.parsed += 1
                    return await _pdf_pages(data, self.seconds)
        except _Refused as refused:
            if refused.lasting:
                self._remember(key, refused.kind)
            raise _refusal(shown, refused.kind, self.seconds) from None

    async def _read_new(self, data: bytes, pdf: bool, shown: str, visitor: str) -> tuple[str, str] | str:
        """What a file not known yet holds, or the kind of its lasting refusal. A PDF waits for its turn."""
        try:
            if not pdf:
                self.parsed += 1
                return await _content(data, False, self.seconds)
            with self._turn(shown, visitor):
                async with self._readers:
                    self.parsed += 1
                    return await _content(data, True, self.seconds)
        except _Refused as refused:
            if refused.lasting:
                return refused.kind
            raise

    @contextlib.contextmanager
    def _turn(self, shown: str, visitor: str) -> Iterator[None]:
        """A place among the PDFs being read or waiting, or TooManyRequestsError."""
        if self._visitors.get(visitor, 0) >= PER_VISITOR:
            raise TooManyRequestsError(f"{shown}: another of your documents is being read; send this one after it.")
        if self._admitted >= READERS + WAITING:
            raise TooManyRequestsError(f"{shown}: the server is busy reading other documents; try again in a minute.")
        self._admitted += 1
        self._visitors[visitor] = self._visitors.get(visitor, 0) + 1
        try:
            yield
        finally:
            self._admitted -= 1
            left = self._visitors[visitor] - 1
            if left:
                self._visitors[visitor] = left
            else:
                del self._visitors[visitor]  # no entry per visitor ever seen

    def _remember(self, key: bytes, known: tuple[str, str] | str) -> None:
        self._known[key] = known
        self._known_chars += _chars(known)
        while self._known_chars > KNOWN_CHARS and len(self._known) > 1:
            self._known_chars -= _chars(self._known.popitem(last=False)[1])


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


async def _load(path: str | Path, name: str | None, max_bytes: int) -> tuple[str, bytes]:
    """The file's name as shown and its bytes; DocumentError when it is gone or larger than `max_bytes`."""
    path = Path(path)
    shown = Path(name or path.name).name
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentError(f"{shown}: the file is larger than {max_bytes // 1_000_000} MB.")
        return shown, await _off_loop(path.read_bytes)
    except OSError:
        raise DocumentError(f"{shown}: the file could not be read.") from None


def _is_pdf(shown: str, data: bytes) -> bool:
    return shown.lower().endswith(".pdf") or data.startswith(b"%PDF-")


async def _content(data: bytes, pdf: bool, seconds: float) -> tuple[str, str]:
    """(MIME type, text) of a document's bytes; _Refused when they cannot be used."""
    if pdf:
        return "application/pdf", await _pdf_text(data, seconds)
    return "text/plain", await _off_loop(_plain_text, data)


def _plain_text(data: bytes) -> str:
    if b"\x00" in data[:65536]:
        raise _Refused("not_text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Refused("not_utf8") from None
    if not text.strip():
        raise _Refused("empty")
    return text


async def _pdf_text(data: bytes, seconds: float) -> str:
    """A PDF's text, its pages marked `[page N]`."""
    return str((await _pdf_answer(data, seconds, by_page=False))["text"])


async def _pdf_pages(data: bytes, seconds: float) -> list[str]:
    """The text of each of a PDF's pages."""
    pages = (await _pdf_answer(data, seconds, by_page=True))["pages"]
    return [str(page) for page in pages] if isinstance(pages, list) else []


async def _pdf_answer(data: bytes, seconds: float, *, by_page: bool) -> dict[str, object]:
    """What _pdf_reader.py answers for a PDF, read in a process of its own held to `seconds` of CPU (and killed
    past twice that on the clock, or when the caller gives up waiting); _Refused when it is a refusal."""
    cpu = max(1, math.ceil(seconds))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-P",  # (not backend/ first on its path: a module here must not stand in for one of the standard library)
        str(_READER),
        str(cpu),
        str(PDF_MEMORY_BYTES),
        *(["pages"] if by_page else []),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(2 * cpu + START_SECONDS):
            out, err = await process.communicate(data)
    except TimeoutError:
        raise _Refused("too_long", lasting=False) from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise _Refused("too_long")
    try:
        answer = json.loads(out)
    except ValueError:
        answer = None
    if process.returncode or not isinstance(answer, dict):
        # The error's kind only: what follows it may quote the file.
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no answer"]
        log.info("unreadable PDF (reader exit %s): %s", process.returncode, last[0].partition(":")[0][:80])
        raise _Refused("unreadable")
    if "refused" in answer:
        raise _Refused(str(answer["refused"]))
    return answer


def _refusal(shown: str, kind: str, seconds: float) -> DocumentError:
    return DocumentError(f"{shown}: {REFUSALS[kind].format(seconds=seconds)}")


def _digest(data: bytes, pdf: bool) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest() + (b"p" if pdf else b"t")


def _chars(known: tuple[str, str] | str) -> int:
    return len(known[1]) if isinstance(known, tuple) else 0


async def _off_loop(function: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_files, function, *args)
