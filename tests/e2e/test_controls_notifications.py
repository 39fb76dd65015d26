"""Notifications of the trader controls (issue 17): the daily loss limit reached (once per
session) and a signal waiting for approval (with the link to it), through the worker to a fake
ntfy service's HTTP API (``tests/fake_notify_services.py``)."""

from __future__ import annotations

import pytest
from fake_notify_services import FakeNtfy

pytestmark = pytest.mark.db


@pytest.fixture()
def ntfy(app, monkeypatch):
    fake = FakeNtfy()
    fake.server.start()
    monkeypatch.setenv("NOTIFY_ALLOW_PRIVATE_HOSTS", fake.address)
    monkeypatch.setattr(
        app.extensions["viewzenix"].config, "NOTIFY_ALLOW_PRIVATE_HOSTS", frozenset([fake.address])
    )
    yield fake
    fake.server.clear()
    fake.server.stop()


def make_config(client, headers, ntfy, **settings):
    body = {"name": "controls", "notification_preferences": {"destinations": [{"url": ntfy.apprise_url}]}}
    response = client.post("/api/webhook-configs", json={**body, **settings}, headers=headers)
    assert response.status_code == 201, response.json
    data = response.json
    return {**data, "url": f"/webhooks/{data['id']}/{data['token']}"}


def alert(action, qty, price, **extra):
    return {"ticker": "GOOG", "action": action, "quantity": qty, "price": price, **extra}


def test_the_loss_limit_is_notified_once_per_session(client, auth_headers, jobs, ntfy):
    config = make_config(client, auth_headers, ntfy, daily_loss_limit="100")
    client.post(config["url"], json=alert("buy", "10", "100"))
    client.post(config["url"], json=alert("sell", "10", "80", sentiment="flat"))
    jobs()
    before = len(ntfy.messages)
    first = client.post(config["url"], json=alert("buy", "1", "80"))
    second = client.post(config["url"], json=alert("buy", "2", "80"))
    jobs()
    titles = [title for _topic, title, _text in ntfy.messages[before:]]
    reached = [t for t in titles if t.startswith("Daily loss limit reached")]
    assert reached == ["Daily loss limit reached: controls"]
    [text] = [text for _topic, title, text in ntfy.messages if title.startswith("Daily loss limit")]
    assert "-200.00" in text and "limit of 100.00" in text and "exits still run" in text
    for response in (first, second):
        shown = client.get(f"/api/signals/{response.json['signal_id']}", headers=auth_headers).json
        assert shown["status"] == "denied"
        assert shown["orders"][0]["status_code"] == "daily_loss_limit"
    # the dashboard's read side: the breach of the current session
    [breach] = client.get(f"/api/loss-limit-breaches?config_id={config['id']}", headers=auth_headers).json
    assert (breach["pnl"], breach["loss_limit"]) == ("-200", "100")
    assert breach["signal_id"] == first.json["signal_id"]


def test_a_waiting_signal_is_notified_with_its_link(client, app, auth_headers, jobs, ntfy):
    config = make_config(client, auth_headers, ntfy, approval_mode=True, approval_timeout_seconds=90)
    response = client.post(config["url"], json=alert("buy", "1", "100"))
    assert response.json["status"] == "awaiting_approval"
    jobs()
    [(_topic, title, text)] = ntfy.messages
    assert title == "Approve? BUY GOOG"
    base = app.extensions["viewzenix"].config.PUBLIC_BASE_URL
    assert f"{base}/signals/{response.json['signal_id']}" in text
    assert "for 90 s" in text


def test_a_group_member_waiting_for_approval_is_notified_with_its_link(client, app, auth_headers, jobs, ntfy):
    waiting = make_config(client, auth_headers, ntfy, approval_mode=True, approval_timeout_seconds=120)
    plain = make_config(client, auth_headers, ntfy)
    group = client.post(
        "/api/webhook-groups",
        json={"name": "both", "config_ids": [waiting["id"], plain["id"]]},
        headers=auth_headers,
    ).json
    response = client.post(
        group["webhook_url"].removeprefix("http://testserver"), json=alert("buy", "1", "100")
    )
    statuses = {s["config_id"]: (s["status"], s["signal_id"]) for s in response.json["signals"]}
    assert statuses[waiting["id"]][0] == "awaiting_approval" and statuses[plain["id"]][0] == "accepted"
    jobs()
    approvals = [(title, text) for _topic, title, text in ntfy.messages if title.startswith("Approve?")]
    [(title, text)] = approvals
    base = app.extensions["viewzenix"].config.PUBLIC_BASE_URL
    assert title == "Approve? BUY GOOG" and f"{base}/signals/{statuses[waiting['id']][1]}" in text
    assert "for 120 s" in text


def test_breaches_are_private(client, make_user, jobs, ntfy):
    _, token_a = make_user()
    _, token_b = make_user()
    a = {"Authorization": f"Bearer {token_a}"}
    config = make_config(client, a, ntfy, daily_loss_limit="100")
    client.post(config["url"], json=alert("buy", "10", "100"))
    client.post(config["url"], json=alert("sell", "10", "80", sentiment="flat"))
    client.post(config["url"], json=alert("buy", "1", "80"))
    jobs()
    assert len(client.get("/api/loss-limit-breaches", headers=a).json) == 1
    assert client.get("/api/loss-limit-breaches", headers={"Authorization": f"Bearer {token_b}"}).json == []


def test_breach_rows_are_read_only_and_private_in_sql(client, make_user, app, db, jobs):
    """RLS on public.loss_limit_breaches, as role authenticated with each user's claims."""
    import psycopg

    verifier = app.extensions["viewzenix"].verifier
    _, token_a = make_user()
    _, token_b = make_user()
    a = {"Authorization": f"Bearer {token_a}"}
    response = client.post("/api/webhook-configs", json={"name": "x", "daily_loss_limit": "100"}, headers=a)
    config = {"url": f"/webhooks/{response.json['id']}/{response.json['token']}"}
    client.post(config["url"], json=alert("buy", "10", "100"))
    client.post(config["url"], json=alert("sell", "10", "80", sentiment="flat"))
    client.post(config["url"], json=alert("buy", "1", "80"))
    jobs()
    claims_a, claims_b = verifier.verify(token_a).raw, verifier.verify(token_b).raw
    with db.transaction(claims_a) as conn:
        assert conn.execute("select count(*) as n from public.loss_limit_breaches").fetchone()["n"] == 1
    with db.transaction(claims_b) as conn:
        assert conn.execute("select count(*) as n from public.loss_limit_breaches").fetchone()["n"] == 0
    for statement in (
        "delete from public.loss_limit_breaches",
        "update public.loss_limit_breaches set pnl = 0",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            with db.transaction(claims_a) as conn:
                conn.execute(statement)
