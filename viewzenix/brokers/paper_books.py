"""SQL for the paper broker's own books: schema ``paper`` (accounts, orders, fills, positions).

Only ``viewzenix.brokers.simulated`` reads or writes these tables, like an exchange's books: our
books (``public.orders``, ``fills``, ``positions``, ``accounts``) are the ledger's, and
reconciliation compares the two. Every function runs on the connection it is given, inside the
paper broker's own transaction. ``paper.orders.created_at`` is ``clock_timestamp()``, so orders
placed in one transaction keep their submission order ("oldest first" below).

Locks: ``lock_position`` is the (config, symbol) lock every writer takes first; order rows are
locked after it, the account row last (``account_state_and_exposure`` for a buying-power check,
a fill's cash, an atomic increment), so calls of one config in different symbols run in parallel
and only meet on the account row, from its lock until commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from viewzenix.db import Connection
from viewzenix.domain.engine import OrderRequest
from viewzenix.domain.model import AccountState, OrderSide, OrderStatus, OrderType, TimeInForce

OPEN_STATUSES = (OrderStatus.HELD, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
WORKING_STATUSES = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)

# --- accounts ------------------------------------------------------------------------------

ENSURE_ACCOUNT = """
insert into paper.accounts (config_id, starting_cash, cash)
values (%(config_id)s, %(starting_cash)s, %(starting_cash)s)
on conflict (config_id) do nothing
"""

# A separate statement, before the read: a read in the same statement would see the other
# rows (positions) as of before the wait for the lock.
LOCK_ACCOUNT = """
select 1 from paper.accounts where config_id = %(config_id)s for update
"""

# A fill's cash: added atomically, or the account opened with it (its first fill, as if
# ``ensure_account`` had run first): one statement either way, always a row.
OPEN_OR_ADD_CASH = """
insert into paper.accounts (config_id, starting_cash, cash)
values (%(config_id)s, %(starting_cash)s, %(starting_cash)s + %(delta)s)
on conflict (config_id) do update set cash = paper.accounts.cash + %(delta)s
returning *
"""

ACCOUNT_STATE = """
select
    a.cash,
    a.cash + coalesce((
        select sum(p.qty * coalesce(p.last_price, p.avg_entry_price))
        from paper.positions p where p.config_id = a.config_id
    ), 0) as equity
