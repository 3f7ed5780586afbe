"""Reading files for knowledge (backend/knowledge/readers.py): each format with its structure (PDF pages, Markdown,
HTML and Word headings), and the bad inputs, each refused in one sentence naming the file: a scanned PDF with no
text, a PDF over 2,000 pages (2,000 are read), zip bombs disguised as .docx, a file in an unknown encoding."""

from __future__ import annotations

import io
import zipfile

import pytest

from backend import DocumentError, DocumentReader
from backend.knowledge.readers import MAX_DOCX_XML, Section, is_knowledge_file, read_sections
from tests.test_documents import pdf_with_text


def word_document(*blocks: tuple[str, str]) -> bytes:
    """A .docx made by python-docx: ("h1".."h3", text) headings, ("p", text) paragraphs, ("table", "a|b;c|d")."""
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind.startswith("h"):
            document.add_heading(text, int(kind[1:]))
        elif kind == "table":
            rows = [row.split("|") for row in text.split(";")]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def with_document_xml(docx_bytes: bytes, pad: bytes, copies: int) -> bytes:
    """`docx_bytes` whose word/document.xml has `pad` written `copies` times after its <w:body> tag (valid XML that
    python-docx reads as the same document), written piece by piece so the test never holds it unpacked."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx_bytes)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename != "word/document.xml":
                target.writestr(member, data)
                continue
            head, body, tail = data.partition(b"<w:body>")
            packed = zipfile.ZipInfo("word/document.xml")
            packed.compress_type = zipfile.ZIP_DEFLATED
            with target.open(packed, "w", force_zip64=True) as stream:
                stream.write(head + body)
                for _ in range(copies):
                    stream.write(pad)
                stream.write(tail)
    return out.getvalue()


def scanned_pdf() -> bytes:
    """A PDF of one page holding only a picture, as a scanner makes them (written by Pillow)."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(picture).text((20, 20), "Scanned words are pixels", fill="black")
    out = io.BytesIO()
    picture.save(out, "PDF")
    return out.getvalue()


async def test_text_csv_json_and_code_are_one_section_each():
    assert await read_sections(b"Plain notes.\n", "notes.txt") == [Section("Plain notes.\n")]
    assert await read_sections(b"name,age\nann,31\n", "people.csv") == [Section("name,age\nann,31\n")]
    assert await read_sections(b'{"a": 1}', "data.json") == [Section('{"a": 1}')]
    code = b"# a comment, not a heading\nprint('hi')\n"
    assert await read_sections(code, "tool.py") == [Section(code.decode())]
    assert await read_sections(b"make all\n", "Makefile") == [Section("make all\n")]  # no extension: text
    assert is_knowledge_file("book.pdf") and is_knowledge_file("report.docx") and is_knowledge_file("README")
    assert not is_knowledge_file("photo.png")


async def test_markdown_sections_keep_their_heading_path():
    text = (
        "Before any heading.\n\n# Manual\n\nWelcome.\n\n## Install\n\n```sh\n# not a heading\npip install x\n```\n\n"
        "### On Linux\nUse apt.\n\nSetext heading\n--------------\n\nUnder it.\n\n# Appendix\nThe end.\n"
    )
    sections = await read_sections(text.encode(), "guide.md")
    assert [(section.headings, section.text.splitlines()[0]) for section in sections] == [
        ((), "Before any heading."),
        (("Manual",), "# Manual"),
        (("Manual", "Install"), "## Install"),
        (("Manual", "Install", "On Linux"), "### On Linux"),
        (("Manual", "Setext heading"), "Setext heading"),
        (("Appendix",), "# Appendix"),
    ]
    assert "# not a heading\npip install x" in sections[2].text


async def test_html_is_its_visible_text_under_its_headings():
    page = b"""<!doctype html><html><head><title>Hidden title</title><style>p { color: red }</style></head>
    <body><h1>Guide</h1><p>Hello <b>world</b>,
       spread   over lines.</p><script>var secret = "never read";</script><p>After the script.</p>
    <h2>Part <i>A</i></h2><table><tr><th>key</th><th>value</th></tr><tr><td>a</td><td>1</td></tr></table>
    <noscript>Turn on JavaScript</noscript><h1>Next</h1><div>Line one<br>line two</div></body></html>"""
    sections = await read_sections(page, "page.html")
    assert sections == [
        Section("Guide\n\nHello world, spread over lines.\n\nAfter the script.", headings=("Guide",)),
        Section("Part A\n\nkey | value\n\na | 1", headings=("Guide", "Part A")),
        Section("Next\n\nLine one\nline two", headings=("Next",)),
    ]


async def test_word_documents_keep_headings_paragraphs_and_tables():
    data = word_document(
        ("p", "Before any heading."),
        ("h1", "Chapter One"),
        ("p", "The first chapter."),
        ("h2", "A Section"),
        ("table", "key|value;a|1"),
        ("h1", "Chapter Two"),
        ("p", "The second."),
    )
    assert await read_sections(data, "book.docx") == [
        Section("Before any heading."),
        Section("Chapter One\n\nThe first chapter.", headings=("Chapter One",)),
        Section("A Section\n\nkey | value\na | 1", headings=("Chapter One", "A Section")),
        Section("Chapter Two\n\nThe second.", headings=("Chapter Two",)),
    ]


