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

# Is a job working on this symbol (a signal being executed, an order being sent)? What changed
# since the broker was read is seen by row versions (``order_versions``, ``position_versions``).
SYMBOL_BUSY = """
select exists (
    select 1 from public.signals s
    where s.config_id = %(config_id)s and s.ticker = %(symbol)s
      and (s.status in ('accepted', 'submitting') or exists (
          select 1 from public.procrastinate_jobs j where j.id = s.job_id and j.status in ('todo', 'doing')))
) or exists (
    select 1 from public.orders
    where config_id = %(config_id)s and symbol = %(symbol)s
      and status in ('pending_new', 'submitted')
) as busy
"""

# Still PENDING_NEW while its signal's job may still send it (queued, running, retrying).
ORDER_BEING_SENT = """
select (o.status = 'pending_new' and exists (
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


ORDER_VERSIONS = """
select client_order_id, version from public.orders
where config_id = %(config_id)s and client_order_id = any(%(keys)s)
"""

POSITION_VERSIONS = "select symbol, version from public.positions where config_id = %(config_id)s"


def symbol_busy(conn: Connection, config_id: uuid.UUID, symbol: str) -> bool:
    """Return whether a job works on ``symbol`` (a signal being executed, an order being sent)."""
    return conn.execute(SYMBOL_BUSY, {"config_id": config_id, "symbol": symbol}).fetchone()["busy"]


def order_being_sent(conn: Connection, order_id: uuid.UUID) -> bool:
    """Return whether the order is PENDING_NEW while its signal's job may still send it."""
    return conn.execute(ORDER_BEING_SENT, {"order_id": order_id}).fetchone()["changed"]


def order_versions(conn: Connection, config_id: uuid.UUID, keys: list[str]) -> dict[str, int]:
    """Return the row version of each of the config's orders in ``keys`` (client_order_ids) we hold."""
    rows = conn.execute(ORDER_VERSIONS, {"config_id": config_id, "keys": keys})
    return {r["client_order_id"]: r["version"] for r in rows}


def position_versions(conn: Connection, config_id: uuid.UUID) -> dict[str, int]:
    """Return the row version of each of the config's position rows, by symbol."""
    return {r["symbol"]: r["version"] for r in conn.execute(POSITION_VERSIONS, {"config_id": config_id})}


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
