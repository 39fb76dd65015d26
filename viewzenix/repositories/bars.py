"""SQL for ``public.bars`` (bar messages pushed on a webhook URL) and ``public.equity_points``.

A bar row is written for every bar message that reached a known config: ``accepted`` (its
apply job deferred), ``applied`` (the job ran), ``rejected`` (with ``reject_code`` and
``reject_message``) or ``duplicate`` (of ``duplicate_of``). At most one accepted/applied row per
(config, symbol, interval, bar_at): the partial unique index ``bars_one_per_time_idx``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from viewzenix.db import Connection
from viewzenix.marketdata import Bar

# The config a pushed bar names, as webhook_configs.INTAKE_CONFIG reads it for an alert, and in
# the same read the broker symbol the config maps the bar's (canonical) symbol to, if any
# (public.symbol_mappings; services.routing): no extra round trip for the mapping.
INTAKE_CONFIG = """
select c.id, c.user_id, c.security_token_hash, c.is_active, c.allowed_source_ips, m.broker_symbol
from public.webhook_configs c
left join public.symbol_mappings m on m.config_id = c.id and m.alert_ticker = %(symbol)s
where c.id = %(config_id)s
"""

INSERT_ACCEPTED = """
insert into public.bars (
    id, user_id, config_id, status, symbol, interval, bar_at, interval_seconds,
    open, high, low, close, volume, raw_body, source_ip
) values (
    %(id)s, %(user_id)s, %(config_id)s, 'accepted', %(symbol)s, %(interval)s, %(bar_at)s,
    %(interval_seconds)s, %(open)s, %(high)s, %(low)s, %(close)s, %(volume)s, %(raw_body)s,
    %(source_ip)s
)
on conflict (config_id, symbol, interval, bar_at) where status in ('accepted', 'applied') do nothing
returning id
"""

INSERT_OTHER = """
insert into public.bars (
    id, user_id, config_id, status, reject_code, reject_message, symbol, interval, bar_at,
    interval_seconds, open, high, low, close, volume, duplicate_of, raw_body, source_ip
) values (
    %(id)s, %(user_id)s, %(config_id)s, %(status)s, %(reject_code)s, %(reject_message)s,
    %(symbol)s, %(interval)s, %(bar_at)s, %(interval_seconds)s, %(open)s, %(high)s, %(low)s,
    %(close)s, %(volume)s, %(duplicate_of)s, %(raw_body)s, %(source_ip)s
)
"""

SAME_TIME = """
select id from public.bars
where config_id = %(config_id)s and symbol = %(symbol)s and interval = %(interval)s
  and bar_at = %(bar_at)s and status in ('accepted', 'applied')
"""

LATEST_TIME = """
select max(bar_at) as bar_at from public.bars
where config_id = %(config_id)s and symbol = %(symbol)s and interval = %(interval)s
  and status in ('accepted', 'applied')
"""

SET_JOB = "update public.bars set job_id = %(job_id)s where id = %(id)s"

GET_BAR = "select * from public.bars where id = %(id)s"

FINISH = """
update public.bars set status = %(status)s, reject_code = %(reject_code)s,
    reject_message = %(reject_message)s, outcome_message = %(outcome_message)s, applied_at = now()
where id = %(id)s
"""

LATEST_APPLIED = """
select * from public.bars
where config_id = %(config_id)s and symbol = %(symbol)s and status = 'applied'
order by bar_at desc limit 1
"""

LIST_FOR_CONFIG = """
select id, status, reject_code, reject_message, symbol, interval, bar_at, open, high, low, close,
       volume, duplicate_of, outcome_message, received_at, applied_at
from public.bars where config_id = %(config_id)s
order by received_at desc, id limit %(limit)s
"""

ADD_EQUITY_POINT = """
insert into public.equity_points (config_id, user_id, at, equity, cash)
values (%(config_id)s, %(user_id)s, %(at)s, %(equity)s, %(cash)s)
on conflict (config_id, at) do update set equity = excluded.equity, cash = excluded.cash
"""

EQUITY_SERIES = """
select at, equity, cash from public.equity_points
where config_id = %(config_id)s
  and (%(start)s::timestamptz is null or at >= %(start)s)
  and (%(end)s::timestamptz is null or at < %(end)s)
