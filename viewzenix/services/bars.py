"""Apply one stored bar: the paper exchange works the symbol's resting orders, our books record it.

The job ``viewzenix.apply_bar`` calls ``apply_bar``. It runs under the symbol's signal lock, so a
bar and the symbol's alerts are applied one at a time in arrival order: an alert sent after a bar
sees that bar's fills and mark, and a bar sent after an alert works the orders it left resting.
No database transaction is open during a broker call. The steps:

1. **Read** (short): the bar (still ``accepted``?), its config, our open orders in the symbol.
2. **Broker, no transaction**: a ``BarDriven`` broker (the paper exchange) works the bar
   (``process_bar``); it remembers the last bar it worked per symbol and does nothing for a bar
   not newer, so a retried job or a replayed bar fills nothing twice. Then each of our open
   orders in the symbol that the answer did not cover and that the broker no longer lists as
   open is looked up by client_order_id — on a retry, the first attempt's fills are found so.
3. **Record** (one transaction): the ledger records every report (idempotent per client_order_id
   and trade_id), marks our position at the close (time = the bar's close), the config's equity
   point at the bar's close is written, and the bar becomes ``applied`` with what it did.

A bar older than the last applied one for its symbol (possible only when two bars race at intake)
is finished ``rejected`` ``bar_out_of_order`` without touching the broker. A broker without the
capability (Alpaca, which sees the market itself) only marks our position and the equity point.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from viewzenix.brokers import BrokerNotAvailable
from viewzenix.brokers.base import BarDriven, BrokerOrder
from viewzenix.db import Database
from viewzenix.domain.model import OrderStatus
from viewzenix.repositories import accounts as accounts_repo
from viewzenix.repositories import bars as bars_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories.webhook_configs import get as get_config
from viewzenix.services import ledger
from viewzenix.services.accounts import Accounts, BrokerFactory, accounts_for

logger = logging.getLogger(__name__)


def apply_bar(
    db: Database,
    bar_id: uuid.UUID,
    *,
    accounts: Accounts | None = None,
    brokers: BrokerFactory | None = None,
    clock: Callable[[], datetime] | None = None,
) -> str:
    """Apply a stored bar once; return its final status (``applied``, ``rejected``, or as found).

    ``accounts``: the seam between brokers and our books (the runtime's; default a new one with
    ``brokers``, which builds the broker of a ``webhook_configs`` row).
    ``clock``: UTC now, when the ledger records (tests). Exceptions (``BrokerUnavailable``) are
    raised for procrastinate to retry; the bar stays ``accepted`` and the retry records the same
    fills once.
    """
    now = (clock or (lambda: datetime.now(UTC)))()
    ids = {"bar_id": bar_id}
    with db.transaction() as conn:
        stored = bars_repo.get(conn, bar_id)
        if stored is None or stored.status != "accepted":
            status = "not_found" if stored is None else stored.status
            logger.info("bar %s: nothing to do", status, extra={"action": "bar_already_done", **ids})
            return status
        config = get_config(conn, stored.config_id)
        bar = stored.bar
        latest = bars_repo.latest_applied(conn, stored.config_id, bar.symbol)
        if latest is not None and latest.interval == bar.interval and bar.start < latest.start:
            message = f"older than the last bar applied ({latest.start.isoformat()})"
            bars_repo.finish(conn, bar_id, "rejected", reject_code="bar_out_of_order", reject_message=message)
            return "rejected"
        open_ids = [r["client_order_id"] for r in orders_repo.open_orders(conn, config["id"], bar.symbol)]
    accounts = accounts_for(db, accounts, brokers)
    book = accounts.book(config)
    try:
        broker = accounts.account(config).broker
    except BrokerNotAvailable as error:
        broker = None
        logger.warning("bar applied without a broker: %s", error, extra={"action": "bar_no_broker", **ids})
    reports: list[BrokerOrder] = []
    if isinstance(broker, BarDriven):
        reports = broker.process_bar(bar)
    covered = {r.client_order_id for r in reports}
    uncovered = [c for c in open_ids if c not in covered]
    if broker is not None and uncovered:
        # Orders still open at the broker have not moved; the others (a retry's earlier fills)
        # are looked up one by one.
        still_open = {r.client_order_id for r in broker.list_open_orders(bar.symbol)}
        for client_order_id in uncovered:
            if client_order_id not in still_open:
                found = broker.get_order_by_client_order_id(client_order_id)
                if found is not None:
                    reports.append(found)
    with db.transaction() as conn:
        fills = 0
        for report in reports:
            recorded = ledger.record_report(conn, book, report, now)
            if recorded is not None:
                fills += len(recorded.new_fills)
        ledger.mark(conn, book, bar.symbol, bar.close, bar.end)
        summary = accounts_repo.summary(conn, book.config_id)
        if summary is not None:
            bars_repo.add_equity_point(
                conn,
                config_id=book.config_id,
                user_id=book.user_id,
                at=bar.end,
                equity=summary["equity"],
                cash=summary["cash"],
            )
        filled = sorted(r.client_order_id for r in reports if r.status is OrderStatus.FILLED)
        message = f"{fills} fill(s)" + (f": filled {', '.join(filled)}" if filled else "")
        bars_repo.finish(conn, bar_id, "applied", outcome_message=message)
    logger.info(
        "bar applied: %s %s %s",
        bar.symbol,
        bar.start.isoformat(),
        message,
        extra={"action": "bar_applied", "config_id": book.config_id, **ids},
    )
    return "applied"
