"""SQL for a trader's controls: close / flatten signals and the scheduled auto-flatten claims."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from psycopg.types.json import Jsonb

from viewzenix.db import Connection
from viewzenix.repositories.orders import OPEN_STATUS_LIST

# The config row, locked: two flattens of one config run one after the other, and the second
# sees the first's signals. Under RLS (the caller's claims) another user's config is not found.
LOCK_CONFIG = "select * from public.webhook_configs where id = %(config_id)s for update"

USER_CONFIG_IDS = "select id from public.webhook_configs order by created_at, id"

# Exits already on their way per symbol: a close/flatten signal not run yet (accepted or
# submitting), or a market exit order still open (sent, its fill not reported yet). A second
# flatten leaves those symbols alone. A resting limit/stop exit is not "closing now": a flatten
# goes ahead (the engine cancels it before sending its market exit).
CLOSING = f"""
select s.ticker as symbol, s.id as signal_id
from public.signals s
where s.config_id = %(config_id)s and s.action = 'exit' and s.source <> 'tradingview'
  and s.status in ('accepted', 'submitting')
union all
select o.symbol, o.signal_id
from public.orders o
where o.config_id = %(config_id)s and o.purpose = 'exit' and o.order_type = 'market'
  and o.status in {OPEN_STATUS_LIST}
"""  # noqa: S608 (a literal list of our own constants; values are bound)

# The config's TradingView alerts that have not run: waiting for their job, or for an approval.
QUEUED_ALERTS = """
select id, ticker from public.signals
where config_id = %(config_id)s and source = 'tradingview' and status in ('accepted', 'awaiting_approval')
for update
"""

REFUSE_QUEUED = """
update public.signals
set status = 'rejected', reject_code = 'flattened', reject_message = %(message)s, processed_at = now()
where id = any(%(ids)s) and status in ('accepted', 'awaiting_approval')
"""

SCHEDULED_CONFIGS = """
select id, user_id, trading_windows from public.webhook_configs
where trading_windows is not null
  and (trading_windows ->> 'flatten_at' is not null
       or trading_windows -> 'cancel_at_window_end' = 'true'::jsonb)  -- no cast: bad JSON must not fail
order by id
"""

CLAIM_SCHEDULED = """
insert into public.scheduled_controls (config_id, user_id, session_date, kind)
values (%(config_id)s, %(user_id)s, %(session_date)s, %(kind)s)
on conflict do nothing
returning config_id
"""

SCHEDULED_RESULT = """
update public.scheduled_controls set result = %(result)s
where config_id = %(config_id)s and session_date = %(session_date)s and kind = %(kind)s
"""


def lock_config(conn: Connection, config_id: uuid.UUID) -> dict[str, Any] | None:
    """Lock and return a webhook_configs row; None when unknown (or not the caller's, under RLS)."""
    return conn.execute(LOCK_CONFIG, {"config_id": config_id}).fetchone()


def user_config_ids(conn: Connection) -> list[uuid.UUID]:
    """Return the ids of the configs visible on ``conn`` (the caller's, under RLS), oldest first."""
    return [row["id"] for row in conn.execute(USER_CONFIG_IDS).fetchall()]


def closing(conn: Connection, config_id: uuid.UUID) -> dict[str, uuid.UUID | None]:
    """Return ``{symbol: signal_id}`` of the config's exits already under way (see ``CLOSING``)."""
    rows = conn.execute(CLOSING, {"config_id": config_id}).fetchall()
    found: dict[str, uuid.UUID | None] = {}
    for row in rows:
        found.setdefault(row["symbol"], row["signal_id"])
    return found


def scheduled_configs(conn: Connection) -> list[dict[str, Any]]:
    """Return ``{id, user_id, trading_windows}`` of every config with a flatten time or auto-cancel."""
    return conn.execute(SCHEDULED_CONFIGS).fetchall()


def claim_scheduled(
    conn: Connection, *, config_id: uuid.UUID, user_id: uuid.UUID, session_date: date, kind: str
) -> bool:
    """Claim (config, session date, kind) for this run; False when an earlier run claimed it."""
    params = {"config_id": config_id, "user_id": user_id, "session_date": session_date, "kind": kind}
    return conn.execute(CLAIM_SCHEDULED, params).fetchone() is not None


def record_scheduled_result(
    conn: Connection, *, config_id: uuid.UUID, session_date: date, kind: str, result: dict[str, Any]
) -> None:
    """Store what a claimed scheduled control did (the flatten's answer)."""
    params = {"config_id": config_id, "session_date": session_date, "kind": kind, "result": Jsonb(result)}
    conn.execute(SCHEDULED_RESULT, params)


def queued_alerts(conn: Connection, config_id: uuid.UUID) -> list[dict[str, Any]]:
    """Lock and return ``{id, ticker}`` of the config's TradingView alerts not run yet."""
    return conn.execute(QUEUED_ALERTS, {"config_id": config_id}).fetchall()


def refuse_queued(conn: Connection, signal_ids: list[uuid.UUID], message: str) -> None:
    """Mark those signals ``rejected`` / ``flattened`` (``message`` says why), if still not run."""
    conn.execute(REFUSE_QUEUED, {"ids": signal_ids, "message": message})
