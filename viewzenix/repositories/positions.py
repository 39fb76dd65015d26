"""SQL for net positions per (config, symbol): signed qty, average entry price, realised P&L.

A position row is created at zero on first use and kept at qty 0 when flat, so its
``realized_pnl`` and ``last_price`` (the mark) survive. ``list_for`` runs on the caller's
connection for the REST API, where Row-Level Security restricts the rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from viewzenix.db import Connection
from viewzenix.domain.model import PositionState

ENSURE_POSITION = """
insert into public.positions (config_id, symbol, user_id)
values (%(config_id)s, %(symbol)s, %(user_id)s)
on conflict (config_id, symbol) do nothing
"""

LOCK_POSITION = """
select * from public.positions where config_id = %(config_id)s and symbol = %(symbol)s for update
"""

SAVE_POSITION = """
update public.positions set
    qty = %(qty)s,
    avg_entry_price = %(avg_entry_price)s,
    realized_pnl = %(realized_pnl)s,
    last_price = %(last_price)s,
    opened_at = %(opened_at)s
where config_id = %(config_id)s and symbol = %(symbol)s
"""

MARK_POSITION = """
update public.positions set last_price = %(last_price)s, last_price_at = coalesce(%(at)s, now())
where config_id = %(config_id)s and symbol = %(symbol)s
"""

# ``MARK_POSITION`` that returns the row. The update locks it (FOR NO KEY UPDATE where
# ``LOCK_POSITION`` takes FOR UPDATE: the same here, since no foreign key references positions).
MARK_AND_LOCK_POSITION = """
update public.positions set last_price = %(last_price)s, last_price_at = now()
where config_id = %(config_id)s and symbol = %(symbol)s
returning *
"""

OPEN_POSITIONS = """
select * from public.positions where config_id = %(config_id)s and qty <> 0 order by symbol
"""

LIST_FOR = """
select
    p.config_id, p.symbol, p.user_id, p.qty,
    case when p.qty > 0 then 'long' when p.qty < 0 then 'short' else 'flat' end as side,
    p.avg_entry_price, p.last_price, p.last_price_at,
    p.qty * p.last_price as market_value,
    (p.last_price - p.avg_entry_price) * p.qty as unrealized_pnl,
    p.realized_pnl, p.opened_at, p.updated_at
from public.positions p
where (%(config_id)s::uuid is null or p.config_id = %(config_id)s)
  and (%(include_flat)s or p.qty <> 0)
order by p.config_id, p.symbol
"""


@dataclass(frozen=True)
class PositionRecord:
    """One ``positions`` row."""

    config_id: uuid.UUID
    symbol: str
    user_id: uuid.UUID
    qty: Decimal
    avg_entry_price: Decimal
    realized_pnl: Decimal
    last_price: Decimal | None
    opened_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PositionRecord:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def state(self) -> PositionState:
        """The engine's view: symbol, signed qty, average entry price."""
        return PositionState(symbol=self.symbol, qty=self.qty, avg_entry_price=self.avg_entry_price)


def lock(conn: Connection, *, config_id: uuid.UUID, user_id: uuid.UUID, symbol: str) -> PositionRecord:
    """Lock and return the (config, symbol) position, creating it at zero when missing.

    The row lock serialises everything that changes this position until the transaction ends.
    """
    params = {"config_id": config_id, "symbol": symbol, "user_id": user_id}
    row = conn.execute(LOCK_POSITION, params).fetchone()
    if row is None:  # first order in this symbol: one extra statement, once
        conn.execute(ENSURE_POSITION, params)
        row = conn.execute(LOCK_POSITION, params).fetchone()
    return PositionRecord.from_row(row)


def save(conn: Connection, position: PositionRecord) -> None:
    """Write a position's qty, avg_entry_price, realized_pnl, last_price and opened_at (a row
    locked by ``lock``). Nothing is read back, so it can share a pipeline with other writes."""
    conn.execute(SAVE_POSITION, _position_params(position))


