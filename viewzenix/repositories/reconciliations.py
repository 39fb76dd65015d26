"""SQL of reconciliation runs (``services.reconciliation``): what is compared, the run's record.

Run as the backend (no RLS), except ``latest``, on the caller's connection.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from viewzenix.db import Connection

ORDERS_TO_COMPARE = """
select * from public.orders
where config_id = %(config_id)s and status <> 'denied'
  and (%(since)s::timestamptz is null or created_at >= %(since)s)
order by created_at, id
"""

ORDER_ANY_AGE = """
select * from public.orders where config_id = %(config_id)s and client_order_id = %(client_order_id)s
"""

# Is a job working on this symbol, or did anything in it change since the broker was read?
SYMBOL_BUSY = """
select exists (
    select 1 from public.signals s
    where s.config_id = %(config_id)s and s.ticker = %(symbol)s
      and (s.status in ('accepted', 'submitting') or exists (
          select 1 from public.procrastinate_jobs j where j.id = s.job_id and j.status in ('todo', 'doing')))
) or exists (
    select 1 from public.orders
    where config_id = %(config_id)s and symbol = %(symbol)s
      and (status in ('pending_new', 'submitted') or (updated_at > %(read_at)s and updated_at <> now()))
) as busy
"""

# Changed by another transaction since the broker was read (now() is this transaction's start:
# rows this repair itself wrote carry it).
# ... or still PENDING_NEW while its signal's job may still send it (queued, running, retrying).
ORDER_CHANGED_SINCE = """
select (o.updated_at > %(read_at)s and o.updated_at <> now())
    or (o.status = 'pending_new' and exists (
        select 1 from public.signals s join public.procrastinate_jobs j on j.id = s.job_id
        where s.id = o.signal_id and j.status in ('todo', 'doing'))) as changed
from public.orders o where o.id = %(order_id)s
"""

INSERT_RUN = """
insert into public.reconciliations (
    config_id, user_id, broker, started_at, finished_at, repair, orders_compared, orders_in_drift,
    positions_compared, positions_in_drift, drift_rate, counts, drifts, repaired, error
) values (
    %(config_id)s, %(user_id)s, %(broker)s, %(started_at)s, now(), %(repair)s, %(orders_compared)s,
    %(orders_in_drift)s, %(positions_compared)s, %(positions_in_drift)s, %(drift_rate)s, %(counts)s,
    %(drifts)s, %(repaired)s, %(error)s
)
returning *
"""

LATEST_PER_CONFIG = """
select distinct on (config_id) *
from public.reconciliations
where (%(config_id)s::uuid is null or config_id = %(config_id)s)
order by config_id, started_at desc, id
"""


def orders_to_compare(conn: Connection, config_id: uuid.UUID, since: datetime | None) -> list[dict[str, Any]]:
    """Return the config's orders (all but denied) placed since ``since`` (all when None)."""
    return conn.execute(ORDERS_TO_COMPARE, {"config_id": config_id, "since": since}).fetchall()


def order_any_age(conn: Connection, config_id: uuid.UUID, client_order_id: str) -> dict[str, Any] | None:
    """Return the config's order with ``client_order_id`` whatever its age, or None."""
    return conn.execute(
        ORDER_ANY_AGE, {"config_id": config_id, "client_order_id": client_order_id}
    ).fetchone()


def symbol_busy(conn: Connection, config_id: uuid.UUID, symbol: str, read_at: datetime) -> bool:
    """Return whether a job works on ``symbol`` or an order in it changed since ``read_at``."""
    params = {"config_id": config_id, "symbol": symbol, "read_at": read_at}
    return conn.execute(SYMBOL_BUSY, params).fetchone()["busy"]


def order_changed_since(conn: Connection, order_id: uuid.UUID, read_at: datetime) -> bool:
    """Return whether the order changed since ``read_at`` or its job may still send it."""
    return conn.execute(ORDER_CHANGED_SINCE, {"order_id": order_id, "read_at": read_at}).fetchone()["changed"]


def clock_timestamp(conn: Connection) -> datetime:
    """Return the database's clock now (not the transaction's start)."""
    return conn.execute("select clock_timestamp() as at").fetchone()["at"]


def insert_run(conn: Connection, **values: Any) -> dict[str, Any]:
    """Store one run; ``counts`` and ``drifts`` are JSON values. Return the row."""
    values = {**values, "counts": Jsonb(values["counts"]), "drifts": Jsonb(values["drifts"])}
    return conn.execute(INSERT_RUN, values).fetchone()


def latest(conn: Connection, config_id: uuid.UUID | None) -> list[dict[str, Any]]:
    """Return the newest run per config (or of ``config_id``) visible on ``conn``."""
    return conn.execute(LATEST_PER_CONFIG, {"config_id": config_id}).fetchall()
