"""A notification server cannot bounce our request to an internal address with an HTTP redirect.

Two real HTTP servers on loopback: a fake public ntfy server (let through by ``allow_private``,
as a public address would be) that answers every publish with a redirect, and an "internal"
server that our address check would refuse. apprise follows redirects by default
(``AppriseAsset.http_redirects``; FACTS.md), so the internal server used to receive the message.
"""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from viewzenix import crypto
from viewzenix.notifications.sending import send


@pytest.fixture()
def servers(app):  # app: the cipher is configured
    public, internal = HTTPServer(host="127.0.0.1"), HTTPServer(host="127.0.0.1")
    public.start()
    internal.start()
    internal.expect_request("/steal").respond_with_data("stolen")
    yield public, internal
    public.stop()
    internal.stop()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("query", ["", "?redirect=yes"])
def test_a_redirect_to_an_internal_address_is_not_followed(servers, status, query):
    public, internal = servers
    public.expect_request("/", method="POST").respond_with_response(
        Response(status=status, headers={"Location": f"http://127.0.0.1:{internal.port}/steal"})
    )
    destination = {
        "id": "d1",
        "service": "ntfy",
        "url_encrypted": crypto.encrypt(f"ntfy://127.0.0.1:{public.port}/alerts{query}"),
    }
    delivery = send(destination, "title", "body", allow_private={f"127.0.0.1:{public.port}"})
    assert len(public.log) == 1  # our request reached the server we checked
    assert internal.log == []  # and went no further
    assert delivery.outcome == "failed"


def test_a_server_that_answers_is_still_delivered_to(servers):
    public, _ = servers
    public.expect_request("/", method="POST").respond_with_json(
        {"id": "x1", "time": 1, "event": "message", "topic": "alerts", "message": "body"}
    )
    destination = {
        "id": "d2",
        "service": "ntfy",
        "url_encrypted": crypto.encrypt(f"ntfy://127.0.0.1:{public.port}/alerts"),
    }
    assert send(destination, "t", "body", allow_private={f"127.0.0.1:{public.port}"}).outcome == "sent"
