"""Supabase Database Webhooks: ``POST /hooks/supabase/db`` and ``GET /hooks/supabase/health``.

The receiver reads the raw body, verifies its signature on those bytes before anything is parsed
(``viewzenix.webhooks.signatures``), then hands it to ``services.supabase_hooks.handle``.
Answers: 200 ``{"success": true, "operation", "symbol", "user_id", "outcome", ["reason"]}``
(``outcome`` applied or ignored: a replay or an out-of-order event); 401 ``missing_signature`` /
``invalid_signature``; 400 ``malformed_payload`` (``errors.reason`` says what); 413
``payload_too_large``; 422 ``unknown_table`` or ``validation_error`` (a message per field); 404
``supabase_hooks_disabled`` when no scheme is configured; 503 ``apply_failed`` / ``apply_timeout``
(the transaction passed HOOK_STATEMENT_TIMEOUT_MS) with ``Retry-After``. Every one of them is recorded in
``private.hook_events``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, current_app, request

from viewzenix.exceptions import NotFound
from viewzenix.repositories import hook_metrics
from viewzenix.runtime import get_runtime
from viewzenix.services import supabase_hooks as service
from viewzenix.webhooks.signatures import InvalidSignature, MissingSignature, SignatureVerifier

bp = Blueprint("supabase_hooks", __name__, url_prefix="/hooks/supabase")

EXTENSION = "viewzenix_supabase_hooks"


class HooksDisabled(NotFound):
    """Supabase hooks are off: set WEBHOOK_SECRET and/or STANDARD_WEBHOOK_SECRETS."""

    code = "supabase_hooks_disabled"


def init_app(app: Flask) -> None:
    """Build the verifier and settings once from ``app.config``; register the blueprint.

    Raises config.ConfigError when a secret is unusable (a ``whsec_`` secret that is not base64).
    """
    from config import ConfigError

    schemes = app.config["SUPABASE_HOOK_SCHEMES"]
    try:
        verifier = (
            SignatureVerifier(
                schemes,
                hmac_secret=app.config["WEBHOOK_SECRET"],
                standard_secrets=app.config["STANDARD_WEBHOOK_SECRETS"],
            )
            if schemes
            else None
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    app.extensions[EXTENSION] = (
        verifier,
        service.HookSettings(
            users_on_delete=app.config["SUPABASE_USERS_ON_DELETE"],
            statement_timeout_ms=app.config["HOOK_STATEMENT_TIMEOUT_MS"],
        ),
    )
    app.register_blueprint(bp)


@bp.post("/db")
def receive_db_event():
    """Receive one signed Supabase Database Webhook event (public.user_symbols, auth.users)."""
    started = time.perf_counter()
    verifier, settings = current_app.extensions[EXTENSION]
    if verifier is None:
        raise HooksDisabled()
    db = get_runtime().db
    raw = request.stream.read(service.MAX_BODY_BYTES + 1)
    if len(raw) > service.MAX_BODY_BYTES:
        error = service.PayloadTooLarge()
        service.record_refusal(db, service.Delivery(raw, None, None, started), error)
        raise error
    try:
        verified = verifier.verify(raw, request.headers)
    except (MissingSignature, InvalidSignature) as error:
        service.record_refusal(
            db, service.Delivery(raw, None, request.headers.get("webhook-id"), started), error
        )
        raise
    delivery = service.Delivery(raw, verified.scheme, verified.webhook_id, started)
    return service.handle(db, delivery, settings).body(), 200


@bp.get("/health")
def health():
    """Database reachable, last event per table, counts and latency percentiles per table and outcome.

    ``?window=<seconds>`` (default 3600, at most one day): the span the counts and percentiles
    cover. For operators, like ``GET /metrics``: ``Authorization: Bearer <METRICS_TOKEN>``, or
    without that token direct loopback clients only (``viewzenix.metrics.operator_access_refused``).
    503 ``database_unavailable`` when the database does not answer.
    """
    from viewzenix.metrics import operator_access_refused

    refused = operator_access_refused(get_runtime().config)
    if refused is not None:
        return refused
    raw_window = request.args.get("window", "3600")
    window = min(max(int(raw_window), 1), 86400) if raw_window.isdigit() and len(raw_window) <= 6 else 3600
    verifier, _ = current_app.extensions[EXTENSION]
    db = get_runtime().db
    if not db.ping():
        return {
            "code": "database_unavailable",
            "status": 503,
            "message": "The database does not answer.",
            "database": "unavailable",
        }, 503
    with db.transaction() as conn:
        tables = hook_metrics.per_table(conn, window_seconds=window)
        checks = hook_metrics.last_sync_checks(conn)
    body: dict[str, Any] = {
        "status": "ok",
        "database": "ok",
        "schemes": list(verifier.schemes) if verifier else [],
        "window_seconds": window,
        "tables": tables,
        "sync_checks": checks,
    }
    return body, 200
