"""Refused hits on a webhook are counted for its owner: old token, turned off, rate limited."""

from __future__ import annotations

import pytest

from viewzenix.services import webhook_refusals

pytestmark = pytest.mark.db


def create(client, headers):
    response = client.post("/api/webhook-configs", json={"name": "refusals"}, headers=headers)
    assert response.status_code == 201
    return response.json


def refusals(client, headers, config_id):
    page = client.get(f"/ui/fragments/configs/{config_id}/refusals", headers=headers)
    assert page.status_code == 200
    return page.get_data(as_text=True)


def test_old_token_hits_are_counted_with_their_reason(client, auth_headers, monkeypatch) -> None:
    monkeypatch.setattr(webhook_refusals, "WRITE_EVERY", 0)
    config = create(client, auth_headers)
    old = config["webhook_url"].removeprefix("http://testserver")
    client.post(f"/api/webhook-configs/{config['id']}/rotate-token", headers=auth_headers)
    for _ in range(3):
        assert client.post(old, json={"ticker": "AAPL", "action": "exit"}).status_code == 404
    text = refusals(client, auth_headers, config["id"])
    assert 'data-code="token_invalid"' in text and "<strong>3 refused</strong>" in text
    assert "wrong or old (rotated?)" in text


def test_hits_within_the_write_interval_are_added_by_the_next_write(
    client, auth_headers, monkeypatch
) -> None:
    config = create(client, auth_headers)
    old = config["webhook_url"].removeprefix("http://testserver")
    client.post(f"/api/webhook-configs/{config['id']}/rotate-token", headers=auth_headers)
    monkeypatch.setattr(webhook_refusals, "WRITE_EVERY", 3600)
    for _ in range(4):
        client.post(old, json={"ticker": "AAPL", "action": "exit"})
    assert "<strong>1 refused</strong>" in refusals(client, auth_headers, config["id"])
    monkeypatch.setattr(webhook_refusals, "WRITE_EVERY", 0)
    client.post(old, json={"ticker": "AAPL", "action": "exit"})
    assert "<strong>5 refused</strong>" in refusals(client, auth_headers, config["id"])


def test_a_turned_off_webhook_shows_its_refusals_and_others_see_none(client, auth_headers, make_user) -> None:
    config = create(client, auth_headers)
    client.patch(f"/api/webhook-configs/{config['id']}", json={"is_active": False}, headers=auth_headers)
    path = config["webhook_url"].removeprefix("http://testserver")
    assert client.post(path, json={"ticker": "AAPL", "action": "exit"}).status_code == 403
    text = refusals(client, auth_headers, config["id"])
    assert 'data-code="config_inactive"' in text and "<strong>1 refused</strong>" in text
    _, token = make_user()
    other = refusals(client, {"Authorization": f"Bearer {token}"}, config["id"])
    assert "No alert refused" in other


def test_an_unknown_webhook_records_nothing(client, db) -> None:
    import uuid

    count = "select count(*) as n from public.webhook_refusals"
    with db.transaction() as conn:
        before = conn.execute(count).fetchone()["n"]
    assert client.post(f"/webhooks/{uuid.uuid4()}/nope", json={}).status_code == 404
    with db.transaction() as conn:
        assert conn.execute(count).fetchone()["n"] == before
