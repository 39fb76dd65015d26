"""Webhook configs: create, read, update, delete, rotate the URL token.

Every call runs in one transaction as the caller (role ``authenticated`` with their claims), so
Row-Level Security decides what they can see and change.

The URL token is 192 bits from ``secrets`` (``token_urlsafe(24)``), returned once inside the full
webhook URL on create and rotate; only its SHA-256 is stored (a high-entropy random token needs
no slow KDF) plus a 4-character hint for the masked URL shown later.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from viewzenix.db import Database
from viewzenix.exceptions import Invalid, NotFound
from viewzenix.notifications import destinations, sending
from viewzenix.repositories import webhook_configs as repo
from viewzenix.services.common import Caller
from viewzenix.services.trading_windows import checked_windows

TOKEN_BYTES = 24


@dataclass(frozen=True)
class NewToken:
    token: str
    digest: bytes
    hint: str


def new_token() -> NewToken:
    """Return a fresh URL token (≥128 bits from ``secrets``) with its SHA-256 digest and hint."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return NewToken(token=token, digest=token_digest(token), hint=token[:4])


def token_digest(token: str) -> bytes:
    """Return the SHA-256 digest stored for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def webhook_url(base_url: str, config_id: uuid.UUID, token: str) -> str:
    """Return the URL to paste into TradingView's alert dialog."""
    return f"{base_url}/webhooks/{config_id}/{token}"


def masked_webhook_url(base_url: str, row: dict[str, Any]) -> str:
    """Return the webhook URL with the token masked (only its first 4 characters shown)."""
    return f"{base_url}/webhooks/{row['id']}/{row['token_hint']}{'•' * 8}"


def create(
    db: Database, caller: Caller, values: dict[str, Any], *, allow_private: Collection[str] = ()
) -> tuple[dict[str, Any], str]:
    """Create a config owned by ``caller``; return ``(row, token)`` — the token is shown once.

    ``notification_preferences`` destinations are parsed by apprise, checked (SSRF) and
    encrypted (``viewzenix.notifications.destinations.prepare``; ``allow_private``: the
    test/dev ``NOTIFY_ALLOW_PRIVATE_HOSTS``). Raises ``DestinationRefused`` (422).
    """
    if "notification_preferences" in values:
        values = {
            **values,
            "notification_preferences": destinations.prepare(
                values["notification_preferences"], None, allow_private=allow_private
            ),
        }
    check_tradable(values)
    values = checked_windows(values)
    token = new_token()
    with db.transaction(caller.claims) as conn:
        repo.ensure_user(conn, caller.user_id, caller.email)
        row = repo.insert(
            conn,
            user_id=caller.user_id,
            token_hash=token.digest,
            token_hint=token.hint,
            values=values,
        )
    return row, token.token


def get(db: Database, caller: Caller, config_id: uuid.UUID) -> dict[str, Any]:
    """Return the caller's config. Raises NotFound (also for another user's config)."""
    with db.transaction(caller.claims) as conn:
        row = repo.get(conn, config_id)
    if row is None:
        raise NotFound("No webhook config with this id.")
    return row


def list_page(
    db: Database, caller: Caller, *, filters: dict[str, Any], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Return ``(rows, total)`` of the caller's configs matching ``filters``, newest first."""
    with db.transaction(caller.claims) as conn:
        return repo.list_page(
            conn,
            is_active=filters.get("is_active"),
            broker=filters.get("broker"),
            name_contains=filters.get("q"),
            limit=limit,
            offset=offset,
        )


def update(
    db: Database,
    caller: Caller,
    config_id: uuid.UUID,
    values: dict[str, Any],
    *,
    allow_private: Collection[str] = (),
) -> dict[str, Any]:
    """Apply a partial update. Raises NotFound, DestinationRefused (422).

    New ``notification_preferences`` replace the old; a destination given by ``id`` without
    ``url`` keeps its stored URL (see ``destinations.prepare``).
    """
    with db.transaction(caller.claims) as conn:
        if "notification_preferences" in values:
            current = repo.get(conn, config_id)
            if current is None:
                raise NotFound("No webhook config with this id.")
            values = {
                **values,
                "notification_preferences": destinations.prepare(
                    values["notification_preferences"],
                    current["notification_preferences"],
                    allow_private=allow_private,
                ),
            }
        if _TRADABLE_FIELDS & values.keys():
            current = repo.get(conn, config_id)
            if current is None:
                raise NotFound("No webhook config with this id.")
            check_tradable({**current, **values})
        row = repo.update(conn, config_id, checked_windows(values))
    if row is None:
        raise NotFound("No webhook config with this id.")
    return row


_TRADABLE_FIELDS = {"starting_cash", "quantity_type", "quantity", "margin_multiplier"}


def check_tradable(settings: dict[str, Any]) -> None:
    """Refuse settings the paper account cannot trade with; raise ``Invalid`` (422) per field.

    Starting cash must be above 0; a ``percent_of_equity`` quantity may not exceed the margin
    multiplier × 100 (buying power = equity × multiplier: more could never be bought).
    """
    errors: dict[str, list[str]] = {}
    cash = settings.get("starting_cash")
    if cash is not None and Decimal(cash) <= 0:
        errors["starting_cash"] = [f"starting cash {cash} cannot buy anything: use an amount above 0"]
    multiplier = Decimal(settings.get("margin_multiplier") or 1)
    if settings.get("quantity_type") == "percent_of_equity" and settings.get("quantity") is not None:
        if Decimal(settings["quantity"]) > multiplier * 100:
            errors["quantity"] = [
                f"{settings['quantity']} % of equity is more than buying power allows "
                f"(margin multiplier {multiplier} × 100 = {multiplier * 100} %)"
            ]
    if errors:
        # The same shape as a schema's field errors (flask-smorest: by location, then field).
        raise Invalid("These settings cannot trade; see errors for each field.", errors={"json": errors})


def delete(db: Database, caller: Caller, config_id: uuid.UUID) -> None:
    """Delete the config with its signals, orders, positions and paper account. Raises NotFound."""
    with db.transaction(caller.claims) as conn:
        if not repo.delete(conn, config_id):
            raise NotFound("No webhook config with this id.")


def send_test_notification(
    db: Database, caller: Caller, config_id: uuid.UUID, *, allow_private: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Send a test message to each destination of the caller's config, now; return what happened.

    One ``{destination_id, service, outcome, error, duration_ms}`` per destination (outcome
    sent, failed or refused), each also recorded as a delivery (event ``test``). The network
    calls run outside any transaction. Raises NotFound.
    """
    with db.transaction(caller.claims) as conn:
        row = repo.get(conn, config_id)
    if row is None:
        raise NotFound("No webhook config with this id.")
    with db.detached():
        results = sending.send_test(
            db, config_id, row["notification_preferences"], allow_private=allow_private
        )
    return [r.as_dict() for r in results]


def rotate_token(db: Database, caller: Caller, config_id: uuid.UUID) -> tuple[dict[str, Any], str]:
    """Replace the URL token; the old URL stops working at once. Returns ``(row, new_token)``."""
    token = new_token()
    with db.transaction(caller.claims) as conn:
        row = repo.set_token(conn, config_id, token.digest, token.hint)
    if row is None:
        raise NotFound("No webhook config with this id.")
    return row, token.token
