"""Attacks on what a shared instance spends, each reproduced against the real app over HTTP: a small PDF that costs
hours to read, uploads that fill the disk, and prompts larger than a message may be."""

from __future__ import annotations

import asyncio
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.gradio_http import GradioSession
from tests.test_documents import pdf_with_text
from tests.test_images_vision import png
from tests.test_share_mode import FILE_META, shared  # noqa: F401  (the fixture)

# What an answer that needs no work takes here is about a second at most (a login is one PBKDF2 hash, ~0.4 s); the
# bound is ten times that. Without the limits on reading documents, a login took 121 s.
ANSWER_BOUND = 10.0


def costly_pdf(pages: int = 100, operators: int = 300_000) -> bytes:
    """A PDF of a few kilobytes whose pages all point at one compressed content stream of `operators` text
    operators: pypdf parses it again for every page (3.4 s a page here: 100 pages, over five minutes)."""
    content = zlib.compress(b"BT /F1 1 Tf " + b"(a) Tj " * operators + b"ET", 9)
    kids = " ".join(f"{5 + n} 0 R" for n in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} /MediaBox [0 0 612 792] "
        "/Resources << /Font << /F1 3 0 R >> >> >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>"] * pages  # (the rest inherited from Pages)
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def upload(session: GradioSession, name: str, data: bytes, mime: str = "application/pdf") -> dict:
    """The file uploaded through Gradio's upload route, as the message box then names it."""
    response = session.http.post("gradio_api/upload", files={"files": (name, data, mime)})
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": name, "meta": FILE_META}


def send(session: GradioSession, text: str, files: list[dict], system_prompt: str = "") -> str:
    """Send a message as the message box does: "saved", or the sentence it was refused with (at the box: Gradio
    answers the join with 422; in a toast: the event's error)."""
    message = [{"text": text, "files": files}, [], None, "cloud/chat", system_prompt, 0.7, 1, 0, -1, "", ""]
    try:
        outcome = session.call(session.fn_index("message", "submit"), message)
    except httpx.HTTPStatusError as error:
        return validator_refusal(error)
    return "saved" if outcome["success"] else outcome["output"]["error"]


def validator_refusal(error: httpx.HTTPStatusError) -> str:
    """The sentence an event's validator refused it with (Gradio answers the join with 422)."""
    assert error.response.status_code == 422
    return str(next(item["message"] for item in error.response.json()["detail"] if item["message"]))


# --- documents ---------------------------------------------------------------------------------------------------


