"""Read-side services for the dashboard: signals, orders, positions, account.

Each call is one transaction as the caller (RLS: only their rows are visible).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from viewzenix.db import Database
from viewzenix.exceptions import NotFound
from viewzenix.repositories import accounts, orders, positions
from viewzenix.repositories import signals as signals_repo
from viewzenix.services.common import Caller


def list_signals(
    db: Database, caller: Caller, *, filters: dict[str, Any], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Return ``(rows, total)`` of the caller's signals matching ``filters``."""
    with db.transaction(caller.claims) as conn:
        return signals_repo.list_page(
            conn,
            config_id=filters.get("config_id"),
            status=filters.get("status"),
            ticker=(filters.get("ticker") or "").upper() or None,
            since=filters.get("since"),
            until=filters.get("until"),
            limit=limit,
            offset=offset,
        )


def get_signal(db: Database, caller: Caller, signal_id: uuid.UUID) -> dict[str, Any]:
    """Return one signal with its orders and how many duplicates of it were stored. Raises NotFound."""
    with db.transaction(caller.claims) as conn:
        row = signals_repo.get(conn, signal_id)
        if row is None:
            raise NotFound("No signal with this id.")
        return {
            **row,
            "duplicates": signals_repo.count_duplicates(conn, signal_id),
            "orders": orders.for_signal(conn, signal_id),
        }


def list_orders(
    db: Database, caller: Caller, *, filters: dict[str, Any], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Return ``(rows, total)`` of the caller's orders matching ``filters``."""
    with db.transaction(caller.claims) as conn:
        return orders.list_page(
            conn,
            config_id=filters.get("config_id"),
            status=filters.get("status"),
            symbol=(filters.get("symbol") or "").upper() or None,
            signal_id=filters.get("signal_id"),
            limit=limit,
            offset=offset,
        )


def get_order(db: Database, caller: Caller, order_id: uuid.UUID) -> dict[str, Any]:
    """Return one order with its events and fills. Raises NotFound."""
    with db.transaction(caller.claims) as conn:
        row = orders.get(conn, order_id)
        if row is None:
            raise NotFound("No order with this id.")
        return {
            **row,
            "events": orders.events_for(conn, order_id),
            "fills": orders.fills_for(conn, order_id),
        }


def list_positions(
    db: Database, caller: Caller, *, config_id: uuid.UUID | None = None, include_flat: bool = False
) -> list[dict[str, Any]]:
    """Return the caller's positions with ``side`` derived from the signed qty."""
    with db.transaction(caller.claims) as conn:
        rows = positions.list_for(conn, config_id=config_id, include_flat=include_flat)
    return [{**r, "side": _side(r["qty"])} for r in rows]


def _side(qty: Decimal) -> str:
    return "long" if qty > 0 else "short" if qty < 0 else "flat"


def get_account(db: Database, caller: Caller, config_id: uuid.UUID) -> dict[str, Any]:
    """Return the paper account summary of one of the caller's configs. Raises NotFound.

    A config whose account was never used yet shows its starting cash (``accounts.summary``).
    """
    with db.transaction(caller.claims) as conn:
        summary = accounts.summary(conn, config_id)
    if summary is None:
        raise NotFound("No webhook config with this id.")
    return summary
