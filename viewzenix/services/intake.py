"""Signal intake: authenticate an alert, parse it, store it, defer its execution.

TradingView facts this follows (docs/tradingview.md): no custom headers, so the secret is in the URL (or
the body's ``passphrase`` in single-tenant mode); ``application/json`` only when the message is
valid JSON, else ``text/plain``; a request over 3 s is cancelled and a 5xx is resent up to 3
times — so intake answers from one short transaction and never with a 5xx once the signal is
stored. Every alert that reaches a known config is stored, accepted or rejected, with its raw
body and reason; the execution job is deferred in the same transaction. A parsed alert costs one
database round trip (``configs_repo.INTAKE_PARSED_ALERT``).

Alerts can arrive twice (a resend, or one alert fired by two rules): an accepted alert whose
dedupe key (``viewzenix/domain/dedupe.py``) was claimed within the config's window is stored as
a ``duplicate`` signal pointing at the original, answers 200 with the original's ``signal_id``
and ``"duplicate": true``, and runs nothing. The claim is made in the statement that reads the
config, so the hot path has no extra round trip.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import procrastinate
from psycopg.types.json import Jsonb

from viewzenix import notifications
from viewzenix.db import Connection, Database
from viewzenix.domain.dedupe import dedupe_key
from viewzenix.domain.parsing import (
    AlertRejected,
    ParsedAlert,
    parse_alert,
    redact_raw_body,
    signal_to_dict,
)
from viewzenix.domain.symbols import canonical_symbol
from viewzenix.exceptions import NotFound
from viewzenix.jobs import EXECUTE_SIGNAL, QUEUE, defer_execute_signal, signal_lock
from viewzenix.repositories import signals as signals_repo
from viewzenix.repositories import webhook_configs as configs_repo
from viewzenix.services import approvals, routing
from viewzenix.services.webhook_configs import token_digest

logger = logging.getLogger(__name__)


class WebhookNotFound(NotFound):
    """No webhook at this URL."""


@dataclass(frozen=True)
class IntakeOutcome:
    """What became of a stored alert; the HTTP layer renders it.

    ``status``: ``accepted`` (its job deferred), ``awaiting_approval`` (approval mode: no job
    until approved, ``services.approvals``), ``duplicate`` (of ``original_id``; nothing runs)
    or ``rejected`` (``rejection`` says why; its ``status`` hint is the HTTP status).
    ``signal_id``: the id of the signals row written for this alert. ``ticker``/``action``: the
    parsed signal's, when there is one. ``message``/``details``: the rejection's, made storable.
    """

    status: str
    signal_id: uuid.UUID
    ticker: str | None = None
    action: str | None = None
    original_id: uuid.UUID | None = None
    rejection: AlertRejected | None = None
    message: str | None = None
    details: dict[str, Any] | None = None

    def answer(self) -> tuple[dict[str, Any], int]:
        """Return ``(body, status hint)``: the webhook's JSON answer to this alert and its HTTP status."""
        outcome = self
        if outcome.status == "rejected":
            assert outcome.rejection is not None
            status = outcome.rejection.status
            body: dict[str, Any] = {
                "code": outcome.rejection.code,
                "status": status,
                "message": outcome.message,
                "signal_id": str(outcome.signal_id),
            }
            if outcome.details:
                body["errors"] = outcome.details
            return body, status
        if outcome.status == "duplicate":
            return {
                "signal_id": str(outcome.original_id),
                "status": "duplicate",
                "duplicate": True,
                "duplicate_signal_id": str(outcome.signal_id),
                "ticker": outcome.ticker,
                "action": outcome.action,
            }, 200
        return {
            "signal_id": str(outcome.signal_id),
            "status": outcome.status,  # accepted, or awaiting_approval (approval mode)
            "duplicate": False,
            "ticker": outcome.ticker,
            "action": outcome.action,
        }, 200


@dataclass(frozen=True)
class Alert:
    """An incoming HTTP alert: raw bytes as received, content type, source address."""

    raw: bytes
    content_type: str | None
    source_ip: str | None


