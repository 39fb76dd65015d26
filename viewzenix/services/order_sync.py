"""Keep open orders at real brokers in step with our books: status, filled quantity, fills.

A signal's job records what the broker answered while it ran. What happens after — a resting
limit order filling an hour later, a partial fill, Alpaca canceling a day order at the close, a
bracket's take-profit filling — reaches our books here: the worker's periodic job
(``ORDER_SYNC_CRON``, every 30 s by default) asks each Alpaca config's broker for its open
orders, looks up those of ours it no longer lists (they closed meanwhile), and hands every
report to the ledger (``record_report``), which records new fills once each and moves positions
and cash only from them. After a restart the first run catches up on whatever happened while no
worker ran. Orders still ``pending_new`` belong to their signal's job while it may run; once it
has ended they are looked up here too (``Accounts.resolve_unsent``): nobody else would ask.

Running it twice, or alongside a signal's job, changes nothing twice: the ledger is idempotent
and never moves an order back. Broker calls run outside any transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from viewzenix.db import Database
from viewzenix.services.accounts import (
    PENDING_SETTLE,
    Account,
    Accounts,
    BrokerFactory,
    accounts_for,
    isolated_failure,
)

logger = logging.getLogger(__name__)


def sync_open_orders(
    db: Database,
    *,
    config_id: Any = None,
    brokers: BrokerFactory | None = None,
    now: datetime | None = None,
    accounts: Accounts | None = None,
    settle: timedelta = PENDING_SETTLE,
) -> dict[str, int]:
    """Bring every open, acknowledged Alpaca order in our books in step with the broker.

    Returns counts: ``configs`` visited, ``orders`` asked about, ``changed`` (orders whose
    status, fill or ids moved), ``fills`` recorded, ``failed`` (configs whose broker could not be
    used or reached, or whose recording failed: logged with a metric, retried on the next run;
    the other configs go on), ``resolved`` (pending_new orders whose
    job has ended, found at the broker) and ``closed`` (closed never_submitted after repeated
    not-found answers: ``Accounts.resolve_unsent``). ``config_id`` limits the run to one;
    ``settle``: how old a pending_new order must be to be asked about.
    ``accounts``: the seam to brokers (without it, one on ``db`` with ``brokers``).
    """
    accounts = accounts_for(db, accounts, brokers)
    counts = {"configs": 0, "orders": 0, "changed": 0, "fills": 0, "failed": 0, "resolved": 0, "closed": 0}
    for config in accounts.configs_with_open_orders(config_id, settle=settle):
        counts["configs"] += 1
        try:
            account = accounts.account(config)
            changed, fills, asked = _sync_config(accounts, account, now)
            unsent = accounts.resolve_unsent(account, now or datetime.now(UTC), settle)
        except Exception as error:  # one config's failure (broker, database, data) is its own
            counts["failed"] += 1
            isolated_failure("order_sync", config["id"], error)
            continue
        counts["changed"] += changed
        counts["fills"] += fills
        counts["orders"] += asked + unsent["asked"]
        counts["resolved"] += unsent["found"]
        counts["closed"] += unsent["closed"]
    if counts["changed"] or counts["failed"] or counts["resolved"] or counts["closed"]:
        logger.info("order sync: %s", counts, extra={"action": "order_sync", **counts})
    return counts


def _sync_config(accounts: Accounts, account: Account, now: datetime | None) -> tuple[int, int, int]:
    ours = accounts.open_acknowledged(account.config_id)
    if not ours:
        return 0, 0, 0
    broker = account.broker
    listed = {report.client_order_id: report for report in broker.list_open_orders()}
    reports = []
    for client_order_id in ours:
        report = listed.get(client_order_id) or broker.get_order_by_client_order_id(client_order_id)
        if report is not None:
            reports.append(report)
    recorded = [r for r in accounts.record(account.book, reports, now or datetime.now(UTC)) if r.changed]
    return len(recorded), sum(len(r.new_fills) for r in recorded), len(ours)
