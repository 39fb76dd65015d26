"""Alpaca keys per webhook config through the API: write-only, encrypted, tested; cancel at Alpaca."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from builders import orders_of, store_signal
from fakes.alpaca_api import KEY_ID, SECRET_KEY, FakeAlpacaApi

from viewzenix import crypto
from viewzenix.brokers.alpaca import RequestBudget
from viewzenix.domain.model import Action, OrderType, Signal
from viewzenix.services.broker_credentials import rotate_encryption_key, store_alpaca_credentials
from viewzenix.services.execution import execute_signal

pytestmark = pytest.mark.db


@pytest.fixture(autouse=True)
def no_account_held_by_an_earlier_test(db):
    """One Alpaca account belongs to one config: the fake's keys must be free for this test's."""
    with db.transaction() as conn:
        conn.execute("delete from private.broker_credentials")


@pytest.fixture()
def fake():
    api = FakeAlpacaApi(auto_fill=False)
    api.set_price("AAPL", "100")
    RequestBudget.default_limit = 10_000  # this test's many calls stay off the real budget
    with api.running():
        yield api
    RequestBudget.default_limit = 200


@pytest.fixture()
def config(client, auth_headers):
    response = client.post(
        "/api/webhook-configs", json={"name": "Alpaca paper", "broker": "alpaca"}, headers=auth_headers
    )
    assert response.status_code == 201
    return response.json


def url(config, suffix=""):
    return f"/api/webhook-configs/{config['id']}/alpaca-credentials{suffix}"


def test_keys_are_write_only_and_encrypted_at_rest(client, auth_headers, config, db):
    response = client.put(
        url(config), json={"key_id": KEY_ID, "secret_key": SECRET_KEY}, headers=auth_headers
    )

    assert response.status_code == 200
    assert response.json["configured"] is True
    assert (response.json["key_id_hint"], response.json["live"]) == (KEY_ID[-4:], False)
    read = client.get(url(config), headers=auth_headers).json
    for answer in (response.json, read):
        assert KEY_ID not in json.dumps(answer) and SECRET_KEY not in json.dumps(answer)
    with db.transaction() as conn:
        row = conn.execute(
            "select * from private.broker_credentials where config_id = %s", (config["id"],)
        ).fetchone()
    assert SECRET_KEY not in json.dumps(row, default=str) and KEY_ID not in json.dumps(row, default=str)
    assert crypto.decrypt(row["secret_key_encrypted"]) == SECRET_KEY


def test_keys_of_another_users_config_are_not_found(client, auth_headers, make_user, config):
    _, other = make_user()
    other_headers = {"Authorization": f"Bearer {other}"}

    put = client.put(url(config), json={"key_id": KEY_ID, "secret_key": SECRET_KEY}, headers=other_headers)

    assert (put.status_code, put.json["code"]) == (404, "not_found")
    assert client.get(url(config), headers=auth_headers).json["configured"] is False


def test_bad_key_input_is_a_422_with_field_messages(client, auth_headers, config):
    response = client.put(url(config), json={"key_id": "short", "live": "maybe"}, headers=auth_headers)

    assert response.status_code == 422
    assert set(response.json["errors"]["json"]) == {"key_id", "secret_key", "live"}


def test_test_connection_says_ok_with_the_account(client, auth_headers, config, db, fake):
    store_alpaca_credentials(db, config["id"], key_id=KEY_ID, secret_key=SECRET_KEY, api_url=fake.url)

    result = client.post(url(config, "/test"), headers=auth_headers).json

    assert (result["ok"], result["code"], result["live"]) == (True, "ok", False)
    assert result["account"]["account_number"] == "PA3FAKE00001"
    assert result["account"]["buying_power"] == "100000"
    assert "paper account PA3FAKE00001" in result["message"]


def test_test_connection_says_what_is_wrong_with_refused_keys(client, auth_headers, config, db, fake):
    store_alpaca_credentials(
        db, config["id"], key_id=KEY_ID, secret_key="wrong-secret-123", live=True, api_url=fake.url
    )

    result = client.post(url(config, "/test"), headers=auth_headers).json

    assert (result["ok"], result["code"], result["live"]) == (False, "invalid_credentials", True)
    assert "request is not authorized" in result["message"]
    assert "paper keys do not work for live trading" in result["message"]


def test_test_connection_without_keys_is_a_409(client, auth_headers, config):
    response = client.post(url(config, "/test"), headers=auth_headers)

    assert (response.status_code, response.json["code"]) == (409, "credentials_missing")


def test_rotating_the_encryption_key_keeps_every_secret_readable(app, db, config, monkeypatch):
    old_key = (app.extensions["viewzenix"].config.DATA_DIR / "credentials.key").read_text().strip()
    store_alpaca_credentials(db, config["id"], key_id=KEY_ID, secret_key=SECRET_KEY)
    new_key = crypto.generate_key()
    # 1. the new key first, the old one kept after it; 2. every row re-encrypted (flask rotate-credentials)
    monkeypatch.setattr(crypto, "_cipher", crypto.cipher_from_setting(f"{new_key},{old_key}"))
    assert rotate_encryption_key(db) >= 1

    # 3. the old key removed: every row still reads
    monkeypatch.setattr(crypto, "_cipher", crypto.cipher_from_setting(new_key))
    with db.transaction() as conn:
        rows = conn.execute("select * from private.broker_credentials").fetchall()
    assert {
        crypto.decrypt(r["secret_key_encrypted"]) for r in rows if str(r["config_id"]) == config["id"]
    } == {SECRET_KEY}
    assert all(crypto.decrypt(r["key_id_encrypted"]) for r in rows)


def test_cancel_endpoint_cancels_the_order_at_alpaca(client, auth_headers, config, db, fake):
    store_alpaca_credentials(db, config["id"], key_id=KEY_ID, secret_key=SECRET_KEY, api_url=fake.url)
    with db.transaction() as conn:
        row = conn.execute("select * from public.webhook_configs where id = %s", (config["id"],)).fetchone()
    signal = Signal(
        ticker="AAPL",
        action=Action.BUY,
        quantity=Decimal("5"),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("90"),
    )
    signal_id = store_signal(db, row, signal)
    assert execute_signal(db, signal_id) == "executed"
    [order] = orders_of(db, signal_id)

    response = client.post(f"/api/orders/{order['id']}/cancel", headers=auth_headers)

    assert response.status_code == 200
    assert (response.json["status"], response.json["status_code"]) == ("canceled", "canceled")
    events = [e["event_type"] for e in response.json["events"]]
    assert events[0] == "OrderInitialized" and events[-1] == "OrderCanceled"
    assert events.index("OrderCancelRequested") < events.index("OrderCanceled")
    assert fake.order(order["client_order_id"]).status == "canceled"
    again = client.post(f"/api/orders/{order['id']}/cancel", headers=auth_headers)
    assert (again.status_code, again.json["code"]) == (409, "order_not_open")


def test_the_seeds_alpaca_keys_configure_the_single_tenant_config_when_not_simulating(db):
    from config import TestingConfig
    from viewzenix.services.broker_credentials import load_alpaca_credentials
    from viewzenix.services.single_tenant import DEFAULT_CONFIG_ID, ensure_default_config

    seed = TestingConfig(
        {"SIMULATION_MODE": "false", "ALPACA_API_KEY": KEY_ID, "ALPACA_API_SECRET": SECRET_KEY}
    )
    try:
        ensure_default_config(db, seed)

        credentials = load_alpaca_credentials(db, DEFAULT_CONFIG_ID)
        with db.transaction() as conn:
            broker = conn.execute(
                "select broker from public.webhook_configs where id = %s", (DEFAULT_CONFIG_ID,)
            ).fetchone()["broker"]
        assert broker == "alpaca"
        assert (credentials.key_id, credentials.secret_key, credentials.live) == (KEY_ID, SECRET_KEY, False)
        assert credentials.base_url == "https://paper-api.alpaca.markets"
    finally:
        ensure_default_config(db, TestingConfig({}))  # back to simulated for the other tests


def test_a_test_alert_on_live_keys_needs_confirm_live(client, auth_headers, config, db):
    keys = {"key_id": KEY_ID, "secret_key": SECRET_KEY}
    assert client.put(url(config), json={**keys, "live": True}, headers=auth_headers).status_code == 200
    test_alert = f"/api/webhook-configs/{config['id']}/test-alert"

    refused = client.post(test_alert, json={}, headers=auth_headers)

    assert (refused.status_code, refused.json["code"]) == (409, "live_test_alert")
    assert "real-money" in refused.json["message"]
    with db.transaction() as conn:
        stored = conn.execute(
            "select count(*) as n from public.signals where config_id = %s", (config["id"],)
        )
        assert stored.fetchone()["n"] == 0
    confirmed = client.post(test_alert, json={"confirm_live": True}, headers=auth_headers)
    assert (confirmed.status_code, confirmed.json["intake_response"]["status"]) == (200, "accepted")
    client.put(url(config), json={**keys, "live": False}, headers=auth_headers)
    paper = client.post(test_alert, json={}, headers=auth_headers)
    assert paper.status_code == 200


def test_one_alpaca_account_belongs_to_one_config_at_a_time(client, auth_headers, config):
    keys = {"key_id": KEY_ID, "secret_key": SECRET_KEY}
    assert client.put(url(config), json=keys, headers=auth_headers).status_code == 200
    assert client.put(url(config), json=keys, headers=auth_headers).status_code == 200  # same config: fine
    other = client.post(
        "/api/webhook-configs", json={"name": "Alpaca again", "broker": "alpaca"}, headers=auth_headers
    ).json

    refused = client.put(url(other), json=keys, headers=auth_headers)

    assert refused.status_code == 409
    assert refused.json["code"] == "alpaca_account_in_use"
    assert "one config" in refused.json["message"]
    assert client.get(url(other), headers=auth_headers).json["configured"] is False
    assert client.get(url(config), headers=auth_headers).json["configured"] is True
    # once the first config lets the account go, the second may take it
    assert client.delete(url(config), headers=auth_headers).status_code in (200, 204)
    assert client.put(url(other), json=keys, headers=auth_headers).status_code == 200