@dataclass(frozen=True)
class Received:
    """An alert read before its transaction: what every intake path stores.

    ``signal_id``: the id its signals row gets. ``raw_body``: the body as stored (secret values
    masked). ``parsed`` and/or ``rejection``: both when a parsed alert was then refused (a wrong
    passphrase). ``dedupe_key``: set only for an alert not refused so far. ``body_summary``:
    for an unauthenticated refusal (``summarised``), the body's size and digest, stored in
    ``reject_details`` in place of the body.
    """

    alert: Alert
    signal_id: uuid.UUID
    raw_body: str
    parsed: ParsedAlert | None
    rejection: AlertRejected | None
    dedupe_key: str | None
    body_summary: dict[str, Any] | None = None


def read(
    alert: Alert, *, parsed: ParsedAlert | None = None, rejection: AlertRejected | None = None
) -> Received:
    """Parse ``alert`` (unless ``parsed`` or ``rejection`` is given) and derive what is stored."""
    if parsed is None and rejection is None:
        try:
            parsed = parse_alert(alert.raw, alert.content_type)
        except AlertRejected as error:
            rejection = error
    raw_body = redact_raw_body(alert.raw)
    key = dedupe_key(parsed, raw_body) if parsed is not None and rejection is None else None
    return Received(
        alert=alert,
        signal_id=uuid.uuid4(),
        raw_body=raw_body,
        parsed=parsed,
        rejection=rejection,
        dedupe_key=key,
    )


# Of a refused unauthenticated body (a wrong passphrase: anyone can send one, as large as the
# body limit, as often as the rate limit allows), only this many bytes are kept.
UNAUTHENTICATED_BODY_KEPT_BYTES = 1024


def summarised(received: Received) -> Received:
    """Return ``received`` keeping of its body only its size, sha256 and first KiB (masked).

    For a refusal whose sender was not authenticated: its row keeps what helps a person see
    what was sent (``reject_details.body_bytes``, ``body_sha256``, the start of the body in
    ``raw_body``) without storing an anonymous sender's bytes in full (the body and its parsed
    ``payload``: about 128 KB a row at the 64 KB body limit).
    """
    raw = received.alert.raw
    kept = received.raw_body.encode()[:UNAUTHENTICATED_BODY_KEPT_BYTES].decode(errors="ignore")
    return replace(
        received,
        raw_body=kept,
        parsed=None,
        body_summary={
            "body_bytes": len(raw),
            "body_sha256": hashlib.sha256(raw).hexdigest(),
            "body_truncated": len(kept.encode()) < len(received.raw_body.encode()),
        },
    )


def purge_refused_signals(db: Database, retention_days: int, *, batch: int = 5000) -> int:
    """Delete refused signals received more than ``retention_days`` days ago; return how many.

    In batches of ``batch`` rows, each its own transaction (short locks, bounded statements).
    """
    before = datetime.now(UTC) - timedelta(days=retention_days)
    deleted = 0
    while True:
        with db.transaction() as conn:
            count = signals_repo.delete_refused_before(conn, before, batch)
        deleted += count
        if count < batch:
            return deleted


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


def receive(
    db: Database,
    job_app: procrastinate.App,
    *,
    config_id: uuid.UUID,
    token: str,
    alert: Alert,
    public_base_url: str = "",
) -> IntakeOutcome:
    """Authenticate by URL token and store the alert; defer its execution when accepted and fresh.

    Unknown config and wrong token both raise ``WebhookNotFound`` (404; nothing can be probed,
    nothing is written). Tokens are compared as SHA-256 digests, so the comparison's timing says
    nothing about the token. Inactive configs store the alert as rejected (``config_inactive``,
    403). The body is parsed before the database is touched; a parsed alert is then stored in
    one statement (``configs_repo.INTAKE_PARSED_ALERT``: config, dedupe claim, job, signal — one
    round trip, one transaction); an alert refused by the parser takes the general path.
    ``public_base_url``: the dashboard's address, for the link an approval notification carries.
    """
    received = read(alert)
    digest = token_digest(token)
    if received.rejection is None:
        return _receive_parsed(
            db, config_id=config_id, digest=digest, received=received, public_base_url=public_base_url
        )
    with db.transaction() as conn:
        config = configs_repo.get_for_intake(conn, config_id, token_hash=digest)
        if config is None or not hmac.compare_digest(bytes(config["security_token_hash"]), digest):
            _not_found(config_id)
        if not routing.source_allowed(config["allowed_source_ips"], alert.source_ip):
            received = replace(received, rejection=routing.SourceRefused())
        return store_alert(conn, job_app, config=config, received=received)


