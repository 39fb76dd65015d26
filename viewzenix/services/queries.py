"""Read-side services for the dashboard: signals, orders, positions, account, equity, trades.

Each call is one transaction as the caller (RLS: only their rows are visible).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
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
    """Return the caller's positions with ``side`` derived from the signed qty.

    ``working_orders``: the position's open orders (stop loss and take profit legs, resting
    limit/stop orders) with their levels, oldest first.
    """
    with db.transaction(caller.claims) as conn:
        rows = positions.list_for(conn, config_id=config_id, include_flat=include_flat)
        working = orders.open_visible(conn, config_id)
    by_position: dict[tuple[uuid.UUID, str], list[dict[str, Any]]] = {}
    for order in working:
        by_position.setdefault((order["config_id"], order["symbol"]), []).append(order)
    return [
        {**r, "side": _side(r["qty"]), "working_orders": by_position.get((r["config_id"], r["symbol"]), [])}
        for r in rows
    ]


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


def account_overview(db: Database, caller: Caller, config_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Return one of the caller's accounts, or (``config_id`` None) all of them summed.

    Keys: the ``get_account`` money keys (summed for all; account currency), ``configs`` (one
    summary per config shown, each with its ``name``), ``config_count``. Raises NotFound for
    an unknown ``config_id``.
    """
    with db.transaction(caller.claims) as conn:
        rows = conn.execute(
            "select id, name from public.webhook_configs"
            " where %(id)s::uuid is null or id = %(id)s::uuid order by created_at",
            {"id": config_id},
        ).fetchall()
        if config_id is not None and not rows:
            raise NotFound("No webhook config with this id.")
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

# The curve and the figures replay every fill (10,000 fills: hundreds of ms). The dashboard asks
# for them on every refresh tick, so answers are kept per (user, config, what) while the
# inputs' fingerprint (repositories/performance.fingerprint) is unchanged. Per process, bounded,
# a cache only: a second instance computes its own.
_CACHE_SIZE = 256
_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_cache_lock = threading.Lock()


def _cached(
    conn: Any, caller: Caller, config_id: uuid.UUID | None, what: str, compute: Callable[[], Any]
) -> Any:
    key = (caller.user_id, config_id, what, performance_repo.fingerprint(conn, config_id))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = compute()
    with _cache_lock:
        _cache[key] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def equity_history(db: Database, caller: Caller, config_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Return the equity curve of one config (or all the caller's, summed) and its equity now.

    Shape: ``{"starting_cash", "equity", "points": [{"at", "equity", "capital", "kind"}]}``.
    Each config's curve starts at its own start with its initial capital (kind "start"); a
    change of its starting cash is a step of kind "capital" at its time (never a rewrite of
    the past); then the equity after each fill (kind "fill", marked at fill prices); the last
    point (kind "now") is the current equity from our books. More than MAX_EQUITY_POINTS
    events: every capital event, evenly spaced fills, the last kept. Computed in SQL
    (``repositories/performance.py``) as ``domain/performance.equity_curve`` specifies.
    Raises NotFound for an unknown ``config_id``.
    """
    with db.transaction(caller.claims) as conn:
        cash = performance_repo.starting_cash(conn, config_id)
        if config_id is not None and not cash:
            raise NotFound("No webhook config with this id.")
        points = list(
            _cached(
                conn,
                caller,
                config_id,
                "curve",
                lambda: performance_repo.equity_curve(conn, config_id, MAX_EQUITY_POINTS),
            )
        )
        current = sum((accounts.summary(conn, i)["equity"] for i in cash), Decimal(0))
    if points:
        points.append(
            {"at": datetime.now(UTC), "equity": current, "capital": points[-1]["capital"], "kind": "now"}
        )
    return {"starting_cash": sum(cash.values(), Decimal(0)), "equity": current, "points": points}


def performance(db: Database, caller: Caller, config_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Return the performance figures of one config, or of all the caller's (``None``), summed.

    Keys as ``domain/performance.Performance`` (computed in SQL, checked against it), plus
    ``capital_changes``: the recorded changes of starting cash, oldest first. Raises NotFound
    for an unknown ``config_id``.
    """
    with db.transaction(caller.claims) as conn:
        if config_id is not None and not performance_repo.starting_cash(conn, config_id):
            raise NotFound("No webhook config with this id.")
        figures = _cached(
            conn, caller, config_id, "figures", lambda: performance_repo.performance(conn, config_id)
        )
        changes = performance_repo.capital_changes(conn, config_id)
    return {**figures, "capital_changes": changes}


def list_trades(
    db: Database, caller: Caller, *, filters: dict[str, Any], limit: int | None, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Return ``(rows, matching)``: a page of the caller's closed trades, newest close first.

    ``filters``: config_id, symbol, side (long/short), outcome (win/loss/flat by net P&L),
    since/until (close time, until excluded). ``limit`` None: all.
    """
    symbol = filters.get("symbol")
    config_id = filters.get("config_id")
    args = {
        "symbol": symbol.upper() if symbol else None,
        "side": filters.get("side"),
        "outcome": filters.get("outcome"),
        "since": filters.get("since"),
        "until": filters.get("until"),
        "page_size": limit,
        "offset": offset,
    }
    with db.transaction(caller.claims) as conn:
        return _cached(
            conn,
            caller,
            config_id,
            ("trades", *args.values()),
            lambda: performance_repo.trades_page(conn, config_id, **args),
        )


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
