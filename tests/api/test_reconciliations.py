"""The reconciliation API: admins run it (app_metadata.role, never user_metadata); owners read it."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.db


@pytest.fixture()
def admin_headers(app):
    from viewzenix.services.local_signin import ensure_local_user

    runtime = app.extensions["viewzenix"]
    email = f"admin-{uuid.uuid4().hex[:8]}@example.test"
    user_id = ensure_local_user(runtime.db, email)
    token = runtime.local_signer.issue(user_id, email, app_metadata={"role": "admin"})
    return {"Authorization": f"Bearer {token}"}


def make_config(client, headers) -> dict:
    response = client.post("/api/webhook-configs", json={"name": "recon"}, headers=headers)
    assert response.status_code == 201
    return response.get_json()


def trade(client, config: dict, jobs) -> None:
    url = config["webhook_url"].removeprefix("http://testserver")
    body = '{"ticker": "AAPL", "action": "buy", "quantity": 3, "price": 100}'
    assert client.post(url, data=body, content_type="application/json").status_code == 200
    jobs()


def test_an_admin_reconciles_a_config_and_the_owner_reads_the_result(
    client, auth_headers, admin_headers, jobs
):
    config = make_config(client, auth_headers)
    trade(client, config, jobs)

    response = client.post("/api/admin/reconcile", json={"config_id": config["id"]}, headers=admin_headers)

    assert response.status_code == 200
    [run] = response.get_json()
    assert run["config_id"] == config["id"]
    assert (run["orders_compared"], run["orders_in_drift"], run["drift_rate"]) == (1, 0, "0.00")
    assert run["positions_compared"] == 1
    assert run["counts"]["position_differs"] == 0
    mine = client.get("/api/reconciliations", headers=auth_headers)
    assert mine.status_code == 200
    assert [r["id"] for r in mine.get_json()] == [run["id"]]


def test_drift_in_the_paper_brokers_books_is_reported_and_repaired_over_the_api(
    client, app, auth_headers, admin_headers, jobs
):
    config = make_config(client, auth_headers)
    trade(client, config, jobs)
    with app.extensions["viewzenix"].db.transaction() as conn:
        conn.execute("update paper.positions set qty = 5 where config_id = %s", (config["id"],))

    found = client.post("/api/admin/reconcile", json={"config_id": config["id"]}, headers=admin_headers)
    repaired = client.post(
        "/api/admin/reconcile", json={"config_id": config["id"], "repair": True}, headers=admin_headers
    )
    after = client.post("/api/admin/reconcile", json={"config_id": config["id"]}, headers=admin_headers)

    assert found.get_json()[0]["drifts"] == [
        {"kind": "position_differs", "key": "AAPL", "ours": "3", "theirs": "5"}
    ]
    assert repaired.get_json()[0]["repaired"] == 1
    assert after.get_json()[0]["drifts"] == []
    positions = client.get(f"/api/positions?config_id={config['id']}", headers=auth_headers).get_json()
    assert [p["qty"] for p in positions] == ["5"]


def test_cash_the_paper_broker_moved_is_a_cash_drift_shown_over_the_api_and_never_repaired(
    client, app, auth_headers, admin_headers, jobs
):
    config = make_config(client, auth_headers)
    trade(client, config, jobs)  # 3 x 100 paid on both sides
    with app.extensions["viewzenix"].db.transaction() as conn:  # a deposit at the broker
        conn.execute("update paper.accounts set cash = cash + 1000 where config_id = %s", (config["id"],))

    repaired = client.post(
        "/api/admin/reconcile", json={"config_id": config["id"], "repair": True}, headers=admin_headers
    )
    [latest] = client.get("/api/reconciliations", headers=auth_headers).get_json()

    [run] = repaired.get_json()
    cash = {"kind": "cash_differs", "key": "cash", "ours": "99700", "theirs": "100700"}
    assert (run["drifts"], run["repaired"], run["counts"]["cash_differs"]) == ([cash], 0, 1)
    assert (run["orders_in_drift"], run["positions_in_drift"]) == (0, 0)
    assert latest["drifts"] == [cash]


def test_a_non_admin_cannot_reconcile(client, auth_headers):
    response = client.post("/api/admin/reconcile", json={}, headers=auth_headers)

    assert response.status_code == 403
    assert response.get_json()["code"] == "admin_required"


def test_user_metadata_role_admin_grants_nothing(client, app):
    from viewzenix.services.local_signin import ensure_local_user

    runtime = app.extensions["viewzenix"]
    email = f"sneaky-{uuid.uuid4().hex[:8]}@example.test"
    user_id = ensure_local_user(runtime.db, email)
    token = runtime.local_signer.issue(user_id, email, user_metadata={"role": "admin"})

    response = client.post("/api/admin/reconcile", json={}, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 403


def test_an_unknown_config_is_404(client, admin_headers):
    response = client.post(
        "/api/admin/reconcile", json={"config_id": str(uuid.uuid4())}, headers=admin_headers
    )

    assert response.status_code == 404


def test_owners_see_only_their_own_reconciliations(client, auth_headers, make_user, admin_headers, jobs):
    config = make_config(client, auth_headers)
    client.post("/api/admin/reconcile", json={"config_id": config["id"]}, headers=admin_headers)
    _, other_token = make_user()

    theirs = client.get("/api/reconciliations", headers={"Authorization": f"Bearer {other_token}"})

    assert theirs.status_code == 200
    assert theirs.get_json() == []


def test_a_keyed_reconcile_calls_the_broker_outside_the_requests_transaction(
    client, app, auth_headers, admin_headers, jobs, monkeypatch
):
    from viewzenix.brokers import simulated

    config = make_config(client, auth_headers)
    trade(client, config, jobs)
    db = app.extensions["viewzenix"].db
    seen = []
    real = simulated.SimulatedBroker.list_orders

    def spying_list_orders(self, after=None):
        from viewzenix.db import _ambient

        seen.append(_ambient.get())
        return real(self, after)

    monkeypatch.setattr(simulated.SimulatedBroker, "list_orders", spying_list_orders)
    headers = {**admin_headers, "Idempotency-Key": f"recon-{uuid.uuid4()}"}

    first = client.post("/api/admin/reconcile", json={"config_id": config["id"]}, headers=headers)
    replay = client.post("/api/admin/reconcile", json={"config_id": config["id"]}, headers=headers)

    assert first.status_code == 200
    assert seen == [None]  # one broker call, made with no request transaction to join
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first.get_json()
    assert db is not None


def test_malformed_input_is_a_clear_4xx(client, admin_headers):
    bad_id = client.post("/api/admin/reconcile", json={"config_id": "not-a-uuid"}, headers=admin_headers)
    bad_flag = client.post("/api/admin/reconcile", json={"repair": "sometimes"}, headers=admin_headers)
    not_json = client.post(
        "/api/admin/reconcile", data="{oops", content_type="application/json", headers=admin_headers
    )
    bad_query = client.get("/api/reconciliations?config_id=42", headers=admin_headers)

    assert (bad_id.status_code, bad_id.get_json()["code"]) == (422, "validation_error")
    assert "config_id" in bad_id.get_json()["errors"]["json"]
    assert (bad_flag.status_code, bad_flag.get_json()["code"]) == (422, "validation_error")
    assert (not_json.status_code, not_json.get_json()["code"]) == (400, "invalid_json")
    assert (bad_query.status_code, bad_query.get_json()["code"]) == (422, "validation_error")
