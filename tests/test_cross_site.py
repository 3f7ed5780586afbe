"""Other sites' pages, and images in a reply, against a signed-in browser: no page elsewhere can sign the browser in
to an account of its choosing (login CSRF), sign it out, or act as it; `GET /logout` signs no one out, and a page
of the app itself signs out with a POST."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.conftest import log_in
from tests.gradio_http import GradioSession
from tests.test_share_mode import shared  # noqa: F401  (the fixture)
from tests.upstream import Reply

EVIL = "https://evil.example"
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Origin": EVIL}
BOBS_LOGIN = {"username": "bob", "password": "bob-secret"}


def signed_in_as(url: str, cookies: httpx.Cookies | dict[str, str]) -> str | None:
    answer = httpx.get(url + "gradio_api/user", cookies=cookies, timeout=10, trust_env=False)
    return answer.json() if answer.status_code == 200 else None


def test_another_site_cannot_sign_a_browser_in(shared):  # noqa: F811
    """The login form posted by another site's page (another port of the same host is another origin too) is
    refused, and sets no cookie; from the app's own page, or from a client that is no browser, it signs in."""
    url, _, _ = shared()
    host = url.split("/")[2]
    refused = [
        CROSS_SITE,
        {"Sec-Fetch-Site": "same-site", "Origin": f"http://{host.split(':')[0]}:1"},
        {"Origin": EVIL},  # a browser that does not send Sec-Fetch-Site: the origin is not this host
        {"Origin": "null"},  # (a sandboxed frame, a page from a file)
    ]
    for headers in refused:
        answer = httpx.post(url + "login", data=BOBS_LOGIN, headers=headers, timeout=30)
        assert answer.status_code == 403, headers
        assert "set-cookie" not in answer.headers
        assert "another site" in answer.json()["detail"]
    accepted = [{"Sec-Fetch-Site": "same-origin", "Origin": url.rstrip("/")}, {"Origin": url.rstrip("/")}, {}]
    for headers in accepted:
        answer = httpx.post(url + "login", data=BOBS_LOGIN, headers=headers, timeout=30)
        assert answer.status_code == 200, headers
        assert signed_in_as(url, answer.cookies) == "bob"


def test_another_site_cannot_act_as_a_signed_in_visitor(shared):  # noqa: F811
    """A signed-in browser's cookies go with a form another site posts at the app (SameSite=Lax lets top-level
    POSTs through in some browsers, and no cookie at all is needed on a loopback app without logins): every route
    that changes something refuses it, the API included (in OpenAI's shape)."""
    url, cloud, _ = shared()
    alice = GradioSession(url, "alice", "alice-secret")
    join = {"data": ["hi", "cloud/chat"], "fn_index": alice.api_fn_index("chat"), "session_hash": alice.session_hash}
    answer = alice.http.post("gradio_api/queue/join", json=join, headers=CROSS_SITE)
    assert answer.status_code == 403
    api = alice.http.post("v1/chat/completions", json={"model": "cloud/chat", "messages": []}, headers=CROSS_SITE)
    assert api.status_code == 403 and "another site" in api.json()["error"]["message"]
    assert cloud.chat_requests() == []
    assert alice.http.get("config", headers=CROSS_SITE).status_code == 200  # reading is CORS's business
    alice.close()


def test_a_page_of_an_allowed_origin_may_act(shared):  # noqa: F811
    url, _, _ = shared('allowed_origins = ["https://team.example"]')
    team = {"Sec-Fetch-Site": "cross-site", "Origin": "https://team.example"}
    assert httpx.post(url + "login", data=BOBS_LOGIN, headers=team, timeout=30).status_code == 200


def test_signing_out_takes_a_post_from_this_site(shared):  # noqa: F811
    """`GET /logout` (an image in a chat, a link on another site) answers a page with a Sign out button and signs
    no one out; another site's POST is refused; the app's own POST signs out every session of the login."""
    url, _, _ = shared()
    alice = GradioSession(url, "alice", "alice-secret")
    elsewhere = GradioSession(url, "alice", "alice-secret")  # her other browser
    page = alice.http.get("logout", follow_redirects=False)
    assert page.status_code == 200 and '<form method="post" action="logout">' in page.text
    assert alice.http.head("logout").status_code == 200
    assert alice.http.post("logout", headers=CROSS_SITE).status_code == 403
    assert signed_in_as(url, alice.http.cookies) == "alice" and signed_in_as(url, elsewhere.http.cookies) == "alice"

    out = alice.http.post("logout", headers={"Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
    assert out.status_code == 302
    assert signed_in_as(url, alice.http.cookies) is None and signed_in_as(url, elsewhere.http.cookies) is None
    alice.close()
    elsewhere.close()


# --- in Chromium ----------------------------------------------------------------------------------------------


@contextmanager
def another_site(html: str) -> Iterator[str]:
    """A page served from another loopback port (another origin); its URL."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_a_page_elsewhere_cannot_sign_chromium_in(shared, page):  # noqa: F811
    """The attack: another site's page submits the login form with the attacker's name and password as soon as it
    opens, so the visitor's browser is signed in to his account (and what she writes next goes there)."""
    url, _, _ = shared()
    form = (
        f'<form method="post" action="{url}login"><input name="username" value="bob">'
        '<input name="password" value="bob-secret"></form><script>document.forms[0].submit()</script>'
    )
    with another_site(form) as elsewhere, page.expect_response(url + "login") as posted:
        page.goto(elsewhere)
    assert posted.value.status == 403
    assert not [cookie for cookie in page.context.cookies(url) if cookie["name"].startswith("access-token")]


@pytest.mark.browser
def test_an_image_in_a_reply_does_not_sign_out_and_the_page_can(shared, page):  # noqa: F811
    """The attack: `![x](/logout)` in a reply (or an imported chat) signed the viewer out of every session each
    time the chat was shown. Now the image's request gets the sign-out page; the app's page signs out by POST."""
    url, cloud, _ = shared()
    elsewhere = GradioSession(url, "alice", "alice-secret")
    log_in(page, url, "alice", "alice-secret")
    cloud.enqueue(Reply.text(["A picture for you: ", "![x](/logout)"]))
    with page.expect_request(lambda request: request.url == url + "logout"):
        page.locator("#message textarea").fill("Show me a picture.")
        page.locator("#message textarea").press("Enter")
    page.locator("#chatbot img[alt='x']").wait_for(state="attached")
    assert page.evaluate("fetch('gradio_api/user').then(answer => answer.json())") == "alice"
    assert signed_in_as(url, elsewhere.http.cookies) == "alice"

    assert page.evaluate("fetch('logout', {method: 'POST'}).then(answer => answer.ok)")  # (followed to the login page)
    assert page.evaluate("fetch('gradio_api/user').then(answer => answer.status)") == 401
    assert signed_in_as(url, elsewhere.http.cookies) is None
    elsewhere.close()
