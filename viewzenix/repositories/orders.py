"""SQL for our books' orders, their status events and fills.

Writes come only from the ledger (``viewzenix.services.ledger``) and run as the backend role;
the read functions for the REST API (``list_page``, ``get``, ``events_for``, ``fills_for``,
``for_signal``) run on the caller's connection, where Row-Level Security restricts the rows.
``created_at`` is set with ``clock_timestamp()`` so orders placed in one transaction keep their
submission order.
"""

from __future__ import annotations

import functools
import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from viewzenix.db import Connection
from viewzenix.domain.engine import OrderPurpose, OrderRequest
from viewzenix.domain.model import OrderSide, OrderStatus, OrderType, TimeInForce
from viewzenix.repositories.paging import select_page

# The one definition of "open" for our books: not terminal (OrderStatus.is_open).
OPEN_STATUSES = tuple(status.value for status in OrderStatus if status.is_open)


def status_list(statuses: tuple[str, ...] | list[str]) -> str:
    """Return ``statuses`` as an SQL list literal, e.g. ``('held', 'accepted')``, for a statement.

    Open orders are found through the partial index ``orders_open_idx`` (``where status in
    (<the open statuses>)``). Postgres uses a partial index only when it can prove the query's
    condition implies the index's, and it cannot for a parameter: ``status = any(%s)`` in a
    prepared statement (psycopg prepares from the fifth use) is planned generically, which walks
    every order the config ever had. A literal list of our own constants keeps the index.
    """
    for status in statuses:  # our own OrderStatus values: lower-case words, nothing to quote
        if not re.fullmatch(r"[a-z_]+", status):
            raise ValueError(f"not a status: {status!r}")
    return "(" + ", ".join(f"'{s}'" for s in statuses) + ")"


OPEN_STATUS_LIST = status_list(OPEN_STATUSES)
UNIQUE_CLIENT_ORDER_ID = "orders_config_client_order_id_key"

INSERT_ORDER = """
insert into public.orders (
    user_id, config_id, signal_id, parent_order_id, client_order_id, broker_order_id, broker,
    symbol, side, order_type, time_in_force, intent, purpose, qty, limit_price, stop_price,
    trail_price, trail_percent, extended_hours, reference_price, status, status_code,
    status_message, submitted_at, created_at
) values (
    %(user_id)s, %(config_id)s, %(signal_id)s, %(parent_order_id)s, %(client_order_id)s,
    %(broker_order_id)s, %(broker)s, %(symbol)s, %(side)s, %(order_type)s, %(time_in_force)s,
    %(intent)s, %(purpose)s, %(qty)s, %(limit_price)s, %(stop_price)s, %(trail_price)s,
    %(trail_percent)s, %(extended_hours)s, %(reference_price)s, %(status)s, %(status_code)s,
    %(status_message)s, %(submitted_at)s, clock_timestamp()
)
on conflict on constraint orders_config_client_order_id_key do nothing
returning *
"""

GET_BY_CLIENT_ORDER_ID = """
select * from public.orders
where config_id = %(config_id)s and client_order_id = %(client_order_id)s
"""

LOCK_BY_CLIENT_ORDER_ID = GET_BY_CLIENT_ORDER_ID + " for update"


OPEN_ORDERS = f"""
select * from public.orders
where config_id = %(config_id)s
  and status in {OPEN_STATUS_LIST}
  and (%(symbol)s::text is null or symbol = %(symbol)s)
order by created_at, id
"""  # noqa: S608 (a literal list of our own constants; values are bound)

APPLY_REPORT = """
update public.orders set
    status = %(status)s,
    broker_order_id = %(broker_order_id)s,
    status_code = %(status_code)s,
    status_message = %(status_message)s,
    filled_qty = %(filled_qty)s,
    filled_avg_price = %(filled_avg_price)s,
    submitted_at = %(submitted_at)s,
    filled_at = %(filled_at)s,
    canceled_at = %(canceled_at)s,
    stop_price = %(stop_price)s
where id = %(order_id)s
returning *
"""

