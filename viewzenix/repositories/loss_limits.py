"""SQL for the daily loss limit: a config's session in our books, and its recorded breaches."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from viewzenix.db import Connection
from viewzenix.domain.loss_limit import SymbolDay

# One statement: per symbol of the config, the position now and what the session's fills did,
# the price at the session's start (the last bar before it), and whether a breach of this
# session was recorded already. One row with a null symbol when the config holds nothing.
SESSION_DAY = """
with f as (
    select symbol,
        sum(case when side = 'buy' then last_qty - fee_qty else -last_qty end) as filled_qty,
        sum(case when side = 'buy' then -last_qty * last_px else last_qty * last_px end - commission)
            as cash_flow
    from public.fills
    where config_id = %(config_id)s and filled_at >= %(start)s
    group by symbol
), p as (
    select symbol, qty, avg_entry_price, last_price
    from public.positions
    where config_id = %(config_id)s and (qty <> 0 or symbol in (select symbol from f))
), days as (
    select coalesce(p.symbol, f.symbol) as symbol, coalesce(p.qty, 0) as qty, p.last_price as mark,
        coalesce(p.avg_entry_price, 0) as avg_entry_price, coalesce(f.filled_qty, 0) as filled_qty,
        coalesce(f.cash_flow, 0) as cash_flow
    from p full join f on f.symbol = p.symbol
)
select b.breached, days.*,
    (select bars.close from public.bars
     where bars.config_id = %(config_id)s and bars.symbol = days.symbol
       and bars.status in ('accepted', 'applied') and bars.bar_at < %(start)s
     order by bars.bar_at desc limit 1) as start_price
from (select exists (
        select 1 from public.loss_limit_breaches
        where config_id = %(config_id)s and session_start = %(start)s
    ) as breached) b
left join days on true
"""


def session_day(
    conn: Connection, config_id: uuid.UUID, session_start: datetime
) -> tuple[list[SymbolDay], bool]:
    """Return (each symbol's session in our books, whether a breach of it is recorded already).

    One statement. ``session_start``: UTC; fills at or after it belong to the session.
    """
    rows = conn.execute(SESSION_DAY, {"config_id": config_id, "start": session_start}).fetchall()
    breached = bool(rows and rows[0]["breached"])
    days = [
        SymbolDay(
            symbol=r["symbol"],
            qty=Decimal(r["qty"]),
            mark=r["mark"],
            avg_entry_price=Decimal(r["avg_entry_price"]),
            filled_qty=Decimal(r["filled_qty"]),
            cash_flow=Decimal(r["cash_flow"]),
            start_price=r["start_price"],
        )
        for r in rows
        if r["symbol"] is not None
    ]
    return days, breached


def record_breach(
    conn: Connection,
    *,
    config_id: uuid.UUID,
    user_id: uuid.UUID,
    session_start: datetime,
    session_end: datetime,
    loss_limit: Decimal,
    pnl: Decimal,
    symbol: str | None,
    signal_id: uuid.UUID | None,
    flatten_on_loss_limit: bool,
) -> dict[str, Any] | None:
    """Record the session's breach; return the new row, or None when one was recorded already
    (the unique (config_id, session_start) key: two jobs breaching at once record one)."""
    return conn.execute(
        """
        insert into public.loss_limit_breaches (
            config_id, user_id, session_start, session_end, loss_limit, pnl, symbol, signal_id,
            flatten_on_loss_limit
        ) values (
            %(config_id)s, %(user_id)s, %(session_start)s, %(session_end)s, %(loss_limit)s, %(pnl)s,
            %(symbol)s, %(signal_id)s, %(flatten)s
        )
        on conflict (config_id, session_start) do nothing
        returning *
        """,
        {
            "config_id": config_id,
            "user_id": user_id,
            "session_start": session_start,
            "session_end": session_end,
            "loss_limit": loss_limit,
            "pnl": pnl,
            "symbol": symbol,
            "signal_id": signal_id,
            "flatten": flatten_on_loss_limit,
        },
    ).fetchone()


ACTIVE = """
select id, config_id, session_start, session_end, loss_limit, pnl, symbol, signal_id,
    flatten_on_loss_limit, breached_at
from public.loss_limit_breaches
where session_end > now() and (%(config_id)s::uuid is null or config_id = %(config_id)s::uuid)
order by breached_at desc
"""


def active(conn: Connection, config_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Return the visible breaches whose session has not ended (newest first), of one config or all."""
    return conn.execute(ACTIVE, {"config_id": config_id}).fetchall()


# Breaches whose flatten is due (flatten_on_loss_limit, not flattened yet, session not over),
# locked so one run claims each; a run holding one makes the others skip it.
FLATTEN_DUE = """
select id, config_id, session_start, session_end
from public.loss_limit_breaches
where flatten_on_loss_limit and flattened_at is null and session_end > %(now)s
  and (%(config_id)s::uuid is null or config_id = %(config_id)s::uuid)
order by breached_at
for update skip locked
"""

MARK_FLATTENED = "update public.loss_limit_breaches set flattened_at = %(now)s where id = %(id)s"


def flatten_due(conn: Connection, now: datetime, config_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Lock and return the breaches to flatten now (all configs, or one); skip those locked."""
    return conn.execute(FLATTEN_DUE, {"now": now, "config_id": config_id}).fetchall()


def mark_flattened(conn: Connection, breach_id: uuid.UUID, now: datetime) -> None:
    """Record that a breach's flatten was sent (the claim: it is not sent again)."""
    conn.execute(MARK_FLATTENED, {"id": breach_id, "now": now})
