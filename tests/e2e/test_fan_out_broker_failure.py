"""One alert to two accounts end to end: one member's broker fails, the other still fills."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.db

ALERT = '{"ticker": "GOOG", "action": "buy", "sentiment": "long", "quantity": 3, "price": 100}'


def test_one_members_broker_failure_does_not_stop_the_other(client, auth_headers, jobs, monkeypatch):
    from viewzenix.services import accounts

    good = client.post("/api/webhook-configs", json={"name": "good"}, headers=auth_headers).json
    broken = client.post("/api/webhook-configs", json={"name": "broken"}, headers=auth_headers).json
    real_broker_for = accounts.broker_for

    def broker_for(db, config, *args, **kwargs):
        if str(config["id"]) == broken["id"]:
            raise RuntimeError("the broker adapter exploded")  # not transient: no retry
        return real_broker_for(db, config, *args, **kwargs)

    monkeypatch.setattr(accounts, "broker_for", broker_for)
    group = client.post(
        "/api/webhook-groups",
        json={"name": "two accounts", "config_ids": [broken["id"], good["id"]]},
        headers=auth_headers,
    ).json
    response = client.post(
        group["webhook_url"].removeprefix("http://testserver"), data=ALERT, content_type="application/json"
    )
    assert response.status_code == 200
    jobs()
    outcome = {}
    for member in response.json["signals"]:
        detail = client.get(f"/api/signals/{member['signal_id']}", headers=auth_headers).json
        outcome[member["config_id"]] = (
            detail["status"],
            [(o["side"], o["qty"], o["status"]) for o in detail["orders"]],
        )
    assert outcome[broken["id"]] == ("failed", [])
    assert outcome[good["id"]] == ("executed", [("buy", "3", "filled")])
    positions = client.get(f"/api/positions?config_id={good['id']}", headers=auth_headers).json
    assert [(p["symbol"], p["qty"]) for p in positions] == [("GOOG", "3")]