REQUEST_CANCEL = """
update public.orders set
    cancel_requested_at = coalesce(cancel_requested_at, %(at)s),
    cancel_requested_by = coalesce(cancel_requested_by, %(signal_id)s)
where id = %(order_id)s
returning *
"""

CANCELS_BY = """
select * from public.orders where cancel_requested_by = %(signal_id)s order by created_at, id
"""

UPDATE_STATUS = """
update public.orders set
    status = %(status)s,
    status_code = coalesce(%(status_code)s, status_code),
    status_message = coalesce(%(status_message)s, status_message),
    canceled_at = coalesce(%(canceled_at)s, canceled_at)
where id = %(order_id)s
returning *
"""

INSERT_EVENT = """
insert into public.order_events (
    order_id, user_id, event_type, from_status, to_status, detail, created_at
) values (%(order_id)s, %(user_id)s, %(event_type)s, %(from_status)s, %(to_status)s, %(detail)s,
        coalesce(%(created_at)s, now()))
returning *
"""

FILLED_QTY_BY_CLIENT_ORDER_ID = """
select coalesce(sum(f.last_qty), 0) as qty from public.fills f
where f.order_id = (
    select o.id from public.orders o
    where o.config_id = %(config_id)s and o.client_order_id = %(client_order_id)s
)
"""

GET = "select * from public.orders where id = %(order_id)s"

EVENTS_FOR = "select * from public.order_events where order_id = %(order_id)s order by id"

FILLS_FOR = "select * from public.fills where order_id = %(order_id)s order by filled_at, trade_id"

FOR_SIGNAL = """
select o.*, p.client_order_id as parent_client_order_id
from public.orders o left join public.orders p on p.id = o.parent_order_id
where o.signal_id = %(signal_id)s
order by o.created_at, o.id
"""


# An order and its first event in one statement: the event only when the order was inserted.
INSERT_ORDER_WITH_EVENT = f"""
with inserted as ({INSERT_ORDER}), initial_event as (
    insert into public.order_events (
        order_id, user_id, event_type, from_status, to_status, detail, created_at
    )
    select i.id, i.user_id, %(event_type)s, %(from_status)s, %(to_status)s, %(detail)s,
        coalesce(%(created_at)s::timestamptz, now())
    from inserted i
)
select * from inserted
"""  # noqa: S608 (our own statement; values are bound)


def insert(conn: Connection, *, event: dict[str, Any] | None = None, **values: Any) -> dict[str, Any] | None:
    """Insert one order (keys of INSERT_ORDER; missing ones default to None); return the row.

    Returns None, inserting nothing, when the config already has this client_order_id
    (constraint ``UNIQUE_CLIENT_ORDER_ID``); broker adapters turn that into DuplicateOrder.
    The caller's transaction stays usable (no error, no savepoint needed). ``event``: the
    order's first event (keys of ``insert_event`` but ``order_id`` and ``user_id``, which are the
    order's), recorded in the same statement when the order is inserted.
    """
    params = dict.fromkeys(
        (
            "signal_id",
            "parent_order_id",
            "broker_order_id",
            "intent",
            "limit_price",
            "stop_price",
            "trail_price",
            "trail_percent",
            "reference_price",
            "status_code",
            "status_message",
            "submitted_at",
        )
    )
    params["extended_hours"] = False
    params.update(values)
    if event is None:
        return conn.execute(INSERT_ORDER, params).fetchone()
    params.update(
        event_type=event["event_type"],
        from_status=event["from_status"],
        to_status=event["to_status"],
        detail=Jsonb(event.get("detail") or {}),
        created_at=event.get("created_at"),
    )
    return conn.execute(INSERT_ORDER_WITH_EVENT, params).fetchone()


