"""Documents attached to chat messages (backend/documents/): text and code files and PDFs become text the model
reads with the message, by their content; bad files get one sentence each; a document that cannot fit in the
model's context is refused with one sentence; the text is stored with the message and exported."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from backend import (
    Backend,
    Conversation,
    DocumentError,
    StoredDocument,
    StoredMessage,
    check_fits,
    load_settings,
    model_messages,
    parse_import,
    read_document,
)
from tests.conftest import scripted_config

LIMIT = 1_000_000


def pdf_with_text(*pages: str) -> bytes:
    """A small, valid PDF with one line of text on each page (Helvetica), written by hand."""
    count = len(pages)
    kids = " ".join(f"{3 + 2 * n} 0 R" for n in range(count))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode()]
    font = 3 + 2 * count
    for number, text in enumerate(pages):
        content = f"BT /F1 18 Tf 72 700 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * number} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def encrypted(pdf: bytes) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


async def test_text_code_and_pdf_files_are_read_by_their_content(tmp_path: Path):
    notes = await read_document(write(tmp_path, "notes.md", "# Plan\n\nShip it — on Friday.".encode()), max_bytes=LIMIT)
    assert (notes.name, notes.text, notes.mime) == ("notes.md", "# Plan\n\nShip it — on Friday.", "text/plain")
    code = await read_document(write(tmp_path, "x.py", b"\xef\xbb\xbfprint('hi')\n"), max_bytes=LIMIT)
    assert code.text == "print('hi')\n"  # the byte-order mark is not text
    pdf = await read_document(
        write(tmp_path, "report.pdf", pdf_with_text("Revenue grew", "Costs fell")), max_bytes=LIMIT
    )
    assert pdf.mime == "application/pdf" and pdf.data.startswith(b"%PDF-")
    assert "[page 1]\nRevenue grew" in pdf.text and "[page 2]\nCosts fell" in pdf.text
    assert pdf.for_model().startswith('<document name="report.pdf">\n') and pdf.for_model().endswith("</document>")


@pytest.mark.parametrize(
    ("name", "data", "sentence"),
    [
        ("broken.pdf", b"%PDF-1.4\nthis is not really a PDF", "cannot be read as a PDF"),
        ("picture.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not a text file"),
        ("latin.csv", "café;1\n".encode("latin-1"), "is not UTF-8"),
        ("empty.txt", b"  \n", "is empty"),
        ("scan.pdf", pdf_with_text(""), "has no text to read"),
    ],
)
async def test_a_file_that_is_not_a_readable_document_gets_one_sentence(tmp_path: Path, name, data, sentence):
    with pytest.raises(DocumentError) as refused:
        await read_document(write(tmp_path, name, data), max_bytes=LIMIT)
    message = refused.value.user_message()
    assert message.startswith(f"{name}: ") and sentence in message and "\n" not in message
    assert "pypdf" not in message and "Error" not in message


async def test_a_protected_or_oversized_file_is_refused(tmp_path: Path):
    with pytest.raises(DocumentError, match="protected by a password"):
        await read_document(write(tmp_path, "locked.pdf", encrypted(pdf_with_text("secret"))), max_bytes=LIMIT)
    with pytest.raises(DocumentError, match="larger than 1 MB"):
        await read_document(write(tmp_path, "big.txt", b"a" * (LIMIT + 1)), max_bytes=LIMIT)


async def test_a_document_too_long_for_the_model_is_refused_with_the_numbers(tmp_path: Path):
    book = await read_document(write(tmp_path, "book.txt", b"word " * 20_000), max_bytes=LIMIT)  # ~25,000 tokens
    check_fits([book], "big/model", 128_000)
    check_fits([book], "unknown/model", None)  # no context length known: nothing to go by
    with pytest.raises(DocumentError) as refused:
        check_fits([book], "small/model", 8_192)
    assert "book.txt: about 25,0" in refused.value.user_message()
    assert "small/model" in refused.value.user_message() and "8,192 tokens" in refused.value.user_message()


async def test_the_model_reads_each_document_with_its_name_and_exports_keep_the_text(upstream, write_config):
    backend = Backend(load_settings(write_config(scripted_config(upstream))))
    conversation = Conversation()
    conversation.add(
        StoredMessage(
            role="user",
            text="Summarise both.",
            documents=[StoredDocument(name="a.txt", text="Alpha."), StoredDocument(name="b.pdf", text="Beta.")],
        )
    )
    sent = await model_messages(backend.conversations, "ann", conversation)
    assert sent == [
        {
            "role": "user",
            "content": '<document name="a.txt">\nAlpha.\n</document>\n\n'
            '<document name="b.pdf">\nBeta.\n</document>\n\nSummarise both.',
        }
    ]
    assert "📎 a.txt" in conversation.to_markdown() and "📎 b.pdf" in conversation.to_markdown()
    again = parse_import(json.dumps(conversation.to_export()).encode())
    assert [(d.name, d.text, d.file) for d in again.messages[0].documents] == [
        ("a.txt", "Alpha.", None),
        ("b.pdf", "Beta.", None),
    ]


@pytest.mark.browser
def test_a_pdf_attached_in_the_chat_reaches_the_model_and_a_bad_one_is_refused_at_the_box(
    request: pytest.FixtureRequest, upstream, write_config, serve_app, tmp_path: Path
):
    from playwright.sync_api import expect

    from tests.test_browser import MESSAGE_BOX, WAIT, answer, open_chat, sent_messages
    from tests.test_browser_media import REFUSAL, attach

    page = open_chat(request, serve_app(Backend(load_settings(write_config(scripted_config(upstream))))))
    broken = write(tmp_path, "broken.pdf", b"%PDF-1.4\nnot a PDF at all")
    attach(page, broken)
    page.locator(MESSAGE_BOX).fill("What does it say?")
    page.locator(MESSAGE_BOX).press("Enter")
    expect(page.locator(REFUSAL)).to_have_text("broken.pdf: this file cannot be read as a PDF.", timeout=WAIT)
    expect(page.locator(MESSAGE_BOX)).to_have_value("What does it say?")  # nothing typed is lost
    assert upstream.chat_requests() == []

    page.locator("#message button[aria-label='Remove file']").first.click()
    attach(page, write(tmp_path, "report.pdf", pdf_with_text("Revenue grew by half")))
    page.locator(MESSAGE_BOX).press("Enter")
    expect(answer(page)).to_have_text("Hello from the scripted upstream.", timeout=WAIT)
    chip = page.locator("#chatbot .user-row").get_by_text("report.pdf")  # the file chip
    expect(chip.first).to_be_visible()
    [question] = sent_messages(upstream.chat_requests()[0])
    assert question["content"].startswith('<document name="report.pdf">\n[page 1]\nRevenue grew by half')
    assert question["content"].endswith("</document>\n\nWhat does it say?")
    page.reload()  # reopened, the message still shows its document
    expect(page.locator("#chatbot .user-row").get_by_text("report.pdf").first).to_be_visible(timeout=WAIT)