async def test_pdf_pages_keep_their_numbers_and_a_reader_bounds_and_remembers():
    pdf = pdf_with_text("Revenue grew", "", "Costs fell")
    expected = [Section("Revenue grew", page=1), Section("Costs fell", page=3)]  # a page without text is left out
    assert await read_sections(pdf, "report.pdf") == expected
    reader = DocumentReader(max_bytes=1_000_000)
    assert await read_sections(pdf, "report.pdf", documents=reader, visitor="ann") == expected
    scan = scanned_pdf()
    for _ in range(2):  # a lasting refusal is remembered by content: read once
        with pytest.raises(DocumentError, match="no text to read"):
            await read_sections(scan, "scan.pdf", documents=reader, visitor="ann")
    assert reader.parsed == 2


async def test_a_2000_page_pdf_is_read_within_the_time_limit_and_one_more_page_is_refused():
    pages = [f"Page {number} of the long report." for number in range(1, 2001)]
    sections = await read_sections(pdf_with_text(*pages), "long.pdf")  # the default limit: 20 s of CPU
    assert len(sections) == 2000
    assert sections[1999] == Section("Page 2000 of the long report.", page=2000)
    with pytest.raises(DocumentError) as refused:
        await read_sections(pdf_with_text(*pages, "One page too many."), "longer.pdf")
    assert refused.value.user_message() == "longer.pdf: the PDF has more than 2,000 pages."


@pytest.mark.parametrize(
    ("name", "data", "sentence"),
    [
        ("scan.pdf", scanned_pdf(), "scan.pdf: the PDF has no text to read (a scan?); attach a PDF with text in it."),
        ("latin.txt", "café crème".encode("cp1252"), "latin.txt: the text is not UTF-8; save it as UTF-8 and attach"),
        ("page.html", '<meta charset="shift_jis"><p>日本</p>'.encode("shift_jis"), "page.html: the text is not UTF-8"),
        ("notes.md", "# Überschrift".encode("latin-1"), "notes.md: the text is not UTF-8"),
        ("wide.txt", "hello".encode("utf-16"), "wide.txt: this is not a text file"),
        ("photo.png", b"\x89PNG\r\n\x1a\n", "photo.png: knowledge reads text, Markdown, CSV, JSON, code, PDF, Word"),
        ("report.docx", b"not a zip at all", "report.docx: this file cannot be read as a Word document (.docx)."),
        ("old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "old.docx: this is an old (.doc) or password"),
        ("empty.docx", word_document(), "empty.docx: the file holds no text to read."),
        ("blank.html", b"<html><script>x()</script></html>", "blank.html: the file holds no text to read."),
    ],
)
async def test_a_file_that_cannot_be_read_gets_one_sentence(name, data, sentence):
    with pytest.raises(DocumentError) as refused:
        await read_sections(data, name)
    message = refused.value.user_message()
    assert message.startswith(sentence) and "\n" not in message and "Error" not in message


def packs_about_60_to_1() -> bytes:
    """1 MB of XML filler that deflate packs to about 17 KB: 20 KB of random text, then blanks (zip's window is
    32 KB, so repeating it packs no better)."""
    import base64
    import os

    noise = base64.b64encode(os.urandom(15_000))
    return noise + b" " * (1_000_000 - len(noise))


BOMB = "letter.docx: this .docx unpacks to far more than a document holds (a zip bomb?); it was not opened."


@pytest.mark.parametrize(
    ("pad", "copies"),
    [
        (b" " * 1_000_000, 30),  # 30 MB of blanks in 30 KB: packed 1,000 to 1 (real documents: 3 to 20)
        (packs_about_60_to_1(), 120),  # 120 MB in 2 MB: more than MAX_DOCX_UNPACKED, though packed only 60 to 1
    ],
)
async def test_a_zip_bomb_disguised_as_docx_is_refused_before_it_is_opened(pad, copies):
    bomb = with_document_xml(word_document(("p", "Looks like a letter.")), pad, copies)
    assert len(bomb) < 3_000_000
    with pytest.raises(DocumentError) as refused:
        await read_sections(bomb, "letter.docx")
    assert refused.value.user_message() == BOMB


async def test_a_docx_with_more_xml_than_any_document_is_refused():
    filler = packs_about_60_to_1()
    heavy = with_document_xml(word_document(("p", "Text.")), filler, MAX_DOCX_XML // len(filler) + 1)  # 26 MB
    with pytest.raises(DocumentError) as refused:
        await read_sections(heavy, "heavy.docx")
    assert refused.value.user_message() == "heavy.docx: this .docx holds more than 25 MB of text; add a part of it."


async def test_a_long_word_document_looks_each_style_up_once_not_each_paragraph(monkeypatch):
    """python-docx's `Paragraph.style` scans every style for the default of each paragraph without its own: 20,000
    paragraphs took 18 s of the interpreter's lock (1.3 s read by style id). Counted here, not timed."""
    from docx.styles.styles import Styles

    scans = 0
    default = Styles.default

    def counted(self, style_type):
        nonlocal scans
        scans += 1
        return default(self, style_type)

    monkeypatch.setattr(Styles, "default", counted)
    blocks = [("h1", "Chapter")] + [("p", f"Paragraph {n}.") for n in range(2_000)]
    sections = await read_sections(word_document(*blocks), "long.docx")
    assert len(sections) == 1 and sections[0].text.endswith("Paragraph 1999.")
    assert scans < 10