def _position_params(position: PositionRecord) -> dict[str, Any]:
    return {
        "config_id": position.config_id,
        "symbol": position.symbol,
        "qty": position.qty,
        "avg_entry_price": position.avg_entry_price,
        "realized_pnl": position.realized_pnl,
        "last_price": position.last_price,
        "opened_at": position.opened_at,
    }


# A fill recorded once (by its trade_id) and applied to our books, in one statement: the fill row,
# written only when the config's account exists; then, only when the fill was new, the account's
# cash and commissions and the position (locked by ``lock``). Says which happened.
RECORD_FILL_AND_SAVE = f"""
with account as (
    select 1 from public.accounts where config_id = %(config_id)s
), inserted as (
    insert into public.fills (
        order_id, user_id, config_id, trade_id, symbol, side, last_qty, last_px, commission,
        filled_at, fee_qty
    )
    select %(order_id)s, %(user_id)s, %(config_id)s, %(trade_id)s, %(symbol)s, %(side)s,
        %(last_qty)s, %(last_px)s, %(commission)s, %(filled_at)s, %(fee_qty)s
    where exists (select 1 from account)
    on conflict on constraint fills_config_trade_id_key do nothing
    returning id
), paid as (
    update public.accounts set
        cash = cash + %(delta)s,
        commission_paid = commission_paid + %(commission_paid)s
    where config_id = %(config_id)s and exists (select 1 from inserted)
), saved as (
    {SAVE_POSITION.strip()} and exists (select 1 from inserted)
)
select exists (select 1 from account) as has_account, exists (select 1 from inserted) as inserted
"""  # noqa: S608 (our own statement; values are bound)


def record_fill_and_save(
    conn: Connection,
    fill: dict[str, Any],
    position: PositionRecord,
    delta: Decimal,
    commission: Decimal,
) -> bool:
    """Record one fill (execution) once and apply it to our books, in one statement.

    ``fill``: the ``public.fills`` columns (order_id, user_id, config_id, trade_id, symbol, side,
    last_qty, last_px, commission, filled_at, optional fee_qty: the asset a crypto buy's fee
    took). When its ``trade_id`` (unique per config) is new: ``delta`` (negative to pay) is added
    to the config's cash and ``commission`` to its commissions paid (account currency, atomic
    increments), and ``position`` (the locked position after the fill) is written. Return whether
    the fill was new (False: recorded already, nothing written). Raises LookupError when the
    config has no account in our books; nothing is written then."""
    params = {
        "fee_qty": Decimal(0),
        **fill,
        **_position_params(position),
        "delta": delta,
        "commission_paid": commission,
    }
    row = conn.execute(RECORD_FILL_AND_SAVE, params).fetchone()
    if not row["has_account"]:
        raise LookupError(f"config {position.config_id} has no account in our books")
    return bool(row["inserted"])


def mark(
    conn: Connection,
    *,
    config_id: uuid.UUID,
    symbol: str,
    last_price: Decimal,
    at: datetime | None = None,
) -> None:
    """Set the symbol's mark (``last_price``, taken at ``at``, default now) on its position row."""
    conn.execute(
        MARK_POSITION, {"config_id": config_id, "symbol": symbol, "last_price": last_price, "at": at}
    )


def open_for(conn: Connection, config_id: uuid.UUID) -> list[PositionRecord]:
    """Return the config's non-flat positions, by symbol."""
    rows = conn.execute(OPEN_POSITIONS, {"config_id": config_id}).fetchall()
    return [PositionRecord.from_row(row) for row in rows]


def list_for(
    conn: Connection, *, config_id: uuid.UUID | None = None, include_flat: bool = False
) -> list[dict[str, Any]]:
    """Return visible positions (one config's, or all), by config and symbol.

    Each row adds ``side`` (long/short/flat), ``market_value`` = qty * last_price and
    ``unrealized_pnl`` = (last_price - avg_entry_price) * qty, both None while no price is known.
    Flat rows (qty 0, kept for their realised P&L) only with ``include_flat``.
    """
    return conn.execute(LIST_FOR, {"config_id": config_id, "include_flat": include_flat}).fetchall()
