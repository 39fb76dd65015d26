"""OpenAPI entries for the routes outside flask-smorest: intake and health.

``POST /webhooks/{config_id}/{token}``, ``POST /webhook`` and ``GET /healthz`` are plain Flask
views (they read raw bytes, and TradingView sends no bearer token), so they are described here,
by hand, in the same document as the REST API.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from viewzenix.errors import Api

_ERROR = {"$ref": "#/components/schemas/Error"}
# A refused alert's answer: the one error body, plus the stored signal's id; ``errors`` holds
# the refusal's details (any JSON: line/column, detected format, expected fields...).
_INTAKE_REFUSAL = {
    "type": "object",
    "required": ["code", "status", "message"],
    "properties": {
        "code": {"type": "string", "description": "Machine-readable error code"},
        "status": {"type": "integer", "description": "HTTP status"},
        "message": {"type": "string", "description": "What is wrong, in plain words"},
        "signal_id": {"type": "string", "format": "uuid", "description": "The stored (rejected) signal"},
        "errors": {"type": "object", "additionalProperties": True},
    },
}
_INTAKE_ANSWER = {
    "type": "object",
    "properties": {
        "signal_id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "description": "accepted, awaiting_approval or duplicate"},
        "duplicate": {"type": "boolean"},
        "duplicate_signal_id": {"type": "string", "format": "uuid"},
        "ticker": {"type": "string"},
        "action": {"type": "string"},
    },
}
_ALERT_BODY = {
    "required": True,
    "description": "The alert message as TradingView sends it: application/json when the text is "
    "valid JSON, else text/plain. TradersPost-style or passphrase-style keys.",
    "content": {
        "application/json": {
            "schema": {"type": "object"},
            "example": {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190.5},
        },
        "text/plain": {"schema": {"type": "string"}},
    },
}


def _refusal(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _stored_refusal(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _INTAKE_REFUSAL}}}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending again",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _retry_later(description: str) -> dict[str, Any]:
    return {**_refusal(description), "headers": _RETRY_AFTER}


def _intake_responses() -> dict[str, Any]:
    return {
        "200": {
            "description": "Stored and accepted (its job deferred), or a duplicate of an earlier alert",
            "content": {"application/json": {"schema": _INTAKE_ANSWER}},
        },
        "400": _stored_refusal("Not valid JSON (with line/column and a repair hint); stored as rejected"),
        "413": _stored_refusal("Body too large; stored as rejected"),
        "422": _stored_refusal("Valid JSON but not a usable signal; stored as rejected"),
        "403": _refusal(
            "Not from one of TradingView's addresses while TRADINGVIEW_SOURCES_ONLY is on "
            "(source_not_allowed); not stored"
        ),
        "429": _retry_later(
            "Too many requests from this address (rate_limited: WEBHOOK_FAILED_AUTH_LIMIT, "
            "SINGLE_TENANT_WEBHOOK_LIMIT); not stored"
        ),
        "503": _retry_later(
            "The database does not answer (database_unavailable) or a lock or statement timeout "
            "ended the request (database_busy); nothing stored, send again (TradingView resends a 5xx)"
        ),
    }


def document_plain_routes(api: Api, app: Flask) -> None:
    """Add the intake and health routes (registered on ``app`` already) to ``api.spec``."""
    spec = api.spec
    rules = {rule.endpoint: rule for rule in app.url_map.iter_rules()}
    security_none: list[dict[str, list[str]]] = []
    spec.path(
        rule=rules["intake.receive_webhook"],
        parameters=[
            {
                "name": "config_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            },
            {
                "name": "token",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "The URL token shown once on create / rotate",
            },
        ],
        operations={
            "post": {
                "tags": ["intake"],
                "summary": "Receive a TradingView alert for one webhook config",
                "description": "No bearer token: TradingView sends no custom headers, the secret is "
                "the URL's token. Unknown config and wrong token both answer 404.",
                "security": security_none,
                "requestBody": _ALERT_BODY,
                "responses": {
                    **_intake_responses(),
                    "403": _stored_refusal(
                        "The config is turned off (config_inactive; stored as rejected), or the sender "
                        "is not one of TradingView's addresses (source_not_allowed; not stored)"
                    ),
                    "404": _refusal("No webhook at this URL (unknown config or wrong token)"),
                },
            }
        },
    )
    spec.path(
        rule=rules["intake.receive_single_tenant"],
        operations={
            "post": {
                "tags": ["intake"],
                "summary": "Receive an alert in single-tenant mode (passphrase in the body)",
                "description": "On only when WEBHOOK_PASSPHRASE is set; the body's `passphrase` must match.",
                "security": security_none,
                "requestBody": _ALERT_BODY,
                "responses": {
                    **_intake_responses(),
                    "401": _stored_refusal("Wrong or missing passphrase; stored as rejected"),
                    "404": _refusal("Single-tenant mode is off (single_tenant_disabled)"),
                },
            }
        },
    )
    spec.path(
        rule=rules["health.healthz"],
        operations={
            "get": {
                "tags": ["health"],
                "summary": "This instance's health, for load balancers (docs/health-probes.md)",
                "security": security_none,
                "responses": {
                    "200": {
                        "description": "The database answers",
                        "content": {
                            "application/json": {
                                "example": {
                                    "status": "ok",
                                    "scope": "instance",
                                    "database": "ok",
                                    "signals_waiting": 0,
                                },
                                "schema": {"type": "object"},
                            }
                        },
                    },
                    "503": _refusal("The database does not answer yet (database_unavailable)"),
                },
            }
        },
    )
