"""Keep open orders at real brokers in step with our books: status, filled quantity, fills.

A signal's job records what the broker answered while it ran. What happens after — a resting
limit order filling an hour later, a partial fill, Alpaca canceling a day order at the close, a
bracket's take-profit filling — reaches our books here: the worker's periodic job
(``ORDER_SYNC_CRON``, every 30 s by default) asks each Alpaca config's broker for its open
orders, looks up those of ours it no longer lists (they closed meanwhile), and hands every
report to the ledger (``record_report``), which records new fills once each and moves positions
and cash only from them. After a restart the first run catches up on whatever happened while no
worker ran. Orders still ``pending_new`` belong to their signal's job and are left to it.

Running it twice, or alongside a signal's job, changes nothing twice: the ledger is idempotent
and never moves an order back. Broker calls run outside any transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from viewzenix.brokers import BrokerNotAvailable, broker_for
from viewzenix.brokers.base import Broker, BrokerError
from viewzenix.db import Database
from viewzenix.domain.model import OrderStatus
from viewzenix.repositories import orders as orders_repo
from viewzenix.services import ledger
from viewzenix.services.ledger import Book

logger = logging.getLogger(__name__)

BrokerFactory = Callable[[dict[str, Any]], Broker]

# Configs of brokers with their own market (not the paper exchange, which fills only on signals)
# that hold orders the broker has acknowledged and that are still open in our books.
# Open orders the broker has (or had) seen: every open status but pending_new (not sent yet).
AT_THE_BROKER = [s for s in orders_repo.OPEN_STATUSES if s != OrderStatus.PENDING_NEW.value]

CONFIGS_WITH_OPEN_ORDERS = """
select c.* from public.webhook_configs c
where c.broker = 'alpaca' and (%(config_id)s::uuid is null or c.id = %(config_id)s)
  and exists (
    select 1 from public.orders o
    where o.config_id = c.id and o.status = any(%(open)s))
order by c.created_at, c.id
"""

OPEN_ACKNOWLEDGED = """
select client_order_id from public.orders
where config_id = %(config_id)s and status = any(%(open)s)
order by created_at, id
"""


def sync_open_orders(
    db: Database,
    *,
    config_id: Any = None,
    brokers: BrokerFactory | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Bring every open, acknowledged Alpaca order in our books in step with the broker.

    Returns counts: ``configs`` visited, ``orders`` asked about, ``changed`` (orders whose
    status, fill or ids moved), ``fills`` recorded, ``failed`` (configs whose broker could not be
    used or reached; logged, retried on the next run). ``config_id`` limits the run to one.
    """
    make_broker = brokers or (lambda config: broker_for(db, config))
    counts = {"configs": 0, "orders": 0, "changed": 0, "fills": 0, "failed": 0}
    with db.transaction() as conn:
        configs = conn.execute(
            CONFIGS_WITH_OPEN_ORDERS, {"config_id": config_id, "open": AT_THE_BROKER}
        ).fetchall()
    for config in configs:
        counts["configs"] += 1
        try:
            changed, fills, asked = _sync_config(db, config, make_broker(config), now)
        except (BrokerNotAvailable, BrokerError) as error:
            counts["failed"] += 1
            logger.warning(
                "order sync skipped a config: %s",
                error,
                extra={"action": "order_sync_failed", "config_id": config["id"]},
            )
            continue
        counts["changed"] += changed
        counts["fills"] += fills
        counts["orders"] += asked
    if counts["changed"] or counts["failed"]:
        logger.info("order sync: %s", counts, extra={"action": "order_sync", **counts})
    return counts


def _sync_config(
    db: Database, config: dict[str, Any], broker: Broker, now: datetime | None
) -> tuple[int, int, int]:
    with db.transaction() as conn:
        ours = [
            r["client_order_id"]
            for r in conn.execute(OPEN_ACKNOWLEDGED, {"config_id": config["id"], "open": AT_THE_BROKER})
        ]
    if not ours:
        return 0, 0, 0
    listed = {report.client_order_id: report for report in broker.list_open_orders()}
    reports = []
    for client_order_id in ours:
        report = listed.get(client_order_id) or broker.get_order_by_client_order_id(client_order_id)
        if report is not None:
            reports.append(report)
    at = now or datetime.now(UTC)
    book = Book.for_config(config)
    changed = fills = 0
    with db.transaction() as conn:
        for report in reports:
            recorded = ledger.record_report(conn, book, report, at)
            if recorded is not None and recorded.changed:
                changed += 1
                fills += len(recorded.new_fills)
    return changed, fills, len(ours)