from paper.accounts a
where a.config_id = %(config_id)s
"""


def account_state_and_exposure(
    conn: Connection, config_id: uuid.UUID, starting_cash: Decimal
) -> tuple[AccountState, Decimal, Decimal]:
    """Open the account with ``starting_cash`` unless it exists (``ensure_account``), lock its row,
    then return its ``AccountState``, gross exposure (Σ |qty × mark| of its positions) and what
    its open orders hold (``ACCOUNT_STATE_AND_EXPOSURE``'s ``reserved``), in the account's currency.

    The read is one snapshot, taken once the lock is held; the statements go in one round trip.
    The lock is held until the caller's transaction ends, so two orders of one account are
    checked against its buying power one after the other, each seeing the fills of the one
    before (Alpaca checks one account's orders in turn).
    """
    params = {"config_id": config_id}
    with conn.pipeline():
        ensure_account(conn, config_id, starting_cash)
        conn.execute(LOCK_ACCOUNT, params)
        cursor = conn.execute(ACCOUNT_STATE_AND_EXPOSURE, params)
    row = cursor.fetchone()
    row = _found(row, f"paper account {config_id}")
    return AccountState(cash=row["cash"], equity=row["equity"]), row["exposure"], row["reserved"]


# --- positions -----------------------------------------------------------------------------

GET_POSITION = """
select * from paper.positions where config_id = %(config_id)s and symbol = %(symbol)s
"""

LOCK_POSITION = GET_POSITION + " for update"

ENSURE_POSITION = """
insert into paper.positions (config_id, symbol) values (%(config_id)s, %(symbol)s)
on conflict (config_id, symbol) do nothing
"""

MARK_POSITION = """
update paper.positions set last_price = %(last_price)s, last_price_at = %(at)s,
    last_bar_at = coalesce(%(bar_at)s, last_bar_at)
where config_id = %(config_id)s and symbol = %(symbol)s
returning *
"""

# Cash, equity, gross exposure and what open orders hold (``reserved``; Alpaca: "your available
# buying power is reduced by existing open buy long and sell short orders",
# docs.alpaca.markets/docs/orders-at-alpaca): the unfilled opening part of each open order (fills
# take its closing part first) at its limit, else stop, price; else (a trailing stop) the
# symbol's mark. Legs open nothing (opening_qty 0). The open statuses are paper_orders_open_idx's,
# so only the account's open orders are read.
ACCOUNT_STATE_AND_EXPOSURE = """
select
    a.cash,
    a.cash + coalesce(sum(p.qty * coalesce(p.last_price, p.avg_entry_price)), 0) as equity,
    coalesce(sum(abs(p.qty * coalesce(p.last_price, p.avg_entry_price))) filter (where p.qty <> 0), 0)
        as exposure,
    coalesce((
        select sum(
            least(o.opening_qty, o.qty - o.filled_qty)
            * coalesce(o.limit_price, o.stop_price, (
                select m.last_price from paper.positions m
                where m.config_id = o.config_id and m.symbol = o.symbol
            ), o.reference_price, 0)
        )
        from paper.orders o
        where o.config_id = a.config_id
            and o.status in ('held', 'accepted', 'partially_filled')
            and o.opening_qty > 0
    ), 0) as reserved
from paper.accounts a
left join paper.positions p on p.config_id = a.config_id
where a.config_id = %(config_id)s
group by a.config_id, a.cash
"""

OPEN_POSITIONS = """
select * from paper.positions where config_id = %(config_id)s and qty <> 0 order by symbol
"""

# --- orders --------------------------------------------------------------------------------

INSERT_ORDER = """
insert into paper.orders (
    config_id, client_order_id, broker_order_id, parent_order_id, symbol, side, order_type,
    time_in_force, qty, limit_price, stop_price, trail_price, trail_percent, extended_hours,
    reference_price, status, status_code, status_message, submitted_at, canceled_at, opening_qty
) values (
    %(config_id)s, %(client_order_id)s, %(broker_order_id)s, %(parent_order_id)s, %(symbol)s,
    %(side)s, %(order_type)s, %(time_in_force)s, %(qty)s, %(limit_price)s, %(stop_price)s,
    %(trail_price)s, %(trail_percent)s, %(extended_hours)s, %(reference_price)s, %(status)s,
    %(status_code)s, %(status_message)s, %(submitted_at)s, %(canceled_at)s, %(opening_qty)s
)
on conflict on constraint paper_orders_config_client_order_id_key do nothing
returning *
"""

GET_ORDER = "select * from paper.orders where id = %(order_id)s"

GET_BY_CLIENT_ORDER_ID = """
select * from paper.orders
where config_id = %(config_id)s and client_order_id = %(client_order_id)s
"""

LOCK_BY_CLIENT_ORDER_ID = GET_BY_CLIENT_ORDER_ID + " for update"

ORDERS_BY_ID = """
select * from paper.orders where id = any(%(order_ids)s::uuid[]) order by created_at, id
"""

OPEN_ORDERS = """
select * from paper.orders
where config_id = %(config_id)s
  and status in ('held', 'accepted', 'partially_filled')
  and (%(symbol)s::text is null or symbol = %(symbol)s)
order by created_at, id
"""

ALL_ORDERS = """
select * from paper.orders
where config_id = %(config_id)s and (%(after)s::timestamptz is null or submitted_at > %(after)s)
order by created_at, id
"""

LOCK_WORKING = """
select * from paper.orders
where config_id = %(config_id)s and symbol = %(symbol)s
  and status in ('accepted', 'partially_filled')
order by created_at, id
for update
"""

SYMBOLS_WITH_DAY_ORDERS_BEFORE = """
select distinct symbol from paper.orders
where config_id = %(config_id)s and status in ('accepted', 'partially_filled')
  and time_in_force = 'day' and submitted_at < %(before)s
order by symbol
"""

LOCK_CHILDREN = """
select * from paper.orders where parent_order_id = %(parent_order_id)s order by created_at, id
for update
"""

CLIENT_ORDER_IDS = """
select id, client_order_id from paper.orders where id = any(%(order_ids)s::uuid[])
"""

SET_STATUS = """
update paper.orders set
    status = %(status)s,
    status_code = coalesce(%(status_code)s, status_code),
    status_message = coalesce(%(status_message)s, status_message),
    canceled_at = coalesce(%(canceled_at)s, canceled_at)
where id = %(order_id)s
returning *
"""

SET_STOP_PRICE = """
update paper.orders set stop_price = %(stop_price)s where id = %(order_id)s returning *
"""

SET_TRIGGERED = """
update paper.orders set triggered_at = coalesce(triggered_at, %(triggered_at)s)
where id = %(order_id)s
returning *
"""

# --- fills ---------------------------------------------------------------------------------

COUNT_FILLS = "select count(*) as n from paper.fills where order_id = %(order_id)s"

FILLS_FOR = """
select * from paper.fills where order_id = any(%(order_ids)s::uuid[])
order by filled_at, char_length(trade_id), trade_id
"""


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperAccount:
    """One ``paper.accounts`` row: ``starting_cash`` and ``cash`` in account currency."""

    config_id: uuid.UUID
    starting_cash: Decimal
    cash: Decimal
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PaperAccount:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class PaperPosition:
    """One ``paper.positions`` row: signed ``qty`` (short < 0) in shares, prices in quote currency.

    Kept at qty 0 when flat, so ``realized_pnl`` and the mark ``last_price`` survive.
    """

    config_id: uuid.UUID
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    realized_pnl: Decimal
    last_price: Decimal | None
    opened_at: datetime | None
    last_price_at: datetime | None = None
    last_bar_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PaperPosition:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class PaperOrder:
    """One ``paper.orders`` row, enums decoded. Quantities in shares, prices in quote currency."""

    id: uuid.UUID
    config_id: uuid.UUID
    client_order_id: str
    broker_order_id: str
    parent_order_id: uuid.UUID | None
    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    qty: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    extended_hours: bool
    reference_price: Decimal | None
    status: OrderStatus
    status_code: str | None
    status_message: str | None
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    triggered_at: datetime | None
    submitted_at: datetime
    filled_at: datetime | None
    canceled_at: datetime | None
    created_at: datetime
    opening_qty: Decimal  # what opened or added to a position when accepted (holds buying power)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PaperOrder:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["side"] = OrderSide(values["side"])
        values["order_type"] = OrderType(values["order_type"])
        values["time_in_force"] = TimeInForce(values["time_in_force"])
        values["status"] = OrderStatus(values["status"])
        return cls(**values)


@dataclass(frozen=True)
class PaperFill:
    """One ``paper.fills`` row: ``qty`` shares at ``price``, ``commission`` in account currency.

    ``fee_qty``: the asset a crypto buy's fee took (the position grew by qty - fee_qty).
    """

    trade_id: str
    order_id: uuid.UUID
    config_id: uuid.UUID
    symbol: str
    side: OrderSide
    qty: Decimal
    price: Decimal
    commission: Decimal
    filled_at: datetime
    fee_qty: Decimal = Decimal(0)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PaperFill:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["side"] = OrderSide(values["side"])
        return cls(**values)


def _found(row: dict[str, Any] | None, what: str) -> dict[str, Any]:
    if row is None:
        raise LookupError(f"{what} does not exist")
    return row


# --- accounts ------------------------------------------------------------------------------


def ensure_account(conn: Connection, config_id: uuid.UUID, starting_cash: Decimal) -> None:
    """Open the config's paper account with ``starting_cash`` unless it exists; take no lock."""
    conn.execute(ENSURE_ACCOUNT, {"config_id": config_id, "starting_cash": starting_cash})


def account_state(conn: Connection, config_id: uuid.UUID) -> AccountState:
    """Return cash and equity = cash + Σ qty × mark (mark = last_price, else avg_entry_price).

    One statement, so cash and positions come from one snapshot. Raises LookupError when the
    account does not exist (``ensure_account``).
    """
    row = conn.execute(ACCOUNT_STATE, {"config_id": config_id}).fetchone()
    row = _found(row, f"paper account {config_id}")
    return AccountState(cash=row["cash"], equity=row["equity"])


# --- positions -----------------------------------------------------------------------------


def lock_position(conn: Connection, config_id: uuid.UUID, symbol: str) -> PaperPosition:
    """Lock and return the (config, symbol) position, creating it at zero when missing.

    The row lock serialises everything that changes the symbol's orders or position until the
    transaction ends.
    """
    params = {"config_id": config_id, "symbol": symbol}
    row = conn.execute(LOCK_POSITION, params).fetchone()
    if row is None:  # the symbol's first use: one extra statement, once
        conn.execute(ENSURE_POSITION, params)
        row = conn.execute(LOCK_POSITION, params).fetchone()
    return PaperPosition.from_row(row)


def get_position(conn: Connection, config_id: uuid.UUID, symbol: str) -> PaperPosition | None:
    """Return the (config, symbol) position, flat ones included, or None; take no lock."""
    row = conn.execute(GET_POSITION, {"config_id": config_id, "symbol": symbol}).fetchone()
    return None if row is None else PaperPosition.from_row(row)


def mark(
    conn: Connection,
    config_id: uuid.UUID,
    symbol: str,
    last_price: Decimal,
    at: datetime | None = None,
    *,
    bar_at: datetime | None = None,
) -> None:
    """Set the symbol's mark (``last_price``, quote currency, taken at ``at``) on its position row.

    ``bar_at``: the open time of the bar the mark comes from, kept as ``last_bar_at`` (the
    newest bar worked; an older or equal one is not worked again).
    """
    conn.execute(
        MARK_POSITION,
        {"config_id": config_id, "symbol": symbol, "last_price": last_price, "at": at, "bar_at": bar_at},
    )


def mark_existing(
    conn: Connection, config_id: uuid.UUID, symbol: str, last_price: Decimal, at: datetime | None = None
) -> PaperPosition | None:
    """``mark`` a position that exists, locking its row (the update does); return it, or None
    when the symbol has no position row yet (``lock_position`` creates it)."""
    row = conn.execute(
        MARK_POSITION,
        {"config_id": config_id, "symbol": symbol, "last_price": last_price, "at": at, "bar_at": None},
    ).fetchone()
    return None if row is None else PaperPosition.from_row(row)


def mark_existing_and_open_orders(
    conn: Connection, config_id: uuid.UUID, symbol: str, last_price: Decimal, at: datetime | None = None
) -> tuple[PaperPosition | None, list[PaperOrder]]:
    """``mark_existing``, then ``open_orders`` of the symbol, sent together (a pipeline: one
    round trip). Two statements still: the orders are read with a snapshot taken once the mark
    holds the position's lock, so they include what a transaction holding it meanwhile placed."""
    params = {"config_id": config_id, "symbol": symbol}
    with conn.pipeline():
        marked = conn.execute(MARK_POSITION, {**params, "last_price": last_price, "at": at, "bar_at": None})
        opened = conn.execute(OPEN_ORDERS, params)
    row, rows = marked.fetchone(), opened.fetchall()
    return (None if row is None else PaperPosition.from_row(row)), [PaperOrder.from_row(r) for r in rows]


# ``MARK_POSITION`` in autocommit (an implicit transaction) that commits without waiting for the
# WAL flush when ``unflushed`` (else with the server's setting): ``set_config(..., true)`` sets it
# for that transaction, in a materialized CTE joined in so that it runs once. ``commit_mode``: the
# setting the commit uses.
MARK_ALONE = """
with unflushed as materialized (
    select set_config(
        'synchronous_commit',
        case when %(unflushed)s then 'off' else current_setting('synchronous_commit') end,
        true
    )
        as commit_mode
)
update paper.positions set last_price = %(last_price)s, last_price_at = %(at)s
from unflushed
where config_id = %(config_id)s and symbol = %(symbol)s
returning paper.positions.*, unflushed.commit_mode
"""

HAS_OPEN_ORDERS = """
select exists (
    select 1 from paper.orders
    where config_id = %(config_id)s and symbol = %(symbol)s
      and status in ('held', 'accepted', 'partially_filled')
) as open
"""


def mark_alone(
    conn: Connection,
    config_id: uuid.UUID,
    symbol: str,
    last_price: Decimal,
    at: datetime | None,
    *,
    unflushed: bool,
) -> tuple[PaperPosition | None, bool]:
    """Mark a position that exists (``mark_existing``) on a connection in autocommit and say
    whether the symbol has open orders; return (the position or None, whether any rests).

    Two statements sent as one pipeline block: one round trip, and one implicit transaction that
    commits at the block's end (without waiting for the WAL flush when ``unflushed``). The orders
    are read with a snapshot taken once the mark holds the position's lock, so they include those
    a transaction holding it meanwhile placed; an order placed after the mark sees the mark, and
    its submission works it against this price. None when the symbol has no position row yet:
    the caller takes the full path (``lock_position`` creates it). With orders resting, the mark is
    committed before they are worked (by the caller, in a transaction of its own): should that
    fail, the mark stands and they are worked at the next price.
    """
    params = {"config_id": config_id, "symbol": symbol}
    with conn.pipeline():
        marked = conn.execute(
            MARK_ALONE, {**params, "last_price": last_price, "at": at, "unflushed": unflushed}
        )
        opened = conn.execute(HAS_OPEN_ORDERS, params)
    row, resting = marked.fetchone(), opened.fetchone()["open"]
    return (None if row is None else PaperPosition.from_row(row)), bool(resting)


def open_positions(conn: Connection, config_id: uuid.UUID) -> list[PaperPosition]:
    """Return the config's non-flat positions, by symbol."""
    rows = conn.execute(OPEN_POSITIONS, {"config_id": config_id}).fetchall()
    return [PaperPosition.from_row(row) for row in rows]


# --- orders --------------------------------------------------------------------------------


def insert_order(
    conn: Connection,
    request: OrderRequest,
    *,
    config_id: uuid.UUID,
    broker_order_id: str,
    parent_order_id: uuid.UUID | None,
    status: OrderStatus,
    submitted_at: datetime,
    status_code: str | None = None,
    status_message: str | None = None,
    canceled_at: datetime | None = None,
    opening_qty: Decimal = Decimal(0),
) -> PaperOrder | None:
    """Insert the order ``request`` describes; return it, or None when its client_order_id exists.

    Alpaca: a client_order_id is unique per account forever, even after cancel
    (constraint ``paper_orders_config_client_order_id_key``). ``opening_qty``: the part of
    ``qty`` that opens or adds to a position (0 ≤ it ≤ qty); while the order is open, its
    unfilled opening part holds buying power (``account_state_and_exposure``).
    """
    row = conn.execute(
        INSERT_ORDER,
        {
            "config_id": config_id,
            "client_order_id": request.client_order_id,
            "broker_order_id": broker_order_id,
            "parent_order_id": parent_order_id,
            "symbol": request.symbol,
            "side": request.side.value,
            "order_type": request.order_type.value,
            "time_in_force": request.time_in_force.value,
            "qty": request.qty,
            "limit_price": request.limit_price,
            "stop_price": request.stop_price,
            "trail_price": request.trail_price,
            "trail_percent": request.trail_percent,
            "extended_hours": request.extended_hours,
            "reference_price": request.reference_price,
            "status": status.value,
            "status_code": status_code,
            "status_message": status_message,
            "submitted_at": submitted_at,
            "canceled_at": canceled_at,
            "opening_qty": opening_qty,
        },
    ).fetchone()
    return None if row is None else PaperOrder.from_row(row)


def get_order(conn: Connection, order_id: uuid.UUID) -> PaperOrder:
    """Return the order with this id. Raises LookupError when there is none."""
    row = conn.execute(GET_ORDER, {"order_id": order_id}).fetchone()
    return PaperOrder.from_row(_found(row, f"paper order {order_id}"))


def get_by_client_order_id(
    conn: Connection, config_id: uuid.UUID, client_order_id: str, *, for_update: bool = False
) -> PaperOrder | None:
    """Return (and with ``for_update`` lock) the config's order with this client_order_id, or None."""
    query = LOCK_BY_CLIENT_ORDER_ID if for_update else GET_BY_CLIENT_ORDER_ID
    row = conn.execute(query, {"config_id": config_id, "client_order_id": client_order_id}).fetchone()
    return None if row is None else PaperOrder.from_row(row)


def orders_by_id(conn: Connection, order_ids: Iterable[uuid.UUID]) -> list[PaperOrder]:
    """Return the orders with these ids, oldest first."""
    ids = list(order_ids)
    if not ids:
        return []
    return [PaperOrder.from_row(row) for row in conn.execute(ORDERS_BY_ID, {"order_ids": ids}).fetchall()]


def open_orders(conn: Connection, config_id: uuid.UUID, symbol: str | None = None) -> list[PaperOrder]:
    """Return the config's open orders (held, accepted, partially_filled), oldest first."""
    rows = conn.execute(OPEN_ORDERS, {"config_id": config_id, "symbol": symbol}).fetchall()
    return [PaperOrder.from_row(row) for row in rows]


def all_orders(conn: Connection, config_id: uuid.UUID, after: datetime | None = None) -> list[PaperOrder]:
    """Return the config's orders, open and closed, submitted after ``after``, oldest first."""
    rows = conn.execute(ALL_ORDERS, {"config_id": config_id, "after": after}).fetchall()
    return [PaperOrder.from_row(row) for row in rows]


def lock_working(conn: Connection, config_id: uuid.UUID, symbol: str) -> list[PaperOrder]:
    """Lock and return the symbol's working orders (accepted, partially_filled), oldest first."""
    rows = conn.execute(LOCK_WORKING, {"config_id": config_id, "symbol": symbol}).fetchall()
    return [PaperOrder.from_row(row) for row in rows]


def symbols_with_day_orders_before(conn: Connection, config_id: uuid.UUID, before: datetime) -> list[str]:
    """Return the symbols with working DAY orders submitted before ``before`` (UTC), by name."""
    rows = conn.execute(SYMBOLS_WITH_DAY_ORDERS_BEFORE, {"config_id": config_id, "before": before})
    return [row["symbol"] for row in rows]


def lock_children(conn: Connection, parent_order_id: uuid.UUID) -> list[PaperOrder]:
    """Lock and return the legs (take-profit/stop-loss) of an order, oldest first."""
    rows = conn.execute(LOCK_CHILDREN, {"parent_order_id": parent_order_id}).fetchall()
    return [PaperOrder.from_row(row) for row in rows]


def client_order_ids(conn: Connection, order_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Return {order id: client_order_id} for these orders."""
    ids = list(order_ids)
    if not ids:
        return {}
    rows = conn.execute(CLIENT_ORDER_IDS, {"order_ids": ids}).fetchall()
    return {row["id"]: row["client_order_id"] for row in rows}


def set_status(
    conn: Connection,
    order_id: uuid.UUID,
    status: OrderStatus,
    *,
    status_code: str | None = None,
    status_message: str | None = None,
    canceled_at: datetime | None = None,
) -> PaperOrder:
    """Set an order's status; code, message and canceled_at only when given. Return the order."""
    row = conn.execute(
        SET_STATUS,
        {
            "order_id": order_id,
            "status": status.value,
            "status_code": status_code,
            "status_message": status_message,
            "canceled_at": canceled_at,
        },
    ).fetchone()
    return PaperOrder.from_row(row)


@dataclass(frozen=True)
class AppliedFill:
    """What ``send_fill``'s statement wrote: the position, the account (opened by the fill when it
    had no row), the fill and the order after it."""

    position: PaperPosition
    account: PaperAccount
    fill: PaperFill
    order: PaperOrder


def _prefixed(alias: str, cls: type) -> str:
    """``alias.field as alias_field`` for each field of the dataclass ``cls``."""
    return ", ".join(f"{alias}.{name} as {alias}_{name}" for name in cls.__dataclass_fields__)


def _unprefixed(row: dict[str, Any], alias: str) -> dict[str, Any]:
    """The columns ``_prefixed`` named, by field name."""
    start = len(alias) + 1
    return {key[start:]: value for key, value in row.items() if key.startswith(f"{alias}_")}


# A fill's four writes in one statement (writable CTEs: one snapshot, each a different row).
# An account without a row is opened by the fill (OPEN_OR_ADD_CASH): each CTE returns one row.
APPLY_FILL = f"""
with saved as (
    update paper.positions set
        qty = %(position_qty)s,
        avg_entry_price = %(avg_entry_price)s,
        realized_pnl = %(realized_pnl)s,
        last_price = %(last_price)s,
        opened_at = %(opened_at)s
    where config_id = %(config_id)s and symbol = %(symbol)s
    returning *
), paid as (
    {OPEN_OR_ADD_CASH.strip()}
), inserted as (
    insert into paper.fills (
        trade_id, order_id, config_id, symbol, side, qty, price, commission, filled_at, fee_qty
    ) values (
        %(trade_id)s, %(order_id)s, %(config_id)s, %(symbol)s, %(side)s, %(qty)s, %(price)s,
        %(commission)s, %(filled_at)s, %(fee_qty)s
    )
    returning *
), filled as (
    update paper.orders set
        status = %(status)s,
        filled_qty = %(filled_qty)s,
        filled_avg_price = %(filled_avg_price)s,
        filled_at = %(filled_at)s
    where id = %(order_id)s
    returning *
)
select {_prefixed("saved", PaperPosition)}, {_prefixed("paid", PaperAccount)},
    {_prefixed("inserted", PaperFill)}, {_prefixed("filled", PaperOrder)}
from saved cross join paid cross join inserted cross join filled
"""  # noqa: S608 (column names of our own dataclasses; values are bound)


def send_fill(
    conn: Connection,
    *,
    position: PaperPosition,
    cash_delta: Decimal,
    starting_cash: Decimal,
    order: PaperOrder,
    trade_id: str,
    qty: Decimal,
    price: Decimal,
    commission: Decimal,
    fee_qty: Decimal,
    filled_at: datetime,
    filled_qty: Decimal,
    filled_avg_price: Decimal,
) -> psycopg.Cursor[dict[str, Any]]:
    """Send one fill's four writes, one statement (``APPLY_FILL``), and return its cursor unread.

    The writes: the position (its qty, average entry, realised P&L, mark, opened_at), the cash
    (``cash_delta``, account currency, added atomically; an account without a row is opened
    with ``starting_cash`` + ``cash_delta``), the fill row (``qty`` at ``price``) and the order
    FILLED with ``filled_qty`` at ``filled_avg_price``; none needs another's answer.
    ``applied_fill`` reads them: inside a pipeline block (``db.ending_transaction``, which sends
    the COMMIT with it) only after the block. The position must exist: ``applied_fill`` raises
    LookupError otherwise, after the statement's other writes ran (data-modifying CTEs always
    do), so the caller's transaction must roll back. Every caller holds the position's lock
    (``lock_position``, taken first in the call), so the row exists, also on the path where the
    COMMIT has already gone out with the statement."""
    assert position.config_id == order.config_id and position.symbol == order.symbol
    return conn.execute(
        APPLY_FILL,
        {
            "config_id": order.config_id,
            "symbol": order.symbol,
            "position_qty": position.qty,
            "avg_entry_price": position.avg_entry_price,
            "realized_pnl": position.realized_pnl,
            "last_price": position.last_price,
            "opened_at": position.opened_at,
            "delta": cash_delta,
            "starting_cash": starting_cash,
            "trade_id": trade_id,
            "order_id": order.id,
            "side": order.side.value,
            "qty": qty,
            "price": price,
            "commission": commission,
            "filled_at": filled_at,
            "fee_qty": fee_qty,
            "status": OrderStatus.FILLED.value,
            "filled_qty": filled_qty,
            "filled_avg_price": filled_avg_price,
        },
    )


def applied_fill(cursor: psycopg.Cursor[dict[str, Any]], order: PaperOrder) -> AppliedFill:
    """Return what ``send_fill``'s statement wrote. Raises LookupError when the position does not
    exist (see ``send_fill``)."""
    row = _found(cursor.fetchone(), f"paper position {order.symbol} of config {order.config_id}")
    return AppliedFill(
        position=PaperPosition.from_row(_unprefixed(row, "saved")),
        account=PaperAccount.from_row(_unprefixed(row, "paid")),
        fill=PaperFill.from_row(_unprefixed(row, "inserted")),
        order=PaperOrder.from_row(_unprefixed(row, "filled")),
    )


def set_stop_price(conn: Connection, order_id: uuid.UUID, stop_price: Decimal) -> PaperOrder:
    """Move an order's trigger (a trailing stop's ``stop_price``); return the order."""
    row = conn.execute(SET_STOP_PRICE, {"order_id": order_id, "stop_price": stop_price}).fetchone()
    return PaperOrder.from_row(row)


def set_triggered(conn: Connection, order_id: uuid.UUID, triggered_at: datetime) -> PaperOrder:
    """Record a stop_limit's trigger time (the first one stays); return the order."""
    row = conn.execute(SET_TRIGGERED, {"order_id": order_id, "triggered_at": triggered_at}).fetchone()
    return PaperOrder.from_row(row)


# --- fills ---------------------------------------------------------------------------------


def count_fills(conn: Connection, order_id: uuid.UUID) -> int:
    """Return how many fills the order has."""
    return int(conn.execute(COUNT_FILLS, {"order_id": order_id}).fetchone()["n"])


def fills_for(conn: Connection, order_ids: Iterable[uuid.UUID]) -> list[PaperFill]:
    """Return the fills of these orders, in execution order."""
    ids = list(order_ids)
    if not ids:
        return []
    return [PaperFill.from_row(row) for row in conn.execute(FILLS_FOR, {"order_ids": ids}).fetchall()]
