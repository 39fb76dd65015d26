"""The app keeps no cookie session (viewzenix.cookie_session): no Set-Cookie, writes refused."""

from __future__ import annotations

import flask
import pytest
from flask.sessions import NullSession

pytestmark = pytest.mark.db


def test_no_request_gets_a_session_cookie(client, auth_headers) -> None:
    answers = [
        client.get("/api/webhook-configs", headers=auth_headers),
        client.get("/healthz"),
        client.get("/signin"),
        client.post("/webhooks/00000000-0000-0000-0000-000000000000/nope", data=b"{}"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 404]
    for answer in answers:
        assert "Set-Cookie" not in answer.headers, answer.headers


def test_a_view_that_wrote_to_the_session_would_fail_loudly(app) -> None:
    with app.test_request_context("/healthz"):  # the context opens the session, as for any request
        assert isinstance(flask.session, NullSession)
        assert flask.session.get("user") is None
        with pytest.raises(RuntimeError, match="session is unavailable"):
            flask.session["user"] = "someone"
