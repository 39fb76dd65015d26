"""Webhook configs REST API: create, list, read, update, delete, rotate; auth; errors."""

from __future__ import annotations

import json
import uuid

import pytest


def create(client, headers, **fields):
    body = {"name": "My strategy", **fields}
    return client.post("/api/webhook-configs", json=body, headers=headers)


class TestCreate:
    def test_returns_full_webhook_url_with_token_once(self, client, auth_headers):
        response = create(client, auth_headers)
        assert response.status_code == 201
        data = response.json
        assert data["webhook_url"] == f"http://testserver/webhooks/{data['id']}/{data['token']}"
        assert len(data["token"]) >= 22  # ≥128 bits, url-safe base64

        again = client.get(f"/api/webhook-configs/{data['id']}", headers=auth_headers).json
        assert data["token"] not in again["webhook_url"]
        assert again["webhook_url"].startswith(f"http://testserver/webhooks/{data['id']}/{data['token'][:4]}")
        assert "token" not in again

    def test_stores_only_a_hash_of_the_token(self, client, auth_headers, db):
        data = create(client, auth_headers).json
        with db.transaction() as conn:
            row = conn.execute("select * from public.webhook_configs where id = %s", (data["id"],)).fetchone()
        assert data["token"] not in json.dumps(row, default=str)
        assert len(bytes(row["security_token_hash"])) == 32

    def test_defaults_trading_settings(self, client, auth_headers):
        data = create(client, auth_headers).json
        assert data["broker"] == "simulated"
        assert data["quantity_type"] == "fixed_quantity"
        assert data["quantity"] == "1"
        assert data["order_type"] == "market"
        assert data["time_in_force"] == "day"
        assert data["allow_short"] is True
        assert data["starting_cash"] == "100000"

    def test_accepts_trading_settings(self, client, auth_headers):
        data = create(
            client,
            auth_headers,
            quantity_type="percent_of_equity",
            quantity="5",
            allowed_symbols=["AAPL", "MSFT"],
            max_position_notional="25000",
            allow_short=False,
            max_signal_age_seconds=30,
            commission_rate="0.001",
        ).json
        assert data["quantity_type"] == "percent_of_equity"
        assert data["allowed_symbols"] == ["AAPL", "MSFT"]
        assert data["max_position_notional"] == "25000"
        assert data["allow_short"] is False

    def test_refuses_invalid_fields_with_422_and_field_messages(self, client, auth_headers):
        response = create(client, auth_headers, quantity_type="lots", quantity="-1", name="")
        assert response.status_code == 422
        body = response.json
        assert body["code"] == "validation_error"
        assert body["status"] == 422
        fields = body["errors"]["json"]
        assert {"quantity_type", "quantity", "name"} <= set(fields)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("quantity", "1e999999"),
            ("quantity", "1e-99999"),
            ("starting_cash", "1e-99999"),
            ("max_signal_age_seconds", 99999999999),
            ("commission_rate", "2"),
            ("name", "nul\u0000name"),
            ("allowed_symbols", ["AA\u0000PL"]),
            ("notification_preferences", {"email": "a\u0000b"}),
        ],
    )
    def test_refuses_values_postgres_cannot_hold_with_422(self, client, auth_headers, field, value):
        response = client.post("/api/webhook-configs", json={"name": "x", field: value}, headers=auth_headers)
        assert response.status_code == 422, response.json
        assert field in response.json["errors"]["json"]

    @pytest.mark.parametrize(
        "path", ["/api/webhook-configs?q=a%00b", "/api/signals?ticker=a%00b", "/api/orders?symbol=a%00b"]
    )
    def test_refuses_nul_in_query_filters_with_422(self, client, auth_headers, path):
        assert client.get(path, headers=auth_headers).status_code == 422

    def test_refuses_unknown_fields(self, client, auth_headers):
        response = create(client, auth_headers, user_id=str(uuid.uuid4()))
        assert response.status_code == 422
        assert "user_id" in response.json["errors"]["json"]

    def test_refuses_malformed_json_with_400_invalid_json(self, client, auth_headers):
        response = client.post(
            "/api/webhook-configs", data="{bad", content_type="application/json", headers=auth_headers
        )
        assert response.status_code == 400
        assert response.json["code"] == "invalid_json"
        assert response.json["message"] == "The request body is not valid JSON."

    def test_refuses_non_json_body(self, client, auth_headers):
        response = client.post(
            "/api/webhook-configs",
            data="name=x",
            headers={**auth_headers, "Content-Type": "text/plain"},
        )
        assert response.status_code == 422


