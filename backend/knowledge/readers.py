"""What a file added to knowledge holds, with the structure a citation names: each page of a PDF, each section of a
Markdown, HTML or Word file under its headings, or the whole of a text, CSV, JSON or code file.

A file is read all or nothing: `read_sections` gives every section, or raises DocumentError with one sentence naming
the file (then nothing of it may be kept). The rules are those of documents attached to a message
(backend/documents/), called, not copied: text must be UTF-8 (an unknown encoding is refused, never guessed), and a
PDF is read page by page in a process of its own held to `app.document_read_timeout` of CPU, within the app's
`DocumentReader` bounds when one is given (2,000 pages at most: 2,000 pages of text read in about 6 s).

A .docx is a zip of XML. Before python-docx opens one, the zip's own directory is read: more than MAX_DOCX_ENTRIES
members, more than MAX_DOCX_UNPACKED bytes once unpacked, more than MAX_DOCX_RATIO times the file's size (a zip bomb:
a few kilobytes that unpack to gigabytes), or an XML part larger than MAX_DOCX_XML, and it is refused unread. The
sizes a zip declares are the ones read: Python's zipfile stops at a member's declared size and fails its checksum if
the data goes on. python-docx's XML parser resolves no entities, and libxml2 keeps its limits on depth and text size.

HTML is read with lxml's HTML parser (lxml comes with python-docx): scripts, styles and other non-text dropped,
h1-h6 as headings, block elements as paragraphs. Markdown headings are found by markdown-it-py's block parser (so a
`#` line in a fenced code block is no heading): 2 MB of Markdown in 0.15 s.

Word, HTML and Markdown files are parsed on one thread of this module's own, never the event loop, one at a time;
their cost grows with their size (app.max_upload_mb, 10 MB by default). Measured: a Word file of 20,000 paragraphs
(2.6 MB of text, a 1,000-page book) 1.3 s, 2.7 MB of HTML 0.2 s; python-docx's part of that holds the interpreter's
lock, so the event loop slows (it does not stop) while a long Word file is read.
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..documents.reader import DOCUMENT_EXTENSIONS, READ_SECONDS, DocumentError, decode_text, read_pdf_pages

if TYPE_CHECKING:
    from docx.table import Table
    from lxml.html import HtmlElement

    from ..documents.reader import DocumentReader

DOCX = ".docx"
KNOWLEDGE_EXTENSIONS = DOCUMENT_EXTENSIONS | {DOCX}
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown"})
HTML_EXTENSIONS = frozenset({".html", ".htm"})
MAX_DOCX_ENTRIES = 2_000  # members of the zip (a long report with pictures has a few hundred)
MAX_DOCX_UNPACKED = 100_000_000  # bytes of all members unpacked, pictures included
MAX_DOCX_RATIO = 100  # unpacked / packed, beyond 1 MB unpacked: real documents are 3-20, zip bombs 1,000 and more
MAX_DOCX_XML = 25_000_000  # bytes of one XML part unpacked (the text of a 1,000-page book takes about 10 MB)

# Why a file cannot be used (said after its name).
REFUSALS = {
    "kind": "knowledge reads text, Markdown, CSV, JSON, code, PDF, Word (.docx) and HTML files.",
    "docx_unreadable": "this file cannot be read as a Word document (.docx).",
    "docx_old": "this is an old (.doc) or password-protected Word file; save it as .docx without a password.",
    "docx_bomb": "this .docx unpacks to far more than a document holds (a zip bomb?); it was not opened.",
    "docx_xml": f"this .docx holds more than {MAX_DOCX_XML // 1_000_000} MB of text; add a part of it.",
    "no_text": "the file holds no text to read.",
}
HEADING_TAGS = {f"h{level}": level for level in range(1, 7)}
# HTML elements whose text is never shown; dropped with what they hold.
HIDDEN_TAGS = ("script", "style", "noscript", "template", "head", "svg", "math", "object", "iframe")
CELL_TAGS = frozenset({"td", "th"})  # a table's row is one line, its cells apart by " | " (as in a Word table)
# HTML elements that start a new paragraph.
BLOCK_TAGS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt", "fieldset"),
        *("figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "nav", "ol", "p", "pre"),
        *("section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul", *HEADING_TAGS),
    }
)
_WORD_HEADING = re.compile(r"(?:Heading|heading)\s*([1-9])$")
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
# Parsing Word, HTML and Markdown files: off the event loop, one at a time.
_parsing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="switchboard-knowledge")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Section:
    """A passage of a file as its structure has it: a PDF's page (`page`, from 1), or the text under a heading
    (`headings`: the path of headings above it, outermost first), or a whole file (neither)."""

    text: str
    page: int | None = None
    headings: tuple[str, ...] = ()


def is_knowledge_file(name: str) -> bool:
    """Whether a file of this name may be added to knowledge (a name without an extension is read as text)."""
    suffix = Path(name).suffix.lower()
    return suffix in KNOWLEDGE_EXTENSIONS or not suffix


async def read_sections(
    data: bytes,
    name: str,
    *,
    documents: DocumentReader | None = None,
    visitor: str = "",
    seconds: float = READ_SECONDS,
) -> list[Section]:
    """The sections of the file `data`, called `name`, in order; DocumentError with one sentence naming the file
    when it cannot be read or holds no text. A PDF is read by `documents` for `visitor` (its bounds, its CPU
    limit) when given, else in a process of its own held to `seconds` of CPU."""
    shown = Path(name).name
    suffix = Path(shown).suffix.lower()
    if suffix == ".pdf" or data.startswith(b"%PDF-"):
        if documents is not None:
            pages = await documents.read_pages(data, name=shown, visitor=visitor)
        else:
            pages = await read_pdf_pages(data, name=shown, seconds=seconds)
        return [Section(text, page=number) for number, text in enumerate(pages, 1) if text.strip()]
    if not is_knowledge_file(shown):
        raise _refusal(shown, "kind")
    if suffix == DOCX:
        parse: Callable[[bytes, str], list[Section]] = _docx_sections
    elif suffix in HTML_EXTENSIONS:
        parse = _html_sections
    elif suffix in MARKDOWN_EXTENSIONS:
        parse = _markdown_sections
    else:
        parse = _text_sections
    sections = await _off_loop(parse, data, shown)
    if not sections:
        raise _refusal(shown, "no_text")
    return sections


def _text_sections(data: bytes, shown: str) -> list[Section]:
    return [Section(decode_text(data, name=shown))]


def _markdown_sections(data: bytes, shown: str) -> list[Section]:
    """A section for the text before the first heading and one for each heading (its line included), found by
    markdown-it-py's block parser (ATX and Setext headings, never a line in a code block)."""
    from markdown_it import MarkdownIt

    text = decode_text(data, name=shown)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # the lines markdown-it numbers
    parser = MarkdownIt("commonmark").disable(["inline", "text_join"])  # blocks only: what a heading is
    tokens = parser.parse(text)
    starts: list[tuple[int, int, str]] = []  # (line, level, title)
    for position, token in enumerate(tokens):
        if token.type == "heading_open" and token.map and position + 1 < len(tokens):
            starts.append((token.map[0], int(token.tag[1]), _one_line(tokens[position + 1].content)))
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    bounds = [(0, 0, ""), *starts]
    for number, (line, level, title) in enumerate(bounds):
        end = bounds[number + 1][0] if number + 1 < len(bounds) else len(lines)
        if number:
            path = [entry for entry in path if entry[0] < level] + [(level, title)]
        body = "\n".join(lines[line:end]).strip()
        if body:
            sections.append(Section(body, headings=tuple(title for _, title in path)))
    return sections


