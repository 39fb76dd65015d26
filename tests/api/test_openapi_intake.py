"""The OpenAPI document lists every answer the alert webhooks give, 429 and 503 included."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/webhooks/{config_id}/{token}", "/webhook"])
def test_the_webhook_routes_document_429_and_503_with_retry_after(client, path):
    document = client.get("/api/openapi.json").json
    responses = document["paths"][path]["post"]["responses"]
    assert {"200", "400", "403", "413", "422", "429", "503"} <= set(responses)
    for status, code in (("429", "rate_limited"), ("503", "database_unavailable")):
        assert code in responses[status]["description"]
        assert responses[status]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    assert "database_busy" in responses["503"]["description"]


def test_the_documented_429_is_what_the_webhook_answers(client):
    for _ in range(25):  # WEBHOOK_FAILED_AUTH_LIMIT: 20/minute by default
        response = client.post("/webhooks/00000000-0000-0000-0000-000000000000/x", json={"ticker": "SPY"})
    assert response.status_code == 429
    assert response.json["code"] == "rate_limited" and int(response.headers["Retry-After"]) >= 1
