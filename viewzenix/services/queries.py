"""Read-side services for the dashboard: signals, orders, positions, account, equity, trades.

Each call is one transaction as the caller (RLS: only their rows are visible).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from viewzenix.db import Database
from viewzenix.exceptions import NotFound
from viewzenix.repositories import accounts, orders, positions
from viewzenix.repositories import performance as performance_repo
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
            is_test=filters.get("is_test"),
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


def account_overview(db: Database, caller: Caller) -> dict[str, Any]:
    """Return the caller's accounts summed over all their configs, with each config's summary.

    Keys: the ``get_account`` money keys summed (account currency), ``configs`` (one summary
    per config, each with its ``name``), ``config_count``.
    """
    with db.transaction(caller.claims) as conn:
        rows = conn.execute("select id, name from public.webhook_configs order by created_at").fetchall()
        summaries = [{**accounts.summary(conn, r["id"]), "name": r["name"]} for r in rows]
    totals = {key: sum((s[key] for s in summaries), Decimal(0)) for key in _MONEY_KEYS}
    return {**totals, "config_count": len(summaries), "configs": summaries}


_MONEY_KEYS = (
    "starting_cash",
    "cash",
    "positions_value",
    "equity",
    "commission_paid",
    "realized_pnl",
    "unrealized_pnl",
)


MAX_EQUITY_POINTS = 1000


def equity_history(db: Database, caller: Caller, config_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Return the equity after each fill of one config (or all the caller's) and now.

    Shape: ``{"starting_cash", "equity", "points": [{"at", "equity"}]}``; the first point is the
    starting cash at the first fill's time (none without fills), the last is the current equity
    from our books (marks from positions' last prices). More than MAX_EQUITY_POINTS fills:
    evenly spaced ones, the last always kept (a chart needs no more). Computed in SQL
    (``repositories/performance.py``) as ``domain/performance.equity_curve`` specifies.
    Raises NotFound for an unknown ``config_id``.
    """
    with db.transaction(caller.claims) as conn:
        cash = performance_repo.starting_cash(conn, config_id)
        if config_id is not None and not cash:
            raise NotFound("No webhook config with this id.")
        start = sum(cash.values(), Decimal(0))
        points = performance_repo.equity_curve(conn, config_id, start, MAX_EQUITY_POINTS)
        ids = [config_id] if config_id is not None else list(cash)
        current = sum((accounts.summary(conn, i)["equity"] for i in ids), Decimal(0))
    if points:
        points.insert(0, {"at": points[0]["at"], "equity": start})
        points.append({"at": datetime.now(UTC), "equity": current})
    return {"starting_cash": start, "equity": current, "points": points}


def list_closed_trades(
    db: Database,
    caller: Caller,
    config_id: uuid.UUID | None = None,
    symbol: str | None = None,
    limit: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Return ``(rows, total)`` of the caller's closed trades (flat → flat), newest close first.

    ``limit``: at most this many rows (default all). Computed in SQL as
    ``domain/performance.closed_trades`` specifies.
    """
    with db.transaction(caller.claims) as conn:
        return performance_repo.closed_trades(conn, config_id, symbol.upper() if symbol else None, limit)
