"""Rate limits on TradingView intake (viewzenix.webhooks.limits): failed hits per source address,
and every hit of the single-tenant POST /webhook; 429 rate_limited with Retry-After (seconds
until the fixed one-minute window resets)."""

from __future__ import annotations

import logging
import uuid

import pytest

from viewzenix.webhooks.limits import REFUSED_HITS

ABUSER = "203.0.113.7"  # TEST-NET-3 addresses: never TradingView's
OTHER = "203.0.113.8"
TRADINGVIEW = "52.89.214.238"
ALERT = '{"ticker": "AAPL", "action": "buy", "price": 1}'


@pytest.fixture()
def config(client, auth_headers):
    data = client.post("/api/webhook-configs", json={"name": "limits"}, headers=auth_headers).json
    return {**data, "url": f"/webhooks/{data['id']}/{data['token']}"}


def post(client, url, address, body=ALERT):
    return client.post(url, data=body, content_type="application/json", environ_base={"REMOTE_ADDR": address})


def failed_limit(app) -> int:
    return int(app.config["WEBHOOK_FAILED_AUTH_LIMIT"].split("/")[0])


def test_wrong_tokens_from_one_address_are_refused_with_429_past_the_limit(app, client, config, caplog):
    wrong = f"/webhooks/{config['id']}/not-the-token"
    for _ in range(failed_limit(app)):
        assert post(client, wrong, ABUSER).status_code == 404
    before = REFUSED_HITS["failed_auth"]
    with caplog.at_level(logging.WARNING, logger="viewzenix.webhooks.limits"):
        response = post(client, wrong, ABUSER)
    assert response.status_code == 429
    assert response.json["code"] == "rate_limited" and response.json["status"] == 429
    assert response.json["message"] and response.json["errors"]["limit"] == "20 per 1 minute"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # The refused hit is counted and logged with the config id, never the token.
    assert REFUSED_HITS["failed_auth"] == before + 1
    (record,) = [r for r in caplog.records if getattr(r, "action", None) == "webhook_rate_limited"]
    assert record.source_ip == ABUSER and record.config_id == config["id"]
    assert "not-the-token" not in record.getMessage()
    # Unknown configs count on the same address alike (one answer for both).
    unknown = post(client, f"/webhooks/{uuid.uuid4()}/whatever", ABUSER)
    assert unknown.status_code == 429 and unknown.json == response.json


def test_a_valid_config_is_not_throttled_by_another_address_abuse(app, client, config):
    wrong = f"/webhooks/{config['id']}/not-the-token"
    for _ in range(failed_limit(app) + 1):
        post(client, wrong, ABUSER)
    assert post(client, wrong, ABUSER).status_code == 429
    for address in (OTHER, TRADINGVIEW):
        accepted = post(
            client, config["url"], address, body=f'{{"ticker": "AAPL", "action": "buy", "n": "{address}"}}'
        )
        assert accepted.status_code == 200 and accepted.json["status"] == "accepted"


def test_valid_alerts_do_not_count_against_the_failed_hit_limit(app, client, config):
    for n in range(failed_limit(app) + 5):
        response = post(client, config["url"], OTHER, body=f'{{"ticker": "AAPL", "action": "buy", "n": {n}}}')
        assert response.status_code == 200


def test_tradingview_addresses_are_never_throttled_for_failed_hits(app, client, config):
    wrong = f"/webhooks/{config['id']}/not-the-token"
    for _ in range(failed_limit(app) + 5):
        assert post(client, wrong, TRADINGVIEW).status_code == 404


def test_wrong_passphrases_on_the_single_tenant_webhook_are_limited(app, client):
    body = '{"ticker": "AAPL", "action": "buy", "passphrase": "wrong"}'
    for _ in range(failed_limit(app)):
        response = post(client, "/webhook", ABUSER, body=body)
        assert response.status_code == 401 and response.json["code"] == "invalid_passphrase"
    refused = post(client, "/webhook", ABUSER, body=body)
    assert refused.status_code == 429 and refused.json["code"] == "rate_limited"
    assert "Retry-After" in refused.headers


def test_the_single_tenant_webhook_is_limited_per_address(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "SINGLE_TENANT_WEBHOOK_LIMIT", "3/minute")
    for n in range(3):
        body = f'{{"ticker": "AAPL", "action": "buy", "passphrase": "test-passphrase", "n": {n}}}'
        assert post(client, "/webhook", TRADINGVIEW, body=body).status_code == 200
    refused = post(client, "/webhook", TRADINGVIEW, body=ALERT)
    assert refused.status_code == 429 and refused.json["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another address has its own budget.
    other = '{"ticker": "AAPL", "action": "buy", "passphrase": "test-passphrase", "n": "other"}'
    assert post(client, "/webhook", OTHER, body=other).status_code == 200


def test_an_empty_setting_turns_the_limit_off(app, client, config, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_FAILED_AUTH_LIMIT", "")
    wrong = f"/webhooks/{config['id']}/not-the-token"
    for _ in range(25):
        assert post(client, wrong, ABUSER).status_code == 404


def test_with_tradingview_sources_only_other_addresses_are_refused(app, client, config, monkeypatch):
    monkeypatch.setitem(app.config, "TRADINGVIEW_SOURCES_ONLY", True)
    refused = post(client, config["url"], OTHER)
    assert refused.status_code == 403 and refused.json["code"] == "source_not_allowed"
    assert post(client, "/webhook", OTHER).json["code"] == "source_not_allowed"
    accepted = post(client, config["url"], TRADINGVIEW)
    assert accepted.status_code == 200 and accepted.json["status"] == "accepted"


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_source(app, client, config, monkeypatch):
    from werkzeug.middleware.proxy_fix import ProxyFix

    monkeypatch.setitem(app.config, "TRADINGVIEW_SOURCES_ONLY", True)
    monkeypatch.setattr(app, "wsgi_app", ProxyFix(app.wsgi_app, x_for=1))
    forwarded = {"X-Forwarded-For": f"{OTHER}, {TRADINGVIEW}"}  # only the last hop is trusted
    response = client.post(
        config["url"],
        data=ALERT,
        content_type="application/json",
        headers=forwarded,
        environ_base={"REMOTE_ADDR": "10.0.0.1"},
    )
    assert response.status_code == 200
    spoofed = {"X-Forwarded-For": f"{TRADINGVIEW}, {OTHER}"}
    response = client.post(
        config["url"],
        data=ALERT,
        content_type="application/json",
        headers=spoofed,
        environ_base={"REMOTE_ADDR": "10.0.0.1"},
    )
    assert response.status_code == 403 and response.json["code"] == "source_not_allowed"
