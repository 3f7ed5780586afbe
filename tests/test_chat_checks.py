"""What the Chat tab checks before it saves or sends anything (webui/chat/checks.py), without a browser or a page:
a message's text and attachments as the message box gives them, a text's length, the visitor's limits, and each
refusal's one sentence. The checks that read files and models run over a real Backend (the scripted upstream)."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from backend import Backend, VisitorLimits, load_settings
from tests.conftest import scripted_config
from webui.chat import checks


def png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (8, 8), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def backend(upstream, write_config):
    """The scripted upstream's one model (it reads no images); a message may have at most 40 characters."""
    config = scripted_config(upstream).replace("[app]\n", "[app]\nmax_message_chars = 40\n", 1)
    return Backend(load_settings(write_config(config)))


def test_a_message_is_its_text_and_its_files_split_into_pictures_and_documents():
    message = {
        "text": "  look at these \n",
        "files": [
            {"path": "/up/a1b2", "orig_name": "notes.md"},  # a document by the name it was attached under
            {"path": "/up/c3d4", "orig_name": "photo.png"},
            "/up/plain.txt",  # a bare path: its own name
            {"path": "/up/e5f6"},  # no name: a picture, checked as one by its content
        ],
    }
    assert checks.sent_text(message) == "look at these"
    pictures, documents = checks.attachments(message)
    assert pictures == ["/up/c3d4", "/up/e5f6"]
    assert documents == [("/up/a1b2", "notes.md"), ("/up/plain.txt", "plain.txt")]
    assert checks.file_paths(message) == ["/up/a1b2", "/up/c3d4", "/up/plain.txt", "/up/e5f6"]
    # What a page (or a forged request) may send instead of a message.
    for nothing in (None, {}, {"text": None, "files": None}):
        assert checks.sent_text(nothing) == ""
        assert checks.attachments(nothing) == ([], [])
        assert checks.file_paths(nothing) == []


def test_a_text_longer_than_the_limit_is_refused_in_one_sentence():
    assert checks.text_problem("x" * 40, 40) is None
    assert checks.text_problem(None, 40) is None
    assert checks.text_problem("x" * 1041, 1000, "system prompt") == (
        "The system prompt has 1,041 characters; the limit here is 1,000."
    )
    assert checks.system_prompt_problem("x" * 41, 40) == "The system prompt has 41 characters; the limit here is 40."
    assert checks.edit_problem("", 40) == checks.EMPTY_MESSAGE == "Type a message first."
    assert checks.edit_problem("x" * 41, 40) == "The message has 41 characters; the limit here is 40."
    assert checks.edit_problem("fine", 40) is None


async def test_the_visitors_limits_are_checked_without_counting():
    limits = VisitorLimits(max_concurrent=1, max_per_minute=2)
    assert await checks.limit_problem(limits, "address:1.2.3.4") is None
    assert await checks.limit_problem(limits, "address:1.2.3.4") is None  # (checking counts nothing)
    await limits.count("address:1.2.3.4")
    await limits.count("address:1.2.3.4")
    problem = await checks.limit_problem(limits, "address:1.2.3.4")
    assert problem is not None and "minute" in problem
    assert await checks.limit_problem(limits, "address:5.6.7.8") is None  # another visitor's own allowance
    assert await checks.limit_problem(VisitorLimits.off(), "address:1.2.3.4") is None


async def test_a_message_problem_is_one_sentence_and_none_when_it_can_be_sent(backend, tmp_path):
    limits = VisitorLimits.off()
    model = "scripted/scripted-1"

    async def problem(message):
        return await checks.message_problem(backend, limits, message, model, "address:1.2.3.4")

    assert await problem({"text": "Hello", "files": []}) is None
    assert await problem({"text": "   ", "files": []}) == "Type a message first."
    assert await problem(None) == "Type a message first."
    assert await problem({"text": "x" * 41, "files": []}) == "The message has 41 characters; the limit here is 40."
    notes = tmp_path / "a1b2"
    notes.write_text("Foxes are small omnivores.", encoding="utf-8")
    assert await problem({"text": "Sum it up", "files": [{"path": str(notes), "orig_name": "notes.txt"}]}) is None
    picture = tmp_path / "c3d4"
    picture.write_bytes(png())
    assert await problem({"text": "", "files": [{"path": str(picture), "orig_name": "photo.png"}]}) == (
        "scripted/scripted-1 does not read images; pick a vision model, or send the text alone."
    )
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not a picture at all")
    refused = await problem({"text": "", "files": [{"path": str(fake), "orig_name": "fake.png"}]})
    assert refused is not None and refused.startswith("fake.png: ")
    await backend.aclose()


async def test_a_message_is_refused_when_the_visitor_is_over_a_limit(backend):
    limits = VisitorLimits(max_concurrent=0, max_per_minute=1)
    await limits.count("address:1.2.3.4")
    refused = await checks.message_problem(
        backend, limits, {"text": "Hello", "files": []}, "scripted/scripted-1", "address:1.2.3.4"
    )
    assert refused is not None and "minute" in refused
    await backend.aclose()
