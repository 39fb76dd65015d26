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

# The curve's events: each visible config's initial capital at its start (its creation, or its
# first fill or capital change if earlier), each recorded capital change (`capital_changes`), and
# each fill. Equity after event n = Σ capital so far + Σ cash deltas of fills (commissions
# included) + Σ qty * mark, where the positions' value moves at each fill by
# qty_after * px − qty_before * previous px of that symbol. Capital comes before the fills of
# the same instant. `n` numbers the events, `capital` is Σ capital so far.
CURVE_CTES = """
f as (
    select config_id, symbol, filled_at as at, trade_id, last_px as px, commission,
        case when side = 'buy' then last_qty else -last_qty end as signed
    from public.fills
    where %(config_id)s::uuid is null or config_id = %(config_id)s::uuid
), fill_events as (
    select config_id, at, 1 as kind, trade_id as tid, 0::numeric as capital,
        -signed * px - commission
        + sum(signed) over sym * px - (sum(signed) over sym - signed) * coalesce(lag(px) over sym, 0)
            as delta
    from f
    window sym as (partition by config_id, symbol order by at, trade_id)
), ch as (
    select config_id, at, id, amount from public.capital_changes
    where %(config_id)s::uuid is null or config_id = %(config_id)s::uuid
), capital_events as (
    select c.id as config_id,
        least(c.created_at, (select min(at) from f where f.config_id = c.id),
            (select min(at) from ch where ch.config_id = c.id)) as at,
        0 as kind, '' as tid,
        coalesce(a.starting_cash, c.starting_cash)
            - coalesce((select sum(amount) from ch where ch.config_id = c.id), 0) as capital
    from public.webhook_configs c left join public.accounts a on a.config_id = c.id
    where %(config_id)s::uuid is null or c.id = %(config_id)s::uuid
    union all
    select config_id, at, 0, lpad(id::text, 19, '0'), amount from ch
), ev as (
    select config_id, at, kind, tid, capital, delta from fill_events
    union all
    select config_id, at, kind, tid, capital, capital from capital_events
), curve as (
    select at, kind, tid,
        row_number() over o as n,
        count(*) over () as total,
        sum(capital) over o as capital,
        sum(delta) over o as equity
    from ev
    window o as (order by at, kind, tid, config_id rows between unbounded preceding and current row)
)
"""

# Keeps every capital event, every k-th fill (k = ceil(total / max_points)) and the last.
EQUITY_CURVE = (
    "with"
    + CURVE_CTES
    + """
select at, equity, capital,
    case when kind = 0 and tid = '' then 'start' when kind = 0 then 'capital' else 'fill' end as kind
from curve
where total <= %(max_points)s or n = total or kind = 0
    or n %% ceil(total::numeric / %(max_points)s)::bigint = 0
order by n
"""
)

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
    where (after = 0 or through_zero)
      and (%(since)s::timestamptz is null or filled_at >= %(since)s::timestamptz)
      and (%(until)s::timestamptz is null or filled_at < %(until)s::timestamptz)
    order by filled_at desc, trade_id desc
    limit %(limit)s offset %(offset)s
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


def equity_curve(conn: Connection, config_id: uuid.UUID | None, max_points: int) -> list[dict[str, Any]]:
    """Return ``[{at, equity, capital, kind}]`` after each visible capital event and fill, oldest first.

    ``kind``: "start" (a config's initial capital), "capital" (a later change of its starting
    cash), "fill". More than ``max_points`` events: every capital event, evenly spaced fills and
    the last event.
    """
    return conn.execute(EQUITY_CURVE, {"config_id": config_id, "max_points": max_points}).fetchall()