def _html_sections(data: bytes, shown: str) -> list[Section]:
    """The text of an HTML page as a person sees it, in sections under its h1-h6 headings."""
    from lxml import etree
    from lxml import html as lxml_html

    decode_text(data, name=shown)  # UTF-8, as every text file (a page that says it is another is refused too)
    parser = lxml_html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    try:
        root = lxml_html.document_fromstring(data, parser=parser)
    except (etree.ParserError, ValueError):
        return []  # nothing an HTML parser can find: "no text"
    for hidden in [element for element in root.iter(*HIDDEN_TAGS) if element is not root]:
        hidden.drop_tree()  # (its tail, the text after it, stays)
    return _HtmlText(root).sections


class _HtmlText:
    """Walks an HTML tree once, in document order, gathering paragraphs and cutting sections at headings."""

    def __init__(self, root: HtmlElement) -> None:
        from lxml import etree

        self.sections: list[Section] = []
        self._path: list[tuple[int, str]] = []
        self._paragraphs: list[str] = []
        self._words: list[str] = []
        self._heading: list[str] | None = None  # the words of the heading being read
        self._pre = 0  # <pre> elements we are in: their spaces and lines are kept
        for event, element in etree.iterwalk(root, events=("start", "end")):
            tag = element.tag if isinstance(element.tag, str) else ""
            if event == "start":
                self._open(tag)
                self._add(element.text)
            else:
                self._close(tag)
                if element is not root:
                    self._add(element.tail)
        self._end_section()

    def _open(self, tag: str) -> None:
        if tag == "br":
            self._add_line_break()
        elif tag in CELL_TAGS and "".join(self._words).strip():
            self._words.append(" | ")
        elif tag in HEADING_TAGS:
            self._end_section()
            self._heading = []
        elif tag in BLOCK_TAGS:
            self._end_paragraph()
        if tag == "pre":
            self._pre += 1

    def _close(self, tag: str) -> None:
        if tag in HEADING_TAGS and self._heading is not None:
            title = _one_line(" ".join(self._heading))
            self._heading = None
            level = HEADING_TAGS[tag]
            self._path = [entry for entry in self._path if entry[0] < level]
            if title:
                self._path.append((level, title))
                self._paragraphs.append(title)
        elif tag in BLOCK_TAGS:
            self._end_paragraph()
        if tag == "pre":
            self._pre -= 1

    def _add(self, text: str | None) -> None:
        if not text:
            return
        if self._heading is not None:
            self._heading.append(text)
        elif self._pre:
            self._words.append(text)
        else:
            self._words.append(_SPACES.sub(" ", text))

    def _add_line_break(self) -> None:
        if self._heading is not None:
            self._heading.append(" ")
        else:
            self._words.append("\n")

    def _end_paragraph(self) -> None:
        paragraph = "".join(self._words).strip()
        self._words = []
        if paragraph:
            self._paragraphs.append(paragraph)

    def _end_section(self) -> None:
        self._end_paragraph()
        body = "\n\n".join(self._paragraphs)
        self._paragraphs = []
        if body:
            self.sections.append(Section(body, headings=tuple(title for _, title in self._path)))