def request_columns(request: OrderRequest) -> dict[str, Any]:
    """Return the order columns taken from an engine ``OrderRequest`` (for ``insert``)."""
    return {
        "client_order_id": request.client_order_id,
        "symbol": request.symbol,
        "side": request.side.value,
        "order_type": request.order_type.value,
        "time_in_force": request.time_in_force.value,
        "purpose": str(request.purpose),
        "qty": request.qty,
        "limit_price": request.limit_price,
        "stop_price": request.stop_price,
        "trail_price": request.trail_price,
        "trail_percent": request.trail_percent,
        "extended_hours": request.extended_hours,
        "reference_price": request.reference_price,
    }


def request_from_row(row: dict[str, Any]) -> OrderRequest:
    """Rebuild the engine's ``OrderRequest`` from an order row (the inverse of ``request_columns``).

    ``parent_client_order_id`` comes from the row's key of that name (``for_signal`` adds it).
    """
    return OrderRequest(
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        qty=row["qty"],
        order_type=OrderType(row["order_type"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        purpose=OrderPurpose(row["purpose"]),
        limit_price=row["limit_price"],
        stop_price=row["stop_price"],
        trail_price=row["trail_price"],
        trail_percent=row["trail_percent"],
        extended_hours=row["extended_hours"],
        reference_price=row["reference_price"],
        parent_client_order_id=row.get("parent_client_order_id"),
    )


def get_by_client_order_id(
    conn: Connection, config_id: uuid.UUID, client_order_id: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    """Return (and optionally lock) the config's order with this client_order_id, or None."""
    query = LOCK_BY_CLIENT_ORDER_ID if for_update else GET_BY_CLIENT_ORDER_ID
    return conn.execute(query, {"config_id": config_id, "client_order_id": client_order_id}).fetchone()


def lock_for_report(conn: Connection, config_id: uuid.UUID, client_order_id: str) -> dict[str, Any] | None:
    """Lock and return the order with ``recorded_fill_qty`` (Σ last_qty of its fills), or None.

    Two statements on purpose: the sum is read after the lock is granted, so it sees the fills
    of a transaction that held the lock meanwhile (one statement would sum its old snapshot).
    They are sent together (a pipeline: one round trip); Postgres still runs the second, with
    its own snapshot, only once the first has its lock.
    """
    return lock_for_fills(conn, config_id, client_order_id, Decimal(0))[0]


# The position of the order's symbol, locked after the order (``positions.LOCK_POSITION``), when
# the report's quantity exceeds what the order's fills hold (read once the order's lock is held).
LOCK_POSITION_OF_ORDER = f"""
select p.* from public.positions p
where p.config_id = %(config_id)s
  and p.symbol = (
      select o.symbol from public.orders o
      where o.config_id = %(config_id)s and o.client_order_id = %(client_order_id)s
  )
  and %(reported_qty)s > ({FILLED_QTY_BY_CLIENT_ORDER_ID.strip()})
for update of p
"""  # noqa: S608 (our own statement; values are bound)


def lock_for_fills(
    conn: Connection, config_id: uuid.UUID, client_order_id: str, reported_qty: Decimal
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``lock_for_report``, then, when ``reported_qty`` (a report's filled quantity) is positive,
    the lock of the order's position if that quantity exceeds what the order's fills hold: its
    ``positions`` row, else None (nothing new to fill, or no row yet). Sent together (one round
    trip) and run in that order, so the locks are taken as a fill takes them (the order, then the
    position) and the position is read once its lock is granted. A report with no new quantity
    takes no position lock."""
    params = {"config_id": config_id, "client_order_id": client_order_id, "reported_qty": reported_qty}
    position = None
    with conn.pipeline():
        locked = conn.execute(LOCK_BY_CLIENT_ORDER_ID, params)
        filled = conn.execute(FILLED_QTY_BY_CLIENT_ORDER_ID, params)
        if reported_qty > 0:
            position = conn.execute(LOCK_POSITION_OF_ORDER, params)
    row, total = locked.fetchone(), filled.fetchone()
    if row is None:
        return None, None
    position_row = None if position is None else position.fetchone()
    return {**row, "recorded_fill_qty": Decimal(total["qty"])}, position_row


OPEN_VISIBLE = f"""
select id, config_id, symbol, side, purpose, order_type, qty, limit_price, stop_price, status
from public.orders
where status in {OPEN_STATUS_LIST}
  and (%(config_id)s::uuid is null or config_id = %(config_id)s::uuid)
order by created_at, id
"""  # noqa: S608 (a literal list of our own constants; values are bound)


def open_visible(conn: Connection, config_id: uuid.UUID | None) -> list[dict[str, Any]]:
    """Return the visible open orders (of one config, or all), oldest first: levels, purpose, status."""
    return conn.execute(OPEN_VISIBLE, {"config_id": config_id}).fetchall()


def open_orders(conn: Connection, config_id: uuid.UUID, symbol: str | None = None) -> list[dict[str, Any]]:
    """Return the config's open orders (pending_new to partially_filled), oldest first."""
    return conn.execute(OPEN_ORDERS, {"config_id": config_id, "symbol": symbol}).fetchall()


def update_status(
    conn: Connection,
    order_id: uuid.UUID,
    status: str,
    *,
    status_code: str | None = None,
    status_message: str | None = None,
    canceled_at: datetime | None = None,
) -> dict[str, Any]:
    """Set an order's status (and reason, canceled_at when given); return the row."""
    return conn.execute(
        UPDATE_STATUS,
        {
            "order_id": order_id,
            "status": status,
            "status_code": status_code,
            "status_message": status_message,
            "canceled_at": canceled_at,
        },
    ).fetchone()


_EVENT_COLUMNS = ("order_id", "user_id", "event_type", "from_status", "to_status", "detail", "created_at")


@functools.cache
def _insert_events_sql(count: int) -> str:
    """``insert into public.order_events ... values (...), (...)`` for ``count`` events.

    One statement (its text per count, so psycopg prepares each once) rather than executemany,
    which runs in pipeline mode, whose wait loop spins on a writable socket: a measurable share
    of the worker's CPU for the one or two events of a report. Rows are inserted in list order
    (the identity ``id`` follows it).
    """
    rows = ", ".join(
        "(" + ", ".join(f"%({c}{i})s" for c in _EVENT_COLUMNS[:-1]) + f", coalesce(%(created_at{i})s, now()))"
        for i in range(count)
    )
    return f"insert into public.order_events ({', '.join(_EVENT_COLUMNS)}) values {rows}"  # noqa: S608


def insert_events(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Record several order events in one statement (keys of ``insert_event``), in list order."""
    if not events:
        return
    conn.execute(_insert_events_sql(len(events)), _event_params(events))


def _event_params(events: list[dict[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for i, event in enumerate(events):
        for column in _EVENT_COLUMNS:
            params[f"{column}{i}"] = event.get(column)
        params[f"detail{i}"] = Jsonb(event.get("detail") or {})
    return params


def insert_event(
    conn: Connection,
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    event_type: str,
    from_status: str | None,
    to_status: str,
    detail: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """Record one order event (past tense: OrderSubmitted, OrderFilled, ...); return the row."""
    return conn.execute(
        INSERT_EVENT,
        {
            "order_id": order_id,
            "user_id": user_id,
            "event_type": event_type,
            "from_status": from_status,
            "to_status": to_status,
            "detail": Jsonb(detail or {}),
            "created_at": created_at,
        },
    ).fetchone()


def apply_report(
    conn: Connection, order_id: uuid.UUID, *, events: list[dict[str, Any]] | None = None, **values: Any
) -> dict[str, Any]:
    """Write an order's broker-reported columns (every key of APPLY_REPORT); return the row.

    ``events``: order events to record in the same statement (``insert_events``), in list order.
    """
    if not events:
        return conn.execute(APPLY_REPORT, {**values, "order_id": order_id}).fetchone()
    sql = f"with recorded_events as ({_insert_events_sql(len(events))}) {APPLY_REPORT}"
    return conn.execute(sql, {**_event_params(events), **values, "order_id": order_id}).fetchone()


def request_cancel(
    conn: Connection, order_id: uuid.UUID, at: datetime, signal_id: uuid.UUID | None
) -> dict[str, Any]:
    """Mark an order's cancel as decided by ``signal_id`` (before the broker is asked); return it."""
    return conn.execute(REQUEST_CANCEL, {"order_id": order_id, "at": at, "signal_id": signal_id}).fetchone()


def cancels_by(conn: Connection, signal_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return the orders ``signal_id`` decided to cancel (any status now), oldest first."""
    return conn.execute(CANCELS_BY, {"signal_id": signal_id}).fetchall()


# --- reads for the REST API (caller's connection; RLS restricts rows) ---------------------


# A bracket leg's parent (the entry it protects): its side and average fill price, so a stop loss
# or take profit that filled can be shown with its P&L.
LIST_COLUMNS = (
    "*, (select p.side from public.orders p where p.id = orders.parent_order_id) as parent_side, "
    "(select p.filled_avg_price from public.orders p where p.id = orders.parent_order_id) as parent_avg_price"
)


def list_page(
    conn: Connection,
    *,
    config_id: uuid.UUID | None,
    status: str | None,
    symbol: str | None,
    signal_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Return (rows, total) of visible orders matching the filters, newest first.

    None filters are ignored; ``total`` counts all matching rows, not only this page.
    """
    return select_page(
        conn,
        table="orders",
        columns=LIST_COLUMNS,
        equals={"config_id": config_id, "status": status, "symbol": symbol, "signal_id": signal_id},
        limit=limit,
        offset=offset,
    )


def get(conn: Connection, order_id: uuid.UUID) -> dict[str, Any] | None:
    """Return one visible order by its id, or None."""
    return conn.execute(GET, {"order_id": order_id}).fetchone()


def events_for(conn: Connection, order_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return an order's status events, oldest first."""
    return conn.execute(EVENTS_FOR, {"order_id": order_id}).fetchall()


def fills_for(conn: Connection, order_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return an order's fills, oldest first."""
    return conn.execute(FILLS_FOR, {"order_id": order_id}).fetchall()


def for_signal(conn: Connection, signal_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return the orders placed or denied for one signal, in submission order."""
    return conn.execute(FOR_SIGNAL, {"signal_id": signal_id}).fetchall()


NOTE_NOT_FOUND = """
update public.orders set
    not_found_count = not_found_count + 1,
    first_not_found_at = coalesce(first_not_found_at, %(at)s)
where id = %(order_id)s
returning *
"""

SIBLING_FILLED = """
select coalesce(sum(f.last_qty), 0) as qty from public.orders o
join public.fills f on f.order_id = o.id
where o.parent_order_id = %(parent_order_id)s and o.id <> %(order_id)s
  and o.purpose in ('take_profit', 'stop_loss')
"""


def note_not_found(conn: Connection, order_id: uuid.UUID, at: datetime) -> dict[str, Any]:
    """Count one "not found" answer of the broker for the order (the first one's time kept)."""
    return conn.execute(NOTE_NOT_FOUND, {"order_id": order_id, "at": at}).fetchone()


def sibling_leg_filled(conn: Connection, order_id: uuid.UUID, parent_order_id: uuid.UUID) -> Decimal:
    """Return the quantity filled on the other take-profit/stop-loss legs of the same parent."""
    row = conn.execute(SIBLING_FILLED, {"order_id": order_id, "parent_order_id": parent_order_id})
    return row.fetchone()["qty"]