def closed_trades(
    conn: Connection, config_id: uuid.UUID | None, symbol: str | None, limit: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Return ``(rows, total)``: the newest ``limit`` (default all) visible closed round trips.

    Keys: config_id, symbol, side (long/short), qty (the total quantity opened), entry_price,
    exit_price (averages), opened_at, closed_at, gross_pnl, commission (shared pro rata on a
    fill through zero), net_pnl.
    """
    params = {"config_id": config_id, "symbol": symbol, "limit": limit, "offset": 0}
    rows = conn.execute(CLOSED_TRADES, {**params, "since": None, "until": None}).fetchall()
    total = rows[0]["total_count"] if rows else 0
    for row in rows:
        del row["total_count"]
    return rows, total


# Filters and a page over the closed trades (the newest close first); `total_count` counts the
# trades matching the filters. `outcome`: win (net > 0), loss (net < 0), flat (net = 0).
TRADES_PAGE = (
    "select *, count(*) over () as matching from ("  # noqa: S608 (module constants; values are bound)
    + CLOSED_TRADES
    + """) t
where (%(side)s::text is null or side = %(side)s::text)
  and (%(since)s::timestamptz is null or closed_at >= %(since)s::timestamptz)
  and (%(until)s::timestamptz is null or closed_at < %(until)s::timestamptz)
  and (%(outcome)s::text is null
       or (%(outcome)s::text = 'win' and net_pnl > 0)
       or (%(outcome)s::text = 'loss' and net_pnl < 0)
       or (%(outcome)s::text = 'flat' and net_pnl = 0))
order by closed_at desc, opened_at desc, symbol
limit %(page_size)s offset %(page_offset)s
"""
)

# domain/performance.performance, in SQL: figures of every visible closed trade and the full
# (not downsampled) equity curve. Exposure = the union of the trades' [opened_at, closed_at]:
# islands start where a trade opens after every earlier one closed.
PERFORMANCE = (
    "with"  # noqa: S608
    + CURVE_CTES
    + ", t as ("
    + CLOSED_TRADES
    + """), agg as (
    select count(*) as trade_count,
        count(*) filter (where net_pnl > 0) as wins,
        count(*) filter (where net_pnl < 0) as losses,
        coalesce(sum(net_pnl), 0) as net_pnl,
        coalesce(sum(gross_pnl), 0) as gross_pnl,
        coalesce(sum(commission), 0) as commission,
        sum(net_pnl) filter (where net_pnl > 0) as won,
        sum(net_pnl) filter (where net_pnl < 0) as lost,
        max(net_pnl) filter (where net_pnl > 0) as largest_win,
        min(net_pnl) filter (where net_pnl < 0) as largest_loss,
        extract(epoch from max(closed_at) - min(opened_at)) as period_seconds
    from t
), spans as (
    select opened_at, closed_at,
        max(closed_at) over (order by opened_at, closed_at rows between unbounded preceding and 1 preceding)
            as earlier_end
    from t
), islands as (
    select opened_at, closed_at,
        count(*) filter (where earlier_end is null or opened_at > earlier_end)
            over (order by opened_at, closed_at rows between unbounded preceding and current row) as island
    from spans
), exposure as (
    select coalesce(sum(extract(epoch from e - s)), 0) as exposure_seconds
    from (select min(opened_at) as s, max(closed_at) as e from islands group by island) i
), peaks as (
    select capital, equity - capital as pnl,
        greatest(0, max(equity - capital) over (order by n rows between unbounded preceding and current row))
            as peak
    from curve
), drawdown as (
    select coalesce(max(peak - pnl), 0) as max_drawdown,
        max((peak - pnl) / (capital + peak)) filter (where capital + peak > 0) as max_drawdown_pct
    from peaks
)
select trade_count, wins, losses, net_pnl, gross_pnl, commission,
    trim_scale(wins::numeric / nullif(trade_count, 0)) as win_rate,
    trim_scale(won / nullif(-lost, 0)) as profit_factor,
    trim_scale(won / nullif(wins, 0)) as avg_win,
    trim_scale(lost / nullif(losses, 0)) as avg_loss,
    largest_win, largest_loss, max_drawdown, trim_scale(max_drawdown_pct) as max_drawdown_pct,
    exposure_seconds, coalesce(period_seconds, 0) as period_seconds,
    trim_scale(exposure_seconds / nullif(period_seconds, 0)) as exposure_pct