def test_a_costly_pdf_is_refused_and_starves_nobody(shared, monkeypatch):  # noqa: F811
    """The attack: a 13 KB PDF that takes pypdf over five minutes, sent six times at once; reading it on the server's
    worker threads made another user's login take 121 s. Now each send is refused in one sentence (read in a
    process of its own held to `document_read_timeout` of CPU, two at a time, one per visitor), and meanwhile
    another user signs in and chats as usual. A file refused once is not read again."""
    monkeypatch.setenv("TEAM", "alice:alice-secret,bob:bob-secret,carol:carol-secret,dave:dave-secret")
    url, cloud, backend = shared("document_read_timeout = 2")
    costly = costly_pdf()
    assert len(costly) < 20_000
    attackers = [GradioSession(url, name, f"{name}-secret") for name in ("alice", "carol", "dave")]
    files = [upload(session, "costly.pdf", costly) for session in attackers]
    with ThreadPoolExecutor(6) as pool:
        sends = [pool.submit(send, attackers[n % 3], "Summarise it.", [files[n % 3]]) for n in range(6)]
        assert cloud.wait_for(lambda: backend.documents.parsed >= 2, timeout=30)  # two are being read

        started = time.perf_counter()
        signed_in = httpx.post(url + "login", data={"username": "bob", "password": "bob-secret"}, timeout=60)
        assert signed_in.status_code == 200 and time.perf_counter() - started < ANSWER_BOUND
        started = time.perf_counter()
        bob = GradioSession(url, "bob", "bob-secret")
        answered = bob.call(bob.api_fn_index("chat"), ["hi", "cloud/chat"])
        assert answered["success"] and answered["output"]["data"][0] == "Hello from the scripted upstream."
        assert time.perf_counter() - started < ANSWER_BOUND
        outcomes = [future.result(timeout=120) for future in sends]

    assert "saved" not in outcomes
    assert all(outcome.count(". ") == 0 and outcome.endswith(".") for outcome in outcomes), outcomes
    too_long = "costly.pdf: this PDF takes too long to read (more than 2 s); attach a part of it, or its text."
    assert outcomes.count(too_long) >= 2, outcomes
    assert set(outcomes) <= {
        too_long,
        "costly.pdf: another of your documents is being read; send this one after it.",
        "costly.pdf: the server is busy reading other documents; try again in a minute.",
    }, outcomes
    # Sent again, it is known by its content: refused at once, not read again.
    parsed = backend.documents.parsed
    assert send(attackers[0], "And now?", [upload(attackers[0], "again.pdf", costly)]) == too_long.replace(
        "costly.pdf", "again.pdf"
    )
    assert backend.documents.parsed == parsed
    assert len(cloud.chat_requests()) == 1  # Bob's chat only
    assert all(not asyncio.run(backend.conversations.list(name)) for name in ("alice", "carol", "dave"))
    for session in (*attackers, bob):
        session.close()


def test_a_document_is_read_once_for_its_check_and_its_send(shared):  # noqa: F811
    """The message box's check and the send read an attached PDF once between them (its text is known by its
    content the second time), and the model gets its text."""
    url, cloud, backend = shared()
    alice = GradioSession(url, "alice", "alice-secret")
    report = upload(alice, "report.pdf", pdf_with_text("Revenue grew by half"))
    assert send(alice, "What does it say?", [report]) == "saved"
    assert cloud.wait_for(lambda: len(cloud.chat_requests()) == 1 and not backend.replies.active(), 10)
    assert backend.documents.parsed == 1
    sent = cloud.chat_requests()[0].body["messages"][-1]["content"]
    assert sent.startswith('<document name="report.pdf">\n[page 1]\nRevenue grew by half')
    alice.close()


async def test_pdfs_are_read_two_at_a_time_with_a_bounded_line(tmp_path):
    """However many visitors send PDFs at once, two are read and four wait; the next is refused in one sentence."""
    from backend import DocumentReader
    from backend.documents.reader import READERS, WAITING

    reader = DocumentReader(max_bytes=1_000_000, seconds=1)
    path = tmp_path / "costly.pdf"
    path.write_bytes(costly_pdf())
    reads = [reader.read(path, visitor=f"visitor {n}") for n in range(READERS + WAITING + 1)]
    outcomes = [error.user_message() for error in await asyncio.gather(*reads, return_exceptions=True)]
    assert outcomes.count("costly.pdf: the server is busy reading other documents; try again in a minute.") == 1
    too_long = "costly.pdf: this PDF takes too long to read (more than 1 s); attach a part of it, or its text."
    assert outcomes.count(too_long) == READERS + WAITING


# --- uploads -----------------------------------------------------------------------------------------------------


