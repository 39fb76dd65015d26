"""One log line per request with a request id; the alert hot path only when asked; no secrets."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from viewzenix import access_log


def lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "viewzenix.access"]


def test_an_api_request_is_logged_once_with_its_request_id_echoed(client, auth_headers, caplog):
    caplog.set_level(logging.INFO, logger="viewzenix.access")

    response = client.get("/api/webhook-configs", headers={**auth_headers, "X-Request-ID": "edge-42"})

    [line] = lines(caplog)
    assert response.headers["X-Request-ID"] == "edge-42"
    assert (line.request_id, line.method, line.path, line.status) == (
        "edge-42",
        "GET",
        "/api/webhook-configs",
        200,
    )
    assert line.action == "request" and line.duration_ms >= 0


def test_a_malformed_request_id_is_replaced_by_a_new_one(client, auth_headers, caplog):
    caplog.set_level(logging.INFO, logger="viewzenix.access")

    response = client.get("/api/webhook-configs", headers={**auth_headers, "X-Request-ID": "bad id {}"})

    [line] = lines(caplog)
    assert line.request_id == response.headers["X-Request-ID"] != "bad id {}"
    assert len(line.request_id) == 32


def test_alerts_are_not_logged_by_default(client, auth_headers, caplog):
    created = client.post("/api/webhook-configs", json={"name": "quiet"}, headers=auth_headers).json
    caplog.set_level(logging.INFO, logger="viewzenix.access")
    caplog.clear()

    client.post(f"/webhooks/{created['id']}/{created['token']}", json={"ticker": "SPY", "action": "buy"})

    assert lines(caplog) == []


@pytest.fixture()
def logged_app():
    """A bare Flask app with ACCESS_LOG=all and a route shaped like the alert webhook."""
    app = Flask(__name__)
    access_log.install(app, "all")

    @app.post("/webhooks/<config_id>/<token>")
    def alert(config_id: str, token: str):
        from flask import g

        g.log_ids = {"config_id": config_id, "signal_id": "s-1"}
        return {"status": "accepted"}

    return app


def test_with_all_an_alert_is_logged_with_its_ids_and_without_its_token(logged_app, caplog):
    caplog.set_level(logging.INFO, logger="viewzenix.access")

    logged_app.test_client().post("/webhooks/cfg-1/s3cr3t-token")

    [line] = lines(caplog)
    assert line.path == "/webhooks/cfg-1/***"
    assert (line.config_id, line.signal_id, line.status) == ("cfg-1", "s-1", 200)
    assert "s3cr3t-token" not in line.getMessage()


def test_off_logs_nothing(caplog):
    app = Flask(__name__)
    access_log.install(app, "off")
    app.get("/x")(lambda: "ok")
    caplog.set_level(logging.INFO, logger="viewzenix.access")

    app.test_client().get("/x")

    assert lines(caplog) == []


def test_the_dashboards_own_refreshes_are_debug_and_their_failures_info(client, auth_headers, caplog):
    caplog.set_level(logging.DEBUG, logger="viewzenix.access")
    client.get("/ui/fragments/positions", headers=auth_headers)
    client.get("/api/account/summary", headers={**auth_headers, "X-Dashboard-Refresh": "1"})
    client.get("/ui/fragments/positions?config_id=nope", headers=auth_headers)
    client.get("/api/account/summary", headers=auth_headers)
    levels = [(r.path, r.status, r.levelname) for r in lines(caplog)]
    assert levels == [
        ("/ui/fragments/positions", 200, "DEBUG"),
        ("/api/account/summary", 200, "DEBUG"),
        ("/ui/fragments/positions", 422, "INFO"),
        ("/api/account/summary", 200, "INFO"),
    ]