class TestListAndFilters:
    def test_lists_only_own_configs_newest_first_with_pagination(self, client, make_user):
        _, token = make_user()
        headers = {"Authorization": f"Bearer {token}"}
        names = [f"cfg {i}" for i in range(3)]
        for name in names:
            create(client, headers, name=name)
        response = client.get("/api/webhook-configs?page=1&page_size=2", headers=headers)
        assert response.status_code == 200
        assert [c["name"] for c in response.json] == ["cfg 2", "cfg 1"]
        pagination = json.loads(response.headers["X-Pagination"])
        assert pagination["total"] == 3
        assert pagination["total_pages"] == 2

    def test_filters_by_active_and_name(self, client, auth_headers):
        a = create(client, auth_headers, name="Alpha trend").json
        create(client, auth_headers, name="Beta", is_active=False)
        active = client.get("/api/webhook-configs?is_active=true", headers=auth_headers).json
        assert [c["id"] for c in active] == [a["id"]]
        named = client.get("/api/webhook-configs?q=alpha", headers=auth_headers).json
        assert [c["id"] for c in named] == [a["id"]]


class TestUpdateDeleteRotate:
    def test_patch_changes_only_given_fields(self, client, auth_headers):
        data = create(client, auth_headers, description="d").json
        response = client.patch(
            f"/api/webhook-configs/{data['id']}", json={"is_active": False}, headers=auth_headers
        )
        assert response.status_code == 200
        assert response.json["is_active"] is False
        assert response.json["description"] == "d"
        assert response.json["updated_at"] >= data["updated_at"]

    def test_delete_then_404(self, client, auth_headers):
        data = create(client, auth_headers).json
        assert client.delete(f"/api/webhook-configs/{data['id']}", headers=auth_headers).status_code == 204
        response = client.get(f"/api/webhook-configs/{data['id']}", headers=auth_headers)
        assert response.status_code == 404
        assert response.json["code"] == "not_found"

    def test_rotate_token_invalidates_old_url(self, client, auth_headers):
        data = create(client, auth_headers).json
        alert = {"ticker": "AAPL", "action": "buy", "price": 10}
        assert client.post(f"/webhooks/{data['id']}/{data['token']}", json=alert).status_code == 200
        rotated = client.post(f"/api/webhook-configs/{data['id']}/rotate-token", headers=auth_headers).json
        assert rotated["token"] != data["token"]
        assert client.post(f"/webhooks/{data['id']}/{data['token']}", json=alert).status_code == 404
        assert client.post(f"/webhooks/{data['id']}/{rotated['token']}", json=alert).status_code == 200


class TestAuth:
    @pytest.mark.parametrize(
        ("headers", "code"),
        [
            ({}, "token_missing"),
            ({"Authorization": "Basic dXNlcjpwYXNz"}, "token_malformed"),
            ({"Authorization": "Bearer not-a-jwt"}, "token_malformed"),
        ],
    )
    def test_refuses_missing_or_malformed_token_with_401(self, client, headers, code):
        response = client.get("/api/webhook-configs", headers=headers)
        assert response.status_code == 401
        assert response.json["code"] == code
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    def test_refuses_token_signed_by_another_key(self, client, tmp_path):
        from viewzenix.auth import LocalSigner

        other = LocalSigner.load_or_create(tmp_path / "other.pem")
        token = other.issue(uuid.uuid4(), "x@example.test")
        response = client.get("/api/webhook-configs", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json["code"] == "token_invalid"
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    def test_openapi_document_is_public(self, client):
        response = client.get("/api/openapi.json")
        assert response.status_code == 200
        paths = response.json["paths"]
        assert "/api/webhook-configs" in paths
        assert "/api/webhook-configs/{config_id}/rotate-token" in paths
        assert "/api/signals" in paths and "/api/orders" in paths

    def test_healthz_answers_when_database_does(self, client):
        body = client.get("/healthz").json
        assert body["status"] == "ok" and body["database"] == "ok"
        assert isinstance(body["signals_waiting"], int)


def test_a_destination_id_postgres_cannot_store_is_a_422(client, auth_headers):
    created = client.post("/api/webhook-configs", json={"name": "nul"}, headers=auth_headers).json

    response = client.patch(
        f"/api/webhook-configs/{created['id']}",
        json={"notification_preferences": {"destinations": [{"id": "a\u0000b"}]}},
        headers=auth_headers,
    )

    assert (response.status_code, response.json["code"]) == (422, "validation_error")
