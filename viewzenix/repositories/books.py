"""SQL for the named selections of our books the accounts service offers (``services.accounts``).

Which configs and orders each caller between brokers and our books works on: configs with
orders open at a broker (the order sync), unresolved ``pending_new`` orders (the sync looks
them up), configs with resting day orders (housekeeping), configs whose trade_updates are
streamed, and whose order a broker's id names. Run as the backend (no RLS).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from viewzenix.db import Connection
from viewzenix.domain.model import OrderStatus
from viewzenix.repositories.orders import OPEN_STATUS_LIST, OPEN_STATUSES, status_list

# Open orders the broker has (or had) seen: every open status but pending_new (not sent yet).
AT_THE_BROKER = [s for s in OPEN_STATUSES if s != OrderStatus.PENDING_NEW.value]
# Literal lists (``orders.status_list``): the partial index of open orders stays usable.
_AT_THE_BROKER = status_list(AT_THE_BROKER)

CONFIGS = """
select * from public.webhook_configs
where (%(config_id)s::uuid is null or id = %(config_id)s)
order by created_at, id
"""

GET_CONFIG = "select * from public.webhook_configs where id = %(config_id)s"

# Configs of brokers with their own market (not the paper exchange, which fills only on signals)
# that hold orders the broker has acknowledged and that are still open in our books, or
# pending_new orders no job will send any more (``UNRESOLVED_PENDING``).
CONFIGS_WITH_OPEN_ORDERS = f"""
select c.* from public.webhook_configs c
where c.broker = 'alpaca' and (%(config_id)s::uuid is null or c.id = %(config_id)s)
  and exists (
    select 1 from public.orders o
    where o.config_id = c.id
      and (o.status in {_AT_THE_BROKER} or (%(settle)s::interval is not null
                 and o.status = 'pending_new' and o.created_at < clock_timestamp() - %(settle)s::interval)))
order by c.created_at, c.id
"""  # noqa: S608 (a literal list of our own constants; values are bound)

OPEN_ACKNOWLEDGED = f"""
select client_order_id from public.orders
where config_id = %(config_id)s and status in {_AT_THE_BROKER}
order by created_at, id
"""  # noqa: S608 (a literal list of our own constants; values are bound)

# pending_new orders whose job has ended (or that have no job): nobody else will ask the broker
# about them. Older than ``settle`` so a job that is recording them right now is left alone.
UNRESOLVED_PENDING = """
select o.* from public.orders o
where o.config_id = %(config_id)s and o.status = 'pending_new'
  and o.created_at < clock_timestamp() - %(settle)s::interval
  and not exists (
    select 1 from public.signals s join public.procrastinate_jobs j on j.id = s.job_id
    where s.id = o.signal_id and j.status in ('todo', 'doing'))
  and not exists (
    select 1 from public.signals s
    where s.id = o.signal_id and s.status in ('accepted', 'submitting') and s.job_id is null)
order by o.created_at, o.id
"""

# Configs whose books hold an open day order placed before the close: the candidates (the
# broker decides what actually expires). Crypto symbols are skipped by the broker.
CONFIGS_WITH_DAY_ORDERS = """
select c.* from public.webhook_configs c
where (%(config_id)s::uuid is null or c.id = %(config_id)s)
  and exists (
    select 1 from public.orders o
    where o.config_id = c.id and o.time_in_force = 'day'
      and coalesce(o.submitted_at, o.created_at) < %(close)s
      and o.status in ('submitted', 'accepted', 'partially_filled'))
order by c.created_at, c.id
"""

# Alpaca configs with stored keys that have open orders, or orders that moved recently: the
# ones whose account can report anything we need.
CONFIGS_TO_STREAM = f"""
select c.* from public.webhook_configs c
join private.broker_credentials k on k.config_id = c.id
where c.broker = 'alpaca'
  and exists (
    select 1 from public.orders o
    where o.config_id = c.id
      and (o.status in {OPEN_STATUS_LIST} or o.updated_at > now() - %(recent)s::interval))
order by c.created_at, c.id
"""  # noqa: S608 (a literal list of our own constants; values are bound)

IS_OURS = "select 1 from public.orders where config_id = %(config_id)s and client_order_id = %(id)s"

CLIENT_ORDER_ID_OF_BROKER_ORDER = """
select client_order_id from public.orders
where config_id = %(config_id)s and broker_order_id = %(broker_order_id)s
"""


def configs(conn: Connection, config_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Return every ``webhook_configs`` row (or the one ``config_id``), oldest first."""
    return conn.execute(CONFIGS, {"config_id": config_id}).fetchall()


def config(conn: Connection, config_id: uuid.UUID) -> dict[str, Any] | None:
    """Return one ``webhook_configs`` row, or None."""
    return conn.execute(GET_CONFIG, {"config_id": config_id}).fetchone()


def configs_with_open_orders(
    conn: Connection, config_id: uuid.UUID | None, settle: timedelta | None = None
) -> list[dict[str, Any]]:
    """Return the Alpaca configs with orders open at the broker (or pending_new for over ``settle``)."""
    params = {"config_id": config_id, "settle": settle}
    return conn.execute(CONFIGS_WITH_OPEN_ORDERS, params).fetchall()


def open_acknowledged(conn: Connection, config_id: uuid.UUID) -> list[str]:
    """Return the client_order_ids of the config's open orders the broker has acknowledged."""
    rows = conn.execute(OPEN_ACKNOWLEDGED, {"config_id": config_id})
    return [r["client_order_id"] for r in rows]


def unresolved_pending(conn: Connection, config_id: uuid.UUID, settle: timedelta) -> list[dict[str, Any]]:
    """Return the config's pending_new orders recorded over ``settle`` ago whose job has ended."""
    return conn.execute(UNRESOLVED_PENDING, {"config_id": config_id, "settle": settle}).fetchall()


def configs_with_day_orders(
    conn: Connection, config_id: uuid.UUID | None, close: datetime
) -> list[dict[str, Any]]:
    """Return the configs holding an open day order placed before the session ``close``."""
    return conn.execute(CONFIGS_WITH_DAY_ORDERS, {"config_id": config_id, "close": close}).fetchall()


def configs_to_stream(conn: Connection, recent: timedelta) -> list[dict[str, Any]]:
    """Return the Alpaca configs with keys and an open order or one updated within ``recent``."""
    params = {"recent": recent}
    return conn.execute(CONFIGS_TO_STREAM, params).fetchall()


def is_ours(conn: Connection, config_id: uuid.UUID, client_order_id: str) -> bool:
    """Return whether the config's books hold an order with ``client_order_id``."""
    return conn.execute(IS_OURS, {"config_id": config_id, "id": client_order_id}).fetchone() is not None


def client_order_id_of(conn: Connection, config_id: uuid.UUID, broker_order_id: str | None) -> str | None:
    """Return our client_order_id of the config's order with the broker's id, or None."""
    if broker_order_id is None:
        return None
    row = conn.execute(
        CLIENT_ORDER_ID_OF_BROKER_ORDER, {"config_id": config_id, "broker_order_id": broker_order_id}
    ).fetchone()
    return None if row is None else row["client_order_id"]
