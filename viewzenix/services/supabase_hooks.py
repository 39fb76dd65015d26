"""Supabase Database Webhook events: route, validate, apply in order, record every one.

A Database Webhook body (Supabase docs, Database Webhooks) is ``{"type": "INSERT"|"UPDATE"|"DELETE",
"table", "schema", "record", "old_record"}``: ``old_record`` is null on INSERT, ``record`` null
on DELETE. Routes by ``(schema, table)``:

- ``public.user_symbols`` → ``public.watchers``: upsert on ``(user_id, symbol, timeframe)``
  with ``strategy`` (object, default ``{}``) and ``active`` (default true); DELETE removes it;
  an UPDATE that changes ``symbol`` or ``timeframe`` also removes the row under the old key.
- ``auth.users`` → ``public.users`` profiles: created on INSERT (email; display name from
  ``raw_user_meta_data.full_name``/``name``, avatar from ``avatar_url``/``picture`` — what Google
  OAuth fills in), with a unique username from the email; updated on UPDATE; deleted or
  anonymised on DELETE (``SUPABASE_USERS_ON_DELETE``).

Events arrive twice or out of order (Supabase never retries, but a signing trigger, a resend
by hand or a repair may repeat one). The source row's ``updated_at`` orders versions: an event
no newer than what was applied is ignored (``already_applied`` when equal, ``stale`` when
older), a deleted row leaves a tombstone so a late event cannot bring it back, and a Standard
Webhooks id is applied once (``duplicate_delivery``). Every delivery is written to
``private.hook_events`` with its outcome — ``applied``, ``ignored``, ``refused`` (with the reason)
or ``received`` (stored, applying it failed) — in the same transaction as its effect.

Flask-free: the HTTP layer (``viewzenix/webhooks/supabase.py``) verifies the signature, calls
:func:`handle` with the raw bytes, and renders what it returns or raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from prometheus_client import Counter, Histogram

from viewzenix.db import Connection, Database
from viewzenix.exceptions import Invalid, Unavailable, ViewzenixError
from viewzenix.repositories import hook_sync as repo

logger = logging.getLogger(__name__)

OPERATIONS = ("INSERT", "UPDATE", "DELETE")
# Symbols like AAPL, BRK.B, BTC/USDT, ES1!, EURUSD: letters and digits, one separator at most.
# public.watchers.symbol: char_length between 1 and 32 (migration 20261127120000_supabase_sync.sql).
MAX_SYMBOL_LENGTH = 32
SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_!]{0,19}([./:-][A-Z0-9][A-Z0-9_!]{0,19})?$")
# TradingView's chart intervals, in the seed's notation.
TIMEFRAMES = (
    "1m", "3m", "5m", "15m", "30m", "45m",
    "1h", "2h", "3h", "4h", "6h", "8h", "12h",
    "1d", "3d", "1w", "1M",
)  # fmt: skip
MAX_BODY_BYTES = 256 * 1024


class HookRefused(ViewzenixError):
    """The event was refused."""


class MalformedPayload(HookRefused):
    """The body is not a Supabase Database Webhook payload."""

    code = "malformed_payload"
    status = 400


class PayloadTooLarge(HookRefused):
    """The body is larger than 256 KiB."""

    code = "payload_too_large"
    status = 413


class UnknownTable(HookRefused):
    """No receiver for this table: this endpoint takes public.user_symbols and auth.users."""

    code = "unknown_table"
    status = 422


class InvalidRecord(HookRefused, Invalid):
    """The record's fields are invalid; see errors for each field."""


