"""SQL for the account history: the equity curve and closed trades, computed from fills.

Runs on the caller's connection: Row-Level Security restricts the rows to theirs. The queries
compute in Postgres what ``viewzenix/domain/performance.py`` specifies in Python (equity after
each fill marked at fill prices; round trips flat → flat, a fill through zero split in two), so
10,000 fills answer in milliseconds; ``tests/integration/test_performance_sql.py`` checks that
both agree on the same fills. Numeric throughout (exact).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from viewzenix.db import Connection

STARTING_CASH = """
select c.id as config_id, coalesce(a.starting_cash, c.starting_cash) as starting_cash
from public.webhook_configs c left join public.accounts a on a.config_id = c.id
where %(config_id)s::uuid is null or c.id = %(config_id)s::uuid
"""

# Equity after fill n = start + Σ cash deltas (commissions included) + Σ qty * mark, where the
# positions' value moves at each fill by qty_after * px − qty_before * previous px of that symbol.
# Keeps every k-th point (k = ceil(total / max_points)) and always the last.
EQUITY_CURVE = """
with f as (
    select config_id, symbol, filled_at, trade_id, last_px as px, commission,
        case when side = 'buy' then last_qty else -last_qty end as signed
    from public.fills
    where %(config_id)s::uuid is null or config_id = %(config_id)s::uuid
), w as (
    select *,
        sum(signed) over sym as qty_after,
        lag(px) over sym as prev_px,
        row_number() over (order by filled_at, trade_id, config_id) as n
    from f
    window sym as (partition by config_id, symbol order by filled_at, trade_id)
), e as (
    select filled_at, n, count(*) over () as total,
        sum(-signed * px - commission) over o as cash,
        sum(qty_after * px - (qty_after - signed) * coalesce(prev_px, 0)) over o as value
    from w
    window o as (order by n)
)
select filled_at as at, %(start)s::numeric + cash + value as equity
from e
where total <= %(max_points)s or n = total or n %% ceil(total::numeric / %(max_points)s)::bigint = 0
order by n
"""

# A fill that takes the position through zero becomes two pieces: the part that closes the old
# position and the part that opens the new one. Trades are numbered per (config, symbol) by the
# openings so far (from flat, or through zero); the fills that bring a position back to flat or
# through zero close one. Only the newest `limit` closed trades are aggregated (the numbering is
# a cheap pass over every fill). Gross P&L of a round trip = Σ sells − Σ buys.
CLOSED_TRADES = """
with f as (
    select config_id, symbol, filled_at, trade_id, last_px as px, last_qty, commission,
        case when side = 'buy' then 1 else -1 end as dir,
        case when side = 'buy' then last_qty else -last_qty end as signed
    from public.fills
    where (%(config_id)s::uuid is null or config_id = %(config_id)s::uuid)
      and (%(symbol)s::text is null or symbol = %(symbol)s::text)
), w as (
    select *, sum(signed) over (partition by config_id, symbol order by filled_at, trade_id) as after
    from f
), c as (
    select *, after - signed as before,
        after - signed <> 0 and sign(after) = -sign(after - signed) as through_zero
    from w
), n as (
    select *,
        count(*) filter (where before = 0 or through_zero) over (
            partition by config_id, symbol order by filled_at, trade_id
        ) as last_no
    from c
), closes as (
    select config_id, symbol, case when through_zero then last_no - 1 else last_no end as trade_no,
        count(*) over () as total_count
    from n
    where after = 0 or through_zero
    order by filled_at desc, trade_id desc
    limit %(limit)s
), pieces as (
    select config_id, symbol, filled_at, trade_id, px, dir, commission, last_qty, before,
        case when through_zero then abs(before) else last_qty end as q,
        case when through_zero then last_no - 1 else last_no end as trade_no
    from n
    union all
    select config_id, symbol, filled_at, trade_id, px, dir, commission, last_qty, 0, abs(after), last_no
    from n where through_zero
), trades as (
    select p.config_id, p.symbol, p.trade_no, min(cl.total_count) as total_count,
        -- opening: the piece adds to the position's size (from flat, or on its side)
        sign(sum(dir * q) filter (where before = 0 or sign(before) = dir)) as side_dir,
        trim_scale(
            sum(px * q) filter (where before = 0 or sign(before) = dir)
            / sum(q) filter (where before = 0 or sign(before) = dir)
        ) as entry_price,
        trim_scale(
            sum(px * q) filter (where before <> 0 and sign(before) <> dir)
            / nullif(sum(q) filter (where before <> 0 and sign(before) <> dir), 0)
        ) as exit_price,
        sum(q) filter (where before = 0 or sign(before) = dir) as entry_qty,
        min(filled_at) as opened_at,
        max(filled_at) as closed_at,
        -sum(dir * q * px) as gross_pnl,
        trim_scale(sum(case when q = last_qty then commission else commission * q / last_qty end))
            as commission
    from pieces p join closes cl using (config_id, symbol, trade_no)
    group by p.config_id, p.symbol, p.trade_no
)
select config_id, symbol, case when side_dir > 0 then 'long' else 'short' end as side,
    entry_qty as qty, entry_price, exit_price, opened_at, closed_at, gross_pnl, commission,
    gross_pnl - commission as net_pnl, total_count
from trades
order by closed_at desc, opened_at desc
"""


def starting_cash(conn: Connection, config_id: uuid.UUID | None) -> dict[uuid.UUID, Decimal]:
    """Return config id → starting cash of the visible configs (one, or all)."""
    rows = conn.execute(STARTING_CASH, {"config_id": config_id}).fetchall()
    return {r["config_id"]: r["starting_cash"] for r in rows}


def equity_curve(
    conn: Connection, config_id: uuid.UUID | None, start: Decimal, max_points: int
) -> list[dict[str, Any]]:
    """Return ``[{at, equity}]`` after each visible fill (at most ``max_points``, last kept), oldest first."""
    params = {"config_id": config_id, "start": start, "max_points": max_points}
    return conn.execute(EQUITY_CURVE, params).fetchall()


def closed_trades(
    conn: Connection, config_id: uuid.UUID | None, symbol: str | None, limit: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Return ``(rows, total)``: the newest ``limit`` (default all) visible closed round trips.

    Keys: config_id, symbol, side (long/short), qty (the total quantity opened), entry_price,
    exit_price (averages), opened_at, closed_at, gross_pnl, commission (shared pro rata on a
    fill through zero), net_pnl.
    """
    rows = conn.execute(CLOSED_TRADES, {"config_id": config_id, "symbol": symbol, "limit": limit}).fetchall()
    total = rows[0]["total_count"] if rows else 0
    for row in rows:
        del row["total_count"]
    return rows, total