def _docx_sections(data: bytes, shown: str) -> list[Section]:
    """The paragraphs and tables of a Word document in order, in sections under its headings ("Heading N" and
    "Title" styles), once its zip is known to be no bomb."""
    _check_docx_archive(data, shown)
    import docx
    from docx.table import Table
    from lxml import etree

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
        levels = {style.style_id: _heading_level(style.name) for style in document.styles}
    except (zipfile.BadZipFile, etree.LxmlError, KeyError, ValueError, TypeError, AttributeError):
        raise _refusal(shown, "docx_unreadable") from None
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []

    def end_section() -> None:
        body = "\n\n".join(lines).strip()
        lines.clear()
        if body:
            sections.append(Section(body, headings=tuple(title for _, title in path)))

    for block in blocks:
        if isinstance(block, Table):
            lines.append("\n".join(_table_rows(block)))
            continue
        text = block.text.strip()
        # The paragraph's own style id, looked up once per style: python-docx's `Paragraph.style` scans every style
        # for the default on each paragraph without one (20,000 paragraphs took 18 s, holding the GIL).
        level = levels.get(block._p.style or "", 0)
        if level and text:
            end_section()
            path = [entry for entry in path if entry[0] < level] + [(level, _one_line(text))]
        if text:
            lines.append(text)
    end_section()
    return sections


def _check_docx_archive(data: bytes, shown: str) -> None:
    """Refuse a .docx that is no zip, an old or protected Word file, a zip bomb or one with too much XML, from its
    zip directory alone (nothing is unpacked)."""
    if data.startswith(b"\xd0\xcf\x11\xe0"):  # an OLE compound file: .doc, or a .docx encrypted with a password
        raise _refusal(shown, "docx_old")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise _refusal(shown, "docx_unreadable") from None
    unpacked = sum(member.file_size for member in members)
    if (
        len(members) > MAX_DOCX_ENTRIES
        or unpacked > MAX_DOCX_UNPACKED
        or (unpacked > 1_000_000 and unpacked > MAX_DOCX_RATIO * len(data))
    ):
        raise _refusal(shown, "docx_bomb")
    if any(member.file_size > MAX_DOCX_XML for member in members if member.filename.endswith((".xml", ".rels"))):
        raise _refusal(shown, "docx_xml")


def _heading_level(style_name: str | None) -> int:
    """1-9 for a "Heading N" style, 1 for "Title", 0 for any other."""
    if style_name == "Title":
        return 1
    found = _WORD_HEADING.search(style_name or "")
    return int(found.group(1)) if found else 0


def _table_rows(table: Table) -> Iterator[str]:
    """Each row of a Word table as one line, its cells apart by " | "."""
    for row in table.rows:
        cells = [_one_line(cell.text) for cell in row.cells]
        if any(cells):
            yield " | ".join(cells)


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _refusal(shown: str, kind: str) -> DocumentError:
    return DocumentError(f"{shown}: {REFUSALS[kind]}")


async def _off_loop(function: Callable[[bytes, str], T], data: bytes, shown: str) -> T:
    return await asyncio.get_running_loop().run_in_executor(_parsing, function, data, shown)