def test_uploads_count_against_the_visitor_and_the_folder(shared, monkeypatch, tmp_path):  # noqa: F811
    """The attack: 30 uploads of 9.9 MB stored 300 MB in 3 s, counted against nothing. Now a visitor's uploads
    count against `max_upload_mb_per_hour` (429 and one sentence past it; others upload as before), and the
    upload folder holds at most `max_upload_folder_mb` (507 and one sentence past it)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    url, _, _ = shared("max_upload_mb_per_hour = 3\nmax_upload_folder_mb = 4")
    alice = GradioSession(url, "alice", "alice-secret")
    chunk = b"\0" * 900_000
    answers = [alice.http.post("gradio_api/upload", files={"files": (f"{n}.bin", chunk)}) for n in range(30)]
    assert [answer.status_code for answer in answers] == [200] * 3 + [429] * 27
    refused = answers[3]
    assert refused.text.startswith("This upload would take you over the 3 MB you may upload in an hour here; try")
    assert refused.text.count(". ") == 0 and int(refused.headers["retry-after"]) > 3000
    stored = sum(path.stat().st_size for path in (tmp_path / "gradio").rglob("*") if path.is_file())
    assert stored == 3 * len(chunk)

    bob = GradioSession(url, "bob", "bob-secret")
    assert bob.http.post("gradio_api/upload", files={"files": ("b.bin", chunk)}).status_code == 200
    full = bob.http.post("gradio_api/upload", files={"files": ("c.bin", chunk)})
    assert full.status_code == 507
    assert full.text == "The server holds as many uploads as it may right now; try again in a while."
    alice.close()
    bob.close()


def test_uploads_are_deleted_and_sent_files_stay(shared, monkeypatch, tmp_path):  # noqa: F811
    """The attack's other half: uploads were never deleted. Now each is deleted `upload_kept_minutes` after it
    arrived, which makes room in the folder again; a message sent with one keeps its own copy, which its chat still
    shows."""
    folder = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    url, cloud, backend = shared("upload_kept_minutes = 0.05\nmax_upload_folder_mb = 1.5")  # 3 s
    alice = GradioSession(url, "alice", "alice-secret")
    picture = upload(alice, "dot.png", png(), "image/png")
    assert send(alice, "What is in it?", [picture]) == "saved"
    assert cloud.wait_for(lambda: not backend.replies.active() and cloud.chat_requests(), 10)
    [chat] = asyncio.run(backend.conversations.list("alice"))
    assert alice.http.post("gradio_api/upload", files={"files": ("a.bin", b"\0" * 900_000)}).status_code == 200
    assert alice.http.post("gradio_api/upload", files={"files": ("b.bin", b"\1" * 900_000)}).status_code == 507

    assert cloud.wait_for(lambda: not any(path.is_file() for path in folder.rglob("*")), timeout=60)
    assert alice.http.post("gradio_api/upload", files={"files": ("b.bin", b"\1" * 900_000)}).status_code == 200
    shown = alice.open_address(chat.id)
    [image] = [part for message in shown if message["role"] == "user" for part in message["content"][1:]]
    assert alice.http.get(f"gradio_api/file={image['file']['path']}").content == png()
    alice.close()


async def test_the_upload_allowance_is_a_sliding_hour():
    """Bytes count for an hour from the minute they were uploaded; a refusal says when enough will have left."""
    from backend import TooManyRequestsError, UploadAllowance

    now = [1000.0]
    allowance = UploadAllowance(3_000_000, clock=lambda: now[0])
    await allowance.take("ann", 2_000_000)
    now[0] += 600
    await allowance.take("ann", 1_000_000)
    await allowance.take("bob", 3_000_000)  # counted apart
    try:
        await allowance.take("ann", 500_000)
        raise AssertionError("over the allowance")
    except TooManyRequestsError as refused:
        assert refused.retry_after == 960 + 3600 - now[0]  # when the first minute's 2 MB leave
        assert refused.user_message().endswith("try again in 50 min.")
    now[0] = 960 + 3600 + 1
    await allowance.take("ann", 2_000_000)


def test_a_visitors_upload_allowance_holds_across_replicas(
    upstream, write_config, redis_server, serve_app, monkeypatch
):
    """With replicas, a visitor's upload bytes are counted in Redis: what they uploaded through one replica counts
    on the other."""
    from backend import Backend, load_settings, load_users
    from tests.test_replicas import replica_config

    monkeypatch.setenv("TEST_REDIS_PASSWORD", redis_server.password)
    monkeypatch.setenv("TEAM", "alice:alice-secret")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(write_config("", "gradio/.keep").parent))
    config = replica_config(upstream, redis_server) + '\n[auth]\nusers_env = "TEAM"\n'
    path = write_config(config.replace("[app]\n", "[app]\nmax_upload_mb_per_hour = 2\n"))
    first, second = (serve_app(Backend(load_settings(path)), users=load_users(None, "TEAM")) for _ in range(2))
    sessions = [GradioSession(url, "alice", "alice-secret") for url in (first, second, first)]
    chunk = b"\0" * 900_000
    answers = [session.http.post("gradio_api/upload", files={"files": ("a.bin", chunk)}) for session in sessions]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert "the 2 MB you may upload in an hour" in answers[2].text
    for session in sessions:
        session.close()


# --- prompts -----------------------------------------------------------------------------------------------------


def test_no_prompt_is_longer_than_a_message_may_be(shared):  # noqa: F811
    """The attack: a 5 MB system prompt was accepted, stored with the chat and sent upstream with every reply, and
    a preset, Compare, the Vision question, an image prompt, the `chat` endpoint and the `/v1` API took any length.
    Now `max_message_chars` bounds each, with one sentence, and nothing is stored or sent."""
    url, cloud, backend = shared('max_message_chars = 1000\n[routes]\nsteady = ["cloud/chat"]\n')
    long = "x" * 1001
    said = "has 1,001 characters; the limit here is 1,000."
    alice = GradioSession(url, "alice", "alice-secret")
    assert send(alice, "hi", [], system_prompt=long) == f"The system prompt {said}"
    shown, chat_id = alice.send("hi")
    assert cloud.wait_for(lambda: not backend.replies.active() and len(cloud.chat_requests()) == 1, 10)
    for trigger in ("retry", "edit"):
        again = alice.call(
            alice.fn_index("chatbot", trigger),
            [shown, None, chat_id, "cloud/chat", long, 0.7, 1, 0, -1],
            None,
            {"index": 0, "value": "hi again", "previous_value": "hi"},
        )
        assert not again["success"] and again["output"]["error"] == f"The system prompt {said}", trigger

    saved = alice.call(alice.fn_index("save-preset", "click"), ["Long", long])
    assert saved["success"] and asyncio.run(backend.presets.list("alice")) == []

    compare = [["cloud/chat", "steady"], "Which is it?", None, "", long]
    try:
        alice.call(alice.fn_index("compare-run", "click"), compare)
        raise AssertionError("the comparison started")
    except httpx.HTTPStatusError as refused:
        assert validator_refusal(refused) == f"The system prompt {said}"

    for endpoint, inputs, what in (
        ("chat", [long, "cloud/chat"], "message"),
        ("generate_image", [long, None, "1024x1024", 1, "", -1], "prompt"),
        ("describe_image", [None, long, "cloud/chat", "https://example.com/cat.png"], "question"),
    ):
        try:
            outcome = alice.call(alice.api_fn_index(endpoint), inputs)
            sentence = outcome["output"]["error"]
        except httpx.HTTPStatusError as refused:  # (by the event's validator)
            sentence = validator_refusal(refused)
        assert sentence == f"The {what} {said}", endpoint

    _, key = asyncio.run(backend.api_keys.create("alice"))
    api = httpx.post(
        url + "v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "cloud/chat",
            "messages": [{"role": "system", "content": long}, {"role": "user", "content": "hi"}],
        },
        timeout=30,
    )
    assert api.status_code == 400 and api.json()["error"]["message"] == f"A system message {said}"

    assert len(cloud.chat_requests()) == 1  # the one message sent
    stored = asyncio.run(backend.conversations.get("alice", chat_id))
    assert stored.settings["system_prompt"] == "" and len(stored.nodes) == 2  # nothing else kept
    alice.close()