order by at
limit %(limit)s
"""


@dataclass(frozen=True)
class StoredBar:
    """One ``public.bars`` row that holds a bar (accepted or applied), as the apply job reads it."""

    id: uuid.UUID
    config_id: uuid.UUID
    status: str
    bar: Bar

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredBar:
        return cls(
            id=row["id"],
            config_id=row["config_id"],
            status=row["status"],
            bar=Bar(
                symbol=row["symbol"],
                interval=row["interval"],
                start=row["bar_at"],
                interval_seconds=row["interval_seconds"],
                open=row["open"],
                high=row["high"],
                low=row["low"],
                close=row["close"],
                volume=row["volume"],
            ),
        )


def config_for_intake(conn: Connection, config_id: uuid.UUID, symbol: str | None) -> dict[str, Any] | None:
    """Return ``{id, user_id, security_token_hash, is_active, allowed_source_ips, broker_symbol}``.

    ``symbol``: the bar's canonical symbol (None for a bar that did not parse); ``broker_symbol``
    is what the config maps it to, else None. None when no config has this id.
    """
    return conn.execute(INTAKE_CONFIG, {"config_id": config_id, "symbol": symbol}).fetchone()


def _bar_params(bar: Bar | None) -> dict[str, Any]:
    if bar is None:
        return dict.fromkeys(
            ("symbol", "interval", "bar_at", "interval_seconds", "open", "high", "low", "close", "volume")
        )
    return {
        "symbol": bar.symbol,
        "interval": bar.interval,
        "bar_at": bar.start,
        "interval_seconds": bar.interval_seconds,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
    }


def insert_accepted(
    conn: Connection,
    *,
    bar_id: uuid.UUID,
    user_id: uuid.UUID,
    config_id: uuid.UUID,
    bar: Bar,
    raw_body: str,
    source_ip: str | None,
) -> bool:
    """Store an accepted bar; return False (nothing written) when one with its time exists."""
    row = conn.execute(
        INSERT_ACCEPTED,
        {
            "id": bar_id,
            "user_id": user_id,
            "config_id": config_id,
            "raw_body": raw_body,
            "source_ip": source_ip,
            **_bar_params(bar),
        },
    ).fetchone()
    return row is not None


def insert_other(
    conn: Connection,
    *,
    bar_id: uuid.UUID,
    user_id: uuid.UUID,
    config_id: uuid.UUID,
    status: str,
    bar: Bar | None,
    raw_body: str,
    source_ip: str | None,
    reject_code: str | None = None,
    reject_message: str | None = None,
    duplicate_of: uuid.UUID | None = None,
) -> None:
    """Store a rejected or duplicate bar message (``bar`` None when it did not parse)."""
    conn.execute(
        INSERT_OTHER,
        {
            "id": bar_id,
            "user_id": user_id,
            "config_id": config_id,
            "status": status,
            "reject_code": reject_code,
            "reject_message": reject_message,
            "duplicate_of": duplicate_of,
            "raw_body": raw_body,
            "source_ip": source_ip,
            **_bar_params(bar),
        },
    )


def same_time(conn: Connection, config_id: uuid.UUID, bar: Bar) -> uuid.UUID | None:
    """Return the id of the accepted/applied bar with ``bar``'s symbol, interval and time, or None."""
    row = conn.execute(SAME_TIME, {"config_id": config_id, **_bar_params(bar)}).fetchone()
    return None if row is None else row["id"]


def latest_time(conn: Connection, config_id: uuid.UUID, symbol: str, interval: str) -> datetime | None:
    """Return the open time of the newest accepted/applied bar of (config, symbol, interval)."""
    row = conn.execute(
        LATEST_TIME, {"config_id": config_id, "symbol": symbol, "interval": interval}
    ).fetchone()
    return row["bar_at"]


def set_job(conn: Connection, bar_id: uuid.UUID, job_id: int) -> None:
    """Record the id of the bar's apply job."""
    conn.execute(SET_JOB, {"id": bar_id, "job_id": job_id})


def get(conn: Connection, bar_id: uuid.UUID) -> StoredBar | None:
    """Return the bar row ``bar_id`` when it holds a bar (accepted or applied), else None."""
    row = conn.execute(GET_BAR, {"id": bar_id}).fetchone()
    if row is None or row["status"] not in ("accepted", "applied"):
        return None
    return StoredBar.from_row(row)


def finish(
    conn: Connection,
    bar_id: uuid.UUID,
    status: str,
    *,
    outcome_message: str | None = None,
    reject_code: str | None = None,
    reject_message: str | None = None,
) -> None:
    """Set a bar's final status (applied, or rejected by the apply job) with what it did."""
    conn.execute(
        FINISH,
        {
            "id": bar_id,
            "status": status,
            "outcome_message": outcome_message,
            "reject_code": reject_code,
            "reject_message": reject_message,
        },
    )


def latest_applied(conn: Connection, config_id: uuid.UUID, symbol: str) -> Bar | None:
    """Return the newest applied bar of (config, symbol), any interval, or None."""
    row = conn.execute(LATEST_APPLIED, {"config_id": config_id, "symbol": symbol}).fetchone()
    return None if row is None else StoredBar.from_row(row).bar


def list_for_config(conn: Connection, config_id: uuid.UUID, limit: int = 100) -> list[dict[str, Any]]:
    """Return the config's latest bar messages, newest first."""
    return conn.execute(LIST_FOR_CONFIG, {"config_id": config_id, "limit": limit}).fetchall()


def add_equity_point(
    conn: Connection,
    *,
    config_id: uuid.UUID,
    user_id: uuid.UUID,
    at: datetime,
    equity: Decimal,
    cash: Decimal,
) -> None:
    """Record the config's equity and cash at ``at`` (a bar's close); one point per time, last wins."""
    conn.execute(
        ADD_EQUITY_POINT,
        {"config_id": config_id, "user_id": user_id, "at": at, "equity": equity, "cash": cash},
    )


def equity_series(
    conn: Connection,
    config_id: uuid.UUID,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 5000,
) -> list[dict[str, Any]]:
    """Return the config's equity points ``{at, equity, cash}`` in [start, end), oldest first."""
    return conn.execute(
        EQUITY_SERIES, {"config_id": config_id, "start": start, "end": end, "limit": limit}
    ).fetchall()