def _not_found(config_id: uuid.UUID) -> NoReturn:
    logger.info(
        "webhook with unknown config or wrong token",
        extra={"action": "intake_not_found", "config_id": config_id},
    )
    raise WebhookNotFound()


def parsed_alert_params(received: Received, digest: bytes) -> dict[str, Any]:
    """Return the named parameters a parsed alert's intake statement takes whatever its target
    (one config's ``INTAKE_PARSED_ALERT``, a group's ``GROUP_INTAKE``): the token digest, dedupe
    key, job queue and task, refusal codes and messages, the ticker (as sent and canonical) and
    the stored bodies."""
    assert received.parsed is not None
    parsed = received.parsed
    signal = parsed.signal
    inactive, source_refused = ConfigInactive(), routing.SourceRefused()
    return {
        "token_hash": digest,
        "dedupe_key": received.dedupe_key,
        "queue": QUEUE,
        "task_name": EXECUTE_SIGNAL,
        "inactive_code": inactive.code,
        "inactive_message": inactive.message,
        "source_code": source_refused.code,
        "source_message": source_refused.message,
        "canonical_ticker": canonical_symbol(signal.ticker),
        "ticker": signal.ticker,
        "action": str(signal.action),
        "signal": Jsonb(signal_to_dict(signal)),
        "payload": Jsonb(parsed.payload) if parsed.payload is not None else None,
        "raw_body": received.raw_body,
        "content_type": received.alert.content_type,
        "source_ip": received.alert.source_ip,
    }


def _receive_parsed(
    db: Database, *, config_id: uuid.UUID, digest: bytes, received: Received, public_base_url: str = ""
) -> IntakeOutcome:
    """Store a parsed alert in one statement; see ``receive``."""
    assert received.parsed is not None
    parsed, signal_id = received.parsed, received.signal_id
    signal = parsed.signal
    action = str(signal.action)
    params = {
        **parsed_alert_params(received, digest),
        "config_id": config_id,
        "signal_id": signal_id,
        "lock": signal_lock(config_id, signal.ticker),
        "job_args": json.dumps({"signal_id": str(signal_id)}),
    }
    with db.statement() as conn:
        row = configs_repo.intake_parsed_alert(conn, params)
    if row is None:
        _not_found(config_id)
    outcome = row["outcome"]
    if outcome == "rejected":
        source_refused = routing.SourceRefused()
        inactive = source_refused if row["reject_code"] == source_refused.code else ConfigInactive()
        logger.info(
            "alert rejected: %s",
            inactive.code,
            extra={"action": "signal_rejected", "signal_id": signal_id, "config_id": config_id},
        )
        # Off the hot path (a turned-off config): the refusal's notification, in its own transaction.
        with db.transaction() as conn:
            preferences = conn.execute(
                "select notification_preferences from public.webhook_configs where id = %s", (config_id,)
            ).fetchone()
            notifications.signal_refused(
                conn,
                preferences and preferences["notification_preferences"],
                config_id=config_id,
                signal_id=signal_id,
                code=inactive.code,
                message=inactive.message,
            )
        return IntakeOutcome("rejected", signal_id, rejection=inactive, message=inactive.message)
    if outcome == "duplicate":
        logger.info(
            "alert is a duplicate of signal %s",
            row["claimed_by"],
            extra={
                "action": "signal_duplicate",
                "signal_id": signal_id,
                "duplicate_of": row["claimed_by"],
                "config_id": config_id,
            },
        )
        return IntakeOutcome("duplicate", signal_id, row["ticker"], action, original_id=row["claimed_by"])
    if outcome == "awaiting_approval":  # approval mode: the notification, off the usual hot path
        approvals.notify_waiting(
            db,
            config_id=config_id,
            signal_id=signal_id,
            ticker=row["ticker"],
            action=action,
            public_base_url=public_base_url,
        )
        return IntakeOutcome("awaiting_approval", signal_id, row["ticker"], action)
    return IntakeOutcome("accepted", signal_id, row["ticker"], action)