class ApplyFailed(Unavailable):
    """The event was recorded but could not be applied; the drift check will repair it."""

    code = "apply_failed"
    retry_after_seconds = 5

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` (seconds): a sender that retries (a resend by hand, a relay) waits first."""
        return {"Retry-After": str(self.retry_after_seconds)}


class ApplyTimedOut(ApplyFailed):
    """The event was recorded but applying it took longer than the receiver's time bound
    (HOOK_STATEMENT_TIMEOUT_MS); retry later — the drift check repairs it meanwhile."""

    code = "apply_timeout"


@dataclass(frozen=True)
class HookSettings:
    """``users_on_delete``: ``anonymise`` or ``delete`` (SUPABASE_USERS_ON_DELETE);
    ``statement_timeout_ms``: the bound of the applying transaction (HOOK_STATEMENT_TIMEOUT_MS;
    0 = none; the specification asks for 1 s)."""

    users_on_delete: str = "anonymise"
    statement_timeout_ms: int = 1000


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: raw bytes, the scheme that verified it, its webhook id, when reading began.

    ``started``: ``time.perf_counter()`` when the request was first read (latency is measured
    from there).
    """

    raw: bytes
    scheme: str | None
    webhook_id: str | None
    started: float


@dataclass
class HookOutcome:
    """What became of an event: ``outcome`` applied|ignored, ``reason``, the answer's fields."""

    operation: str
    table: str
    outcome: str
    reason: str | None = None
    record_key: str | None = None
    source_updated_at: datetime | None = None
    answer: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The seed's answer ``{success, operation, symbol, user_id}`` plus ``outcome``/``reason``."""
        body: dict[str, Any] = {"success": True, "operation": self.operation, **self.answer}
        body["outcome"] = self.outcome
        if self.reason:
            body["reason"] = self.reason
        return body


@dataclass(frozen=True)
class Event:
    """A parsed webhook payload."""

    operation: str
    schema: str
    table: str
    record: dict[str, Any] | None
    old_record: dict[str, Any] | None


# --- parsing ---------------------------------------------------------------------------------


def parse_event(raw: bytes) -> Event:
    """Parse a Database Webhook body. Raises MalformedPayload (400) with ``errors.reason``."""

    def refuse(reason: str, message: str) -> MalformedPayload:
        return MalformedPayload(message, errors={"reason": reason})

    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise refuse("invalid_json", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(payload, dict):
        raise refuse("not_an_object", "The body must be a JSON object.")
    operation = payload.get("type")
    if operation not in OPERATIONS:
        raise refuse("invalid_type", f'"type" must be one of INSERT, UPDATE, DELETE, got {operation!r}.')
    schema, table = payload.get("schema"), payload.get("table")
    if not isinstance(schema, str) or not isinstance(table, str) or not schema or not table:
        raise refuse(
            "missing_table",
            '"schema" and "table" are required (Supabase sends both in every Database Webhook): add '
            '"schema": "public", "table": "user_symbols" for a watcher, or '
            '"schema": "auth", "table": "users" for a user profile.',
        )
    record, old_record = payload.get("record"), payload.get("old_record")
    for name, value in (("record", record), ("old_record", old_record)):
        if value is not None and not isinstance(value, dict):
            raise refuse(f"invalid_{name}", f'"{name}" must be an object or null.')
    if operation in ("INSERT", "UPDATE") and record is None:
        raise refuse("missing_record", f'"record" is required on {operation}.')
    if operation == "DELETE" and old_record is None:
        raise refuse("missing_old_record", '"old_record" is required on DELETE.')
    return Event(operation, schema, table, record, old_record)


def _timestamp(record: dict[str, Any], errors: dict[str, str]) -> datetime | None:
    value = record.get("updated_at")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace(" ", "T", 1))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    errors["updated_at"] = "must be an ISO 8601 timestamp with a time zone"
    return None


def _uuid(value: Any, name: str, errors: dict[str, str]) -> uuid.UUID | None:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    example = "00000000-0000-4000-8000-000000000001"
    errors[name] = (
        f"is required: a UUID (e.g. {example})" if value is None else f"must be a UUID (e.g. {example})"
    )
    return None


# --- watchers --------------------------------------------------------------------------------


def watcher_fields(record: dict[str, Any], *, key_only: bool = False) -> dict[str, Any]:
    """Validate a ``user_symbols`` record; return the watcher's fields. Raises InvalidRecord (422).

    ``symbol``: letters and digits with at most one ``. / : -`` separator (``AAPL``, ``BTC/USDT``,
    ``BRK.B``), upper-cased; ``timeframe``: one of ``TIMEFRAMES``; ``strategy``: an object (null →
    ``{}``); ``active``: a boolean (null → true); ``updated_at``: ISO 8601 with a zone, optional.
    """
    errors: dict[str, str] = {}
    user_id = _uuid(record.get("user_id"), "user_id", errors)
    symbol = record.get("symbol")
    # Checked as sent (ASCII, the column's 32 characters), then upper-cased: "ſPY".upper() is "SPY".
    if (
        not isinstance(symbol, str)
        or not symbol.strip().isascii()
        or len(symbol.strip()) > MAX_SYMBOL_LENGTH
        or not SYMBOL_RE.match(symbol.strip().upper())
    ):
        errors["symbol"] = (
            f"must be a symbol like AAPL, BRK.B or BTC/USDT (at most {MAX_SYMBOL_LENGTH} characters)"
        )
    else:
        symbol = symbol.strip().upper()
    timeframe = record.get("timeframe")
    if timeframe not in TIMEFRAMES:
        errors["timeframe"] = f"must be one of {', '.join(TIMEFRAMES)}"
    fields: dict[str, Any] = {"user_id": user_id, "symbol": symbol, "timeframe": timeframe}
    if not key_only:
        strategy = record.get("strategy")
        if strategy is None:
            strategy = {}
        elif not isinstance(strategy, dict):
            errors["strategy"] = "must be a JSON object"
        active = record.get("active")
        if active is None:
            active = True
        elif not isinstance(active, bool):
            errors["active"] = "must be true or false"
        fields.update(strategy=strategy, active=active)
    fields["updated_at"] = _timestamp(record, errors)
    if errors:
        raise InvalidRecord(errors=errors)
    return fields


def _ignored_reason(version: tuple[datetime | None, bool] | None, updated_at: datetime | None) -> str:
    if version is None or version[0] is None or updated_at is None:
        return "already_applied"
    return "already_applied" if version[0] == updated_at else "stale"


def apply_watchers(conn: Connection, event: Event, settings: HookSettings) -> HookOutcome:
    """Apply a ``public.user_symbols`` event to ``public.watchers``."""
    if event.operation == "DELETE":
        assert event.old_record is not None
        old = watcher_fields(event.old_record, key_only=True)
        key = {k: old[k] for k in ("user_id", "symbol", "timeframe")}
        deleted = repo.delete_watcher(conn, key, old["updated_at"])
        outcome = HookOutcome(
            "DELETE",
            "watchers",
            "applied" if deleted else "ignored",
            None if deleted else _ignored_reason(repo.watcher_version(conn, key), old["updated_at"]),
            repo.watcher_key(**key),
            old["updated_at"],
        )
        outcome.answer = {"symbol": old["symbol"], "user_id": str(old["user_id"])}
        return outcome
    assert event.record is not None
    new = watcher_fields(event.record)
    key = {k: new[k] for k in ("user_id", "symbol", "timeframe")}
    moved = False
    if event.operation == "UPDATE" and event.old_record is not None:
        try:
            old = watcher_fields(event.old_record, key_only=True)
        except InvalidRecord:
            old = None  # an invalid old key was never applied: nothing to remove
        if old is not None and (old["user_id"], old["symbol"], old["timeframe"]) != tuple(key.values()):
            old_key = {k: old[k] for k in ("user_id", "symbol", "timeframe")}
            # The old key's last version is this update's: the row under it is gone as of then.
            moved = repo.delete_watcher(conn, old_key, new["updated_at"])
    result = repo.upsert_watcher(conn, new)
    applied = result is not None or moved
    outcome = HookOutcome(
        event.operation,
        "watchers",
        "applied" if applied else "ignored",
        None if applied else _ignored_reason(repo.watcher_version(conn, new), new["updated_at"]),
        repo.watcher_key(**key),
        new["updated_at"],
    )
    outcome.answer = {"symbol": new["symbol"], "user_id": str(new["user_id"])}
    return outcome


# --- users -----------------------------------------------------------------------------------


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value[:limit] or None


def profile_fields(record: dict[str, Any]) -> dict[str, Any]:
    """Validate an ``auth.users`` record; return the profile's fields. Raises InvalidRecord (422).

    ``display_name``: ``raw_user_meta_data.full_name`` or ``.name`` (Google OAuth fills both);
    ``avatar_url``: ``.avatar_url`` or ``.picture`` (Google's). Anonymous sign-ins have no email.
    """
    errors: dict[str, str] = {}
    user_id = _uuid(record.get("id"), "id", errors)
    email = record.get("email")
    if email is not None and (not isinstance(email, str) or len(email) > 320):
        errors["email"] = "must be a string of at most 320 characters or null"
    meta = record.get("raw_user_meta_data")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        errors["raw_user_meta_data"] = "must be a JSON object or null"
        meta = {}
    updated_at = _timestamp(record, errors)
    if errors:
        raise InvalidRecord(errors=errors)
    return {
        "id": user_id,
        "email": email or None,
        "display_name": _text(meta.get("full_name"), 200) or _text(meta.get("name"), 200),
        "avatar_url": _text(meta.get("avatar_url"), 2048) or _text(meta.get("picture"), 2048),
        "updated_at": updated_at,
    }


def username_candidates(email: str | None, user_id: uuid.UUID) -> list[str]:
    """Return usernames to try in order: from the email's local part, then deterministic suffixes.

    ``ann.lee+tv@x.com`` → ``ann_lee``, ``ann_lee_<4 hex>``, ``ann_lee_<8 hex>``, ``ann_lee_<32
    hex>`` (hex of the user id, so the last is unique: generation never fails). Lower-case
    ASCII letters, digits and ``_``; 3 to 30 characters before the suffix; ``user`` when the email
    gives nothing usable (no email, or not Latin).
    """
    local = (email or "").split("@", 1)[0].split("+", 1)[0]
    ascii_local = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode().lower()
    base = re.sub(r"[^a-z0-9]+", "_", ascii_local).strip("_")[:30]
    if len(base) < 3:
        base = "user"
    hexid = user_id.hex
    return [base, f"{base}_{hexid[:4]}", f"{base}_{hexid[:8]}", f"{base}_{hexid}"]


def apply_users(conn: Connection, event: Event, settings: HookSettings) -> HookOutcome:
    """Apply an ``auth.users`` event to the ``public.users`` profiles."""
    if event.operation == "DELETE":
        assert event.old_record is not None
        old = profile_fields(event.old_record)
        changed = repo.remove_profile(conn, old["id"], old["updated_at"], settings.users_on_delete)
        outcome = HookOutcome(
            "DELETE",
            "users",
            "applied" if changed else "ignored",
            None if changed else _ignored_reason(repo.profile_version(conn, old["id"]), old["updated_at"]),
            str(old["id"]),
            old["updated_at"],
        )
        outcome.answer = {"user_id": str(old["id"])}
        return outcome
    assert event.record is not None
    new = profile_fields(event.record)
    previous = profile_fields(event.old_record) if event.operation == "UPDATE" and event.old_record else None
    profile = {
        **new,
        # An UPDATE changes our display name or avatar only when the source's changed: a user
        # may have edited theirs here, and auth.users changes at every sign-in.
        "set_display_name": previous is None or previous["display_name"] != new["display_name"],
        "set_avatar_url": previous is None or previous["avatar_url"] != new["avatar_url"],
    }
    candidates = username_candidates(new["email"], new["id"])
    for attempt in range(3):
        try:
            with conn.transaction():  # a savepoint: a username taken concurrently retries
                row = repo.upsert_profile(conn, profile, candidates)
            break
        except psycopg.errors.UniqueViolation:
            if attempt == 2:
                raise
    outcome = HookOutcome(
        event.operation,
        "users",
        "applied" if row is not None else "ignored",
        None
        if row is not None
        else _ignored_reason(repo.profile_version(conn, new["id"]), new["updated_at"]),
        str(new["id"]),
        new["updated_at"],
    )
    outcome.answer = {"user_id": str(new["id"])}
    if row is not None:
        outcome.answer["username"] = row["username"]
    return outcome


# (schema, table) of the source → (our target, how to apply an event to it).
ROUTES: dict[tuple[str, str], tuple[str, Callable[[Connection, Event, HookSettings], HookOutcome]]] = {
    ("public", "user_symbols"): ("watchers", apply_watchers),
    ("auth", "users"): ("users", apply_users),
}


# --- Prometheus: what this process received (merged across gunicorn workers by /metrics) -----

HOOK_EVENTS = Counter(
    "viewzenix_supabase_hook_events",
    "Supabase Database Webhook deliveries recorded, by source table (schema.table, or unrouted "
    "when refused before the payload was read) and outcome (applied, ignored, refused, received).",
    ["source", "outcome"],
)
HOOK_LATENCY = Histogram(
    "viewzenix_supabase_hook_duration_seconds",
    "Time from reading a delivery to recording it (seconds), by source table.",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def observe(row: dict[str, Any]) -> None:
    """Count a recorded delivery (an event row as ``_event_row`` builds it) and time it."""
    source = f"{row['schema_name']}.{row['table_name']}" if row.get("table_name") else "unrouted"
    HOOK_EVENTS.labels(source, row["outcome"]).inc()
    HOOK_LATENCY.labels(source).observe((row.get("latency_ms") or 0) / 1000)


# --- the entry points ------------------------------------------------------------------------


def _latency_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _event_row(delivery: Delivery, event: Event | None, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "webhook_id": delivery.webhook_id,
        "scheme": delivery.scheme,
        "body_bytes": len(delivery.raw),
    }
    if event is not None:
        row.update(schema_name=event.schema, table_name=event.table, operation=event.operation)
    row.update(values)
    return row


def record_refusal(
    db: Database, delivery: Delivery, error: ViewzenixError, event: Event | None = None
) -> None:
    """Record a refused delivery (bad signature, malformed, unknown table, invalid fields).

    An unauthenticated body is not stored, only its size and SHA-256.
    """
    row = _event_row(
        delivery,
        event,
        outcome="refused",
        reason=error.code,
        http_status=error.status,
        body_sha256=hashlib.sha256(delivery.raw).digest(),
        detail={"message": error.message, **({"errors": error.errors} if error.errors else {})},
    )
    row["latency_ms"] = _latency_ms(delivery.started)
    with db.transaction() as conn:
        repo.insert_event(conn, row)
    observe(row)
    logger.info(
        "supabase hook refused: %s",
        error.code,
        extra={"action": "hook_refused", "reason": error.code, "webhook_id": delivery.webhook_id},
    )


def handle(db: Database, delivery: Delivery, settings: HookSettings) -> HookOutcome:
    """Parse, route and apply one verified delivery; record it with its outcome.

    Returns the outcome (applied or ignored). Raises MalformedPayload (400), UnknownTable (422),
    InvalidRecord (422) — each recorded as refused first — or ApplyFailed (503) when the database
    failed while applying (recorded as received).
    """
    event: Event | None = None
    try:
        event = parse_event(delivery.raw)
        route = ROUTES.get((event.schema, event.table))
        if route is None:
            raise UnknownTable(
                f"No receiver for {event.schema}.{event.table}: this endpoint takes "
                "public.user_symbols and auth.users.",
                errors={"table": f"{event.schema}.{event.table}"},
            )
        with db.transaction() as conn:
            if settings.statement_timeout_ms:
                # SET LOCAL: this transaction only (the pool's connection keeps its own setting).
                conn.execute(
                    "select set_config('statement_timeout', %s, true)",
                    (f"{settings.statement_timeout_ms}ms",),
                )
            target, apply = route
            if delivery.webhook_id is not None and repo.webhook_id_applied(conn, delivery.webhook_id):
                outcome = HookOutcome(event.operation, target, "ignored", "duplicate_delivery")
            else:
                outcome = apply(conn, event, settings)
            row = _event_row(
                delivery,
                event,
                outcome=outcome.outcome,
                reason=outcome.reason,
                record_key=outcome.record_key,
                source_updated_at=outcome.source_updated_at,
                http_status=200,
                latency_ms=_latency_ms(delivery.started),
            )
            repo.insert_event(conn, row)
        observe(row)
    except HookRefused as error:
        record_refusal(db, delivery, error, event)
        raise
    except psycopg.errors.UniqueViolation as exc:
        if delivery.webhook_id is None or "hook_events_applied_webhook_id_key" not in str(exc):
            return _apply_failed(db, delivery, event, exc)
        # The same webhook id applied concurrently by another request: this one changed nothing.
        assert event is not None
        outcome = HookOutcome(
            event.operation, ROUTES[(event.schema, event.table)][0], "ignored", "duplicate_delivery"
        )
        row = _event_row(
            delivery,
            event,
            outcome="ignored",
            reason="duplicate_delivery",
            http_status=200,
            latency_ms=_latency_ms(delivery.started),
        )
        with db.transaction() as conn:
            repo.insert_event(conn, row)
        observe(row)
    except psycopg.Error as exc:
        return _apply_failed(db, delivery, event, exc)
    return outcome


def _apply_failed(db: Database, delivery: Delivery, event: Event | None, exc: psycopg.Error) -> HookOutcome:
    """Record a delivery whose apply failed in the database as ``received``; raise ApplyFailed.

    A statement timeout (``QueryCanceled``) raises ApplyTimedOut (reason ``statement_timeout``).
    """
    timed_out = isinstance(exc, psycopg.errors.QueryCanceled)
    logger.error("supabase hook could not be applied: %s", exc, extra={"action": "hook_apply_failed"})
    row = _event_row(
        delivery,
        event,
        outcome="received",
        reason="statement_timeout" if timed_out else "apply_failed",
        http_status=503,
        latency_ms=_latency_ms(delivery.started),
        body_sha256=hashlib.sha256(delivery.raw).digest(),
        detail={"error": f"{type(exc).__name__}: {exc}"[:500]},
    )
    with db.transaction() as conn:
        repo.insert_event(conn, row)
    observe(row)
    raise (ApplyTimedOut() if timed_out else ApplyFailed()) from exc
