"""The reads of the signal job's first and third transactions (``services.execution``).

First a signal and its config, keyed by the signal id alone so the two need no answer from each
other (run in autocommit: no BEGIN, no COMMIT), and the config's open orders only when the
signal's row says it has some; then, locked, the signal, the position (marked by the lock when
the signal has a fresh price) and the open orders again. Each group is sent as one psycopg
pipeline block and its answers are read after it: one round trip per group (docs/scaling.md).
Postgres still runs the statements one after the other, each with its own snapshot.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from viewzenix.db import Connection, ending_transaction
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import positions as positions_repo
from viewzenix.repositories import signals as signals_repo
from viewzenix.repositories.positions import PositionRecord

CONFIG_OF_SIGNAL = """
select c.* from public.webhook_configs c
where c.id = (select s.config_id from public.signals s where s.id = %(signal_id)s)
"""

OPEN_ORDERS_OF_SIGNAL_CONFIG = f"""
select * from public.orders
where config_id = (select s.config_id from public.signals s where s.id = %(signal_id)s)
  and status in {orders_repo.OPEN_STATUS_LIST}
order by created_at, id
"""  # noqa: S608 (a literal list of our own constants; values are bound)


# ``signals.FOR_EXECUTION`` and whether the signal's config has any open order (through the
# partial index): when it has none, the open orders are not read at all.
SIGNAL_FOR_EXECUTION = f"""
select {signals_repo.FOR_EXECUTION_COLUMNS},
    exists (
        select 1 from public.orders o
        where o.config_id = s.config_id and o.status in {orders_repo.OPEN_STATUS_LIST}
    ) as has_open_orders
from public.signals s where s.id = %(signal_id)s
"""  # noqa: S608 (a literal list of our own constants; values are bound)


def for_execution(
    conn: Connection, signal_id: uuid.UUID
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, Any]]]:
    """Return the signal (``signals.get_for_execution``'s row, plus ``has_open_orders``), its
    ``webhook_configs`` row and every open order of that config, oldest first
    (``orders.open_orders`` without a symbol).

    ``(None, None, [])`` when the signal is gone. Two statements when the config has no open
    order (the open orders are then not read), else three.
    """
    params = {"signal_id": signal_id}
    with conn.pipeline():  # both sent, then both answers read: one round trip
        signal = conn.execute(SIGNAL_FOR_EXECUTION, params)
        config = conn.execute(CONFIG_OF_SIGNAL, params)
    signal_row, config_row = signal.fetchone(), config.fetchone()
    if signal_row is None or not signal_row["has_open_orders"]:
        return signal_row, config_row, []
    return signal_row, config_row, conn.execute(OPEN_ORDERS_OF_SIGNAL_CONFIG, params).fetchall()


def lock_for_planning(
    conn: Connection,
    signal_id: uuid.UUID,
    *,
    config_id: uuid.UUID,
    user_id: uuid.UUID,
    symbol: str,
    mark: Decimal | None = None,
) -> tuple[dict[str, Any] | None, PositionRecord, list[dict[str, Any]]]:
    """Lock the signal row, then the (config, symbol) position (created at zero when missing);
    return them with the config's open orders, oldest first.

    The same statements, in the same lock order, as ``signals.get_for_execution(lock=True)``,
    ``positions.lock`` and ``orders.open_orders(conn, config_id)``, sent together. ``mark``: a
    price (quote currency) that also becomes the position's ``last_price`` (``positions.mark``,
    at ``now()``): the position's lock is then that update, one statement for the two (the
    caller rolls back when the signal turns out not to be runnable, so the mark goes too).
    """
    position_params = {"config_id": config_id, "symbol": symbol, "user_id": user_id}
    with conn.pipeline():  # the three sent, then their answers read: one round trip
        signal = conn.execute(signals_repo.FOR_EXECUTION + " for update of s", {"signal_id": signal_id})
        if mark is None:
            position = conn.execute(positions_repo.LOCK_POSITION, position_params)
        else:
            marking = {**position_params, "last_price": mark}
            position = conn.execute(positions_repo.MARK_AND_LOCK_POSITION, marking)
        open_rows = conn.execute(orders_repo.OPEN_ORDERS, {"config_id": config_id, "symbol": None})
    signal_row, position_row, rows = signal.fetchone(), position.fetchone(), open_rows.fetchall()
    if position_row is None:  # the symbol's first order: created at zero, once
        locked = positions_repo.lock(conn, **position_params)
        if mark is not None:
            positions_repo.mark(conn, config_id=config_id, symbol=symbol, last_price=mark)
        return signal_row, locked, rows
    return signal_row, PositionRecord.from_row(position_row), rows


SUBMITTING = """
with submitting as (
    update public.signals set status = 'submitting' where id = %(signal_id)s
)
select o.*, p.client_order_id as parent_client_order_id
from public.orders o left join public.orders p on p.id = o.parent_order_id
where o.signal_id = %(signal_id)s
order by o.created_at, o.id
"""


def set_submitting(
    conn: Connection, signal_id: uuid.UUID, *, cancels: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Set the signal ``submitting``; return its orders as ``orders.for_signal`` does (its query;
    the update and the read in one statement: the read sees the orders, not the status change)
    and, with ``cancels``, the orders it asked to cancel (``orders.cancels_by``; else ``[]``).

    The last statements of the plan's transaction, sent as one ``db.ending_transaction`` block:
    in an unflushed transaction its COMMIT goes with them (one round trip), and nothing may be
    sent after them.
    """
    params = {"signal_id": signal_id}
    with ending_transaction(conn):
        orders = conn.execute(SUBMITTING, params)
        canceled = conn.execute(orders_repo.CANCELS_BY, params) if cancels else None
    return orders.fetchall(), ([] if canceled is None else canceled.fetchall())