def store_alert(
    conn: Connection, job_app: procrastinate.App, *, config: dict[str, Any], received: Received
) -> IntakeOutcome:
    """Store an authenticated alert on ``conn``: rejected, duplicate, or accepted with its job.

    ``config``: a ``get_for_intake`` row; its ``claimed_by`` says whether the alert's dedupe key
    was claimed by this alert (fresh), by an earlier one (duplicate), or not at all.
    """
    parsed, rejection = received.parsed, received.rejection
    if rejection is None and not config["is_active"]:
        rejection = ConfigInactive()
    signal_id = received.signal_id
    common = {
        "signal_id": signal_id,
        "user_id": config["user_id"],
        "config_id": config["id"],
        "raw_body": received.raw_body,
        "content_type": received.alert.content_type,
        "source_ip": received.alert.source_ip,
    }
    if rejection is not None:
        message, details = storable(rejection.message), storable(rejection.details) or None
        if received.body_summary is not None:
            details = {**(details or {}), **received.body_summary}
        signals_repo.insert(
            conn,
            status="rejected",
            reject_code=rejection.code,
            reject_message=message,
            reject_details=details,
            payload=parsed.payload if parsed else None,
            ticker=parsed.signal.ticker if parsed else None,
            action=str(parsed.signal.action) if parsed else None,
            **common,
        )
        notifications.signal_refused(
            conn,
            config.get("notification_preferences"),
            config_id=config["id"],
            signal_id=signal_id,
            code=rejection.code,
            message=message,
        )
        logger.info(
            "alert rejected: %s",
            rejection.code,
            extra={"action": "signal_rejected", "signal_id": signal_id, "config_id": config["id"]},
        )
        return IntakeOutcome(
            "rejected",
            signal_id,
            rejection=rejection,
            message=message,
            details=details,
        )

    signal = parsed.signal
    mapped = routing.mapped_ticker(conn, config["id"], signal.ticker)  # issue 17 item 7
    if mapped is not None:
        common["alert_ticker"], signal = signal.ticker, replace(signal, ticker=mapped)
    # What every stored parsed alert carries, whatever becomes of it.
    common.update(
        signal=signal_to_dict(signal),
        payload=parsed.payload,
        ticker=signal.ticker,
        action=str(signal.action),
    )
    original_id = config["claimed_by"]
    if original_id is not None and original_id != signal_id:
        signals_repo.insert(conn, status="duplicate", duplicate_of=original_id, **common)
        logger.info(
            "alert is a duplicate of signal %s",
            original_id,
            extra={
                "action": "signal_duplicate",
                "signal_id": signal_id,
                "duplicate_of": original_id,
                "config_id": config["id"],
            },
        )
        return IntakeOutcome(
            "duplicate", signal_id, signal.ticker, str(signal.action), original_id=original_id
        )

    if config.get("approval_mode"):  # waits for its owner's click (services.approvals); no job yet
        signals_repo.insert(
            conn,
            status="awaiting_approval",
            approval_timeout_seconds=config["approval_timeout_seconds"],
            **common,
        )
        approvals.notify_awaiting(
            conn,
            config.get("notification_preferences"),
            config_id=config["id"],
            signal_id=signal_id,
            ticker=signal.ticker,
            action=str(signal.action),
            timeout_seconds=config["approval_timeout_seconds"],
        )
        return IntakeOutcome("awaiting_approval", signal_id, signal.ticker, str(signal.action))
    job_id = defer_execute_signal(
        job_app, conn, signal_id=signal_id, config_id=config["id"], symbol=signal.ticker
    )
    signals_repo.insert(conn, status="accepted", job_id=job_id, **common)
    return IntakeOutcome("accepted", signal_id, signal.ticker, str(signal.action))
