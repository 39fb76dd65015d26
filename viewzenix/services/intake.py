"""Signal intake: authenticate an alert, parse it, store it, defer its execution.

TradingView facts this follows (FACTS.md): no custom headers, so the secret is in the URL (or
the body's ``passphrase`` in single-tenant mode); ``application/json`` only when the message is
valid JSON, else ``text/plain``; a request over 3 s is cancelled and a 5xx is resent up to 3
times — so intake answers from one short transaction and never with a 5xx once the signal is
stored. Every alert that reaches a known config is stored, accepted or rejected, with its raw
body and reason; the execution job is deferred in the same transaction.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import procrastinate

from viewzenix.db import Connection, Database
from viewzenix.domain.parsing import (
    AlertRejected,
    MalformedJson,
    ParsedAlert,
    parse_alert,
    redact_raw_body,
    signal_to_dict,
)
from viewzenix.jobs import defer_execute_signal
from viewzenix.repositories import signals as signals_repo
from viewzenix.repositories import webhook_configs as configs_repo
from viewzenix.services.webhook_configs import token_digest

logger = logging.getLogger(__name__)

# Parse refusals that mean "this is not valid JSON" answer 400; the rest 422; too large 413.
_SYNTAX_CODES = frozenset({"empty_body", "invalid_encoding"})


@dataclass(frozen=True)
class IntakeResult:
    """The HTTP answer: ``status`` and a JSON ``body`` (``signal_id`` when stored)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


NOT_FOUND = IntakeResult(404, {"code": "not_found", "status": 404, "message": "No webhook at this URL."})


@dataclass(frozen=True)
class Alert:
    """An incoming HTTP alert: raw bytes as received, content type, source address."""

    raw: bytes
    content_type: str | None
    source_ip: str | None


class ConfigInactive(AlertRejected):
    """This webhook config is turned off (is_active is false)."""

    code = "config_inactive"
    status = 403


def storable(value: Any) -> Any:
    """Return ``value`` with every string made storable in Postgres text/jsonb.

    Refusal messages and details quote the sender's input, which may hold NUL characters or
    lone surrogates (``{"\\u0000": 1}``); Postgres refuses both, and a failed insert would lose
    the alert and answer 5xx. They are written as ``\\u0000``-style escapes instead.
    """
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\\u0000")
        if not value.isascii():
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def status_for(error: AlertRejected) -> int:
    """Return the HTTP status answering a refused alert.

    400 not valid JSON, 413 too large, 422 not a usable signal; a subclass may set ``status``
    (403 config turned off, 401 wrong passphrase).
    """
    explicit = getattr(error, "status", None)
    if explicit is not None:
        return explicit
    if error.code == "body_too_large":
        return 413
    if isinstance(error, MalformedJson) or error.code in _SYNTAX_CODES:
        return 400
    return 422


def receive(
    db: Database, job_app: procrastinate.App, *, config_id: uuid.UUID, token: str, alert: Alert
) -> IntakeResult:
    """Authenticate by URL token and store the alert; defer its execution when accepted.

    Unknown config and wrong token both answer 404 (nothing can be probed); the token digest is
    compared in constant time (``hmac.compare_digest``). Inactive configs store the alert as
    rejected (``config_inactive``, 403).
    """
    with db.transaction() as conn:
        config = configs_repo.get_for_intake(conn, config_id)
        if config is None or not hmac.compare_digest(
            bytes(config["security_token_hash"]), token_digest(token)
        ):
            logger.info(
                "webhook with unknown config or wrong token",
                extra={"action": "intake_not_found", "config_id": config_id},
            )
            return NOT_FOUND
        return store_alert(conn, job_app, config=config, alert=alert)


def store_alert(
    conn: Connection,
    job_app: procrastinate.App,
    *,
    config: dict[str, Any],
    alert: Alert,
    parsed: ParsedAlert | None = None,
    rejection: AlertRejected | None = None,
) -> IntakeResult:
    """Parse (unless given) and store an authenticated alert on ``conn``; defer its job if accepted."""
    signal_id = uuid.uuid4()
    if parsed is None and rejection is None:
        try:
            parsed = parse_alert(alert.raw, alert.content_type)
        except AlertRejected as error:
            rejection = error
    if rejection is None and not config["is_active"]:
        rejection = ConfigInactive()
    common = {
        "signal_id": signal_id,
        "user_id": config["user_id"],
        "config_id": config["id"],
        "raw_body": redact_raw_body(alert.raw),
        "content_type": alert.content_type,
        "source_ip": alert.source_ip,
    }
    if rejection is not None:
        signals_repo.insert(
            conn,
            status="rejected",
            reject_code=rejection.code,
            reject_message=storable(rejection.message),
            reject_details=storable(rejection.details) or None,
            payload=parsed.payload if parsed else None,
            ticker=parsed.signal.ticker if parsed else None,
            action=str(parsed.signal.action) if parsed else None,
            **common,
        )
        status = status_for(rejection)
        logger.info(
            "alert rejected: %s",
            rejection.code,
            extra={"action": "signal_rejected", "signal_id": signal_id, "config_id": config["id"]},
        )
        body: dict[str, Any] = {
            "code": rejection.code,
            "status": status,
            "message": storable(rejection.message),
            "signal_id": str(signal_id),
        }
        if rejection.details:
            body["errors"] = storable(rejection.details)
        return IntakeResult(status, body)

    signal = parsed.signal
    job_id = defer_execute_signal(
        job_app, conn, signal_id=signal_id, config_id=config["id"], symbol=signal.ticker
    )
    signals_repo.insert(
        conn,
        status="accepted",
        signal=signal_to_dict(signal),
        payload=parsed.payload,
        ticker=signal.ticker,
        action=str(signal.action),
        job_id=job_id,
        **common,
    )
    return IntakeResult(
        200,
        {
            "signal_id": str(signal_id),
            "status": "accepted",
            "ticker": signal.ticker,
            "action": str(signal.action),
        },
    )