from agg, exposure, drawdown
"""
)

CAPITAL_CHANGES = """
select config_id, at, starting_cash_before, starting_cash_after, amount from public.capital_changes
where %(config_id)s::uuid is null or config_id = %(config_id)s::uuid
order by at, id
"""


def trades_page(
    conn: Connection,
    config_id: uuid.UUID | None,
    *,
    symbol: str | None = None,
    side: str | None = None,
    outcome: str | None = None,
    since: Any = None,
    until: Any = None,
    page_size: int | None = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Return ``(rows, matching)``: one page of visible closed trades matching the filters.

    ``side``: long/short; ``outcome``: win/loss/flat (by net P&L); ``since``/``until``: the close
    time, until excluded; ``page_size`` None: every matching trade. Rows as ``closed_trades``.
    """
    params = {
        "config_id": config_id,
        "symbol": symbol,
        "since": since,
        "until": until,
        "side": side,
        "outcome": outcome,
        "page_size": page_size,
        "offset": offset,
    }
    if side is None and outcome is None:
        # The close time filters and the page apply to the closing fills, before any trade is
        # aggregated: only this page's trades are built.
        rows = conn.execute(CLOSED_TRADES, {**params, "limit": page_size}).fetchall()
        matching = rows[0]["total_count"] if rows else _count_closes(conn, params, offset)
        for row in rows:
            del row["total_count"]
        return rows, matching
    rows = conn.execute(TRADES_PAGE, {**params, "limit": None, "offset": 0, "page_offset": offset}).fetchall()
    matching = rows[0]["matching"] if rows else 0
    for row in rows:
        del row["total_count"], row["matching"]
    return rows, matching


def _count_closes(conn: Connection, params: dict[str, Any], offset: int) -> int:
    """The matching total for a page past the end (no row carries it): ask for the first page."""
    if offset == 0:
        return 0
    rows = conn.execute(CLOSED_TRADES, {**params, "limit": 1, "offset": 0}).fetchall()
    return rows[0]["total_count"] if rows else 0


def performance(conn: Connection, config_id: uuid.UUID | None) -> dict[str, Any]:
    """Return the figures ``domain/performance.Performance`` names, of one config or all visible.

    Ratios (``win_rate``, ``max_drawdown_pct``, ``exposure_pct``) are fractions; seconds numeric.
    """
    params = {"config_id": config_id, "symbol": None, "limit": None, "offset": 0}
    return conn.execute(PERFORMANCE, {**params, "since": None, "until": None}).fetchone()


def capital_changes(conn: Connection, config_id: uuid.UUID | None) -> list[dict[str, Any]]:
    """Return the visible recorded capital changes, oldest first: ``{config_id, at, amount, ...}``."""
    return conn.execute(CAPITAL_CHANGES, {"config_id": config_id}).fetchall()


# What the curve and the figures are computed from, in brief: fills and capital changes are only
# ever added (a late fill adds to the count), so an unchanged answer means unchanged figures.
FINGERPRINT = """
select
    (select count(*) from public.fills where %(config_id)s::uuid is null or config_id = %(config_id)s::uuid)
        as fills,
    (select max(filled_at) from public.fills
        where %(config_id)s::uuid is null or config_id = %(config_id)s::uuid) as last_fill,
    (select count(*) from public.capital_changes
        where %(config_id)s::uuid is null or config_id = %(config_id)s::uuid) as capital_changes,
    (select array_agg(id order by id) from public.webhook_configs
        where %(config_id)s::uuid is null or id = %(config_id)s::uuid) as configs
"""


def fingerprint(conn: Connection, config_id: uuid.UUID | None) -> tuple[Any, ...]:
    """Return a cheap summary of the visible inputs of the curve and figures (equal: same answers)."""
    row = conn.execute(FINGERPRINT, {"config_id": config_id}).fetchone()
    return (row["fills"], row["last_fill"], row["capital_changes"], tuple(row["configs"] or ()))
