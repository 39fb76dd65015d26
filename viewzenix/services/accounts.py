"""Accounts: the one seam between brokers and our books (ARCHITECTURE.md §4).

Built once per process in the runtime (``viewzenix.runtime``) with the broker factory injected
(tests inject fakes). Every caller that feeds our books from a broker — execution, the order
sync, the trade_updates stream, reconciliation, cancels, housekeeping — goes through it:

- ``account(config)``: this config's account, our book (``ledger.Book``) and its broker;
- ``record(book, reports, at)``: the broker's reports of our orders, in one transaction
  through the ledger; the changes returned;
- the named selections the callers need (configs with orders open at the broker, unresolved
  ``pending_new`` orders, configs with day orders, configs to stream), their SQL in
  ``viewzenix.repositories.books``.

None of the callers builds a broker or a book itself, so each rule has one home here.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from viewzenix.brokers import broker_for, market_data_for
from viewzenix.brokers.base import Broker, BrokerOrder
from viewzenix.db import Database
from viewzenix.repositories import books as books_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.services import ledger
from viewzenix.services.ledger import Book, Recorded

if TYPE_CHECKING:
    from viewzenix.brokers.alpaca import AlpacaCredentials
    from viewzenix.marketdata import MarketData

BrokerFactory = Callable[[dict[str, Any]], Broker]

# Who resolves an order the broker may have (docs/guarantees-under-lag.md):
# - a job whose resubmit is refused as a duplicate while the look-up finds nothing asks again
#   after each of these waits (seconds), then raises OrderNotVisibleYet (transient: the job is
#   retried with its backoff, looking the order up first);
LOOKUP_WAITS = (0.25, 0.5, 1.0, 2.0)
# - once that job has ended, the order sync looks up its pending_new orders recorded over
#   PENDING_SETTLE ago (the stream's catch-up runs the same sync);
PENDING_SETTLE = timedelta(minutes=1)
# - an order is closed never_submitted only after NOT_FOUND_ANSWERS "not found" answers, the last
#   at least NOT_FOUND_GRACE after the first, from a broker whose reads lag its writes (Alpaca);
#   a broker that reads its own books (the paper broker) is believed the first time.
NOT_FOUND_ANSWERS = 3
NOT_FOUND_GRACE = timedelta(minutes=15)

# One config's failure is its own: the order sync and each stream go on with the others.
ACCOUNT_FAILURES = Counter(
    "viewzenix_account_failures",
    "Failures of one config's account that were isolated from the others, by part and error class.",
    ["part", "error"],
)

logger = logging.getLogger(__name__)


def isolated_failure(part: str, config_id: uuid.UUID, error: BaseException) -> None:
    """Log and count one config's failure in ``part`` (order_sync, stream_catch_up, stream_record)."""
    ACCOUNT_FAILURES.labels(part, type(error).__name__).inc()
    logger.warning(
        "%s of config %s failed: %s: %s",
        part,
        config_id,
        type(error).__name__,
        error,
        extra={"action": f"{part}_failed", "config_id": config_id},
    )


@dataclass(frozen=True)
class Account:
    """One config's account: its ``webhook_configs`` row, our book and its broker."""

    config: dict[str, Any]
    book: Book
    broker: Broker

    @property
    def config_id(self) -> uuid.UUID:
        return self.book.config_id


class Accounts:
    """Give callers a config's account (our book + its broker), record reports, name selections.

    ``brokers`` builds the broker of a ``webhook_configs`` row (default: the config's adapter,
    ``viewzenix.brokers.broker_for``, Alpaca keys read from our encrypted store); ``clock``: UTC
    now for the paper broker (tests).
    """

    def __init__(
        self,
        db: Database,
        brokers: BrokerFactory | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        lookup_waits: tuple[float, ...] = LOOKUP_WAITS,
    ) -> None:
        self.db = db
        self._brokers = brokers or self._default_broker
        self._clock = clock
        self._sleep = sleep
        self.lookup_waits = lookup_waits

    def _credentials(self, config: dict[str, Any]) -> Callable[[], AlpacaCredentials]:
        from viewzenix.services.broker_credentials import load_alpaca_credentials

        return lambda: load_alpaca_credentials(self.db, config["id"])

    def _default_broker(self, config: dict[str, Any]) -> Broker:
        return broker_for(self.db, config, clock=self._clock, credentials=self._credentials(config))

    def market_data(self, config: dict[str, Any]) -> MarketData | None:
        """Return the ``MarketData`` adapter of a config's ``market_data_source``, or None when its
        bars are pushed (``tradingview``) or replayed, or its Alpaca keys are missing (logged)."""
        return market_data_for(config, self._credentials(config))

    # --- accounts -------------------------------------------------------------------------------

    def book(self, config: dict[str, Any]) -> Book:
        """Return our book of a ``webhook_configs`` row (no broker built)."""
        return Book.for_config(config)

    def account(self, config: dict[str, Any]) -> Account:
        """Return the config's account: our book and its broker.

        Raises BrokerNotAvailable when the config's broker cannot be used (Alpaca without
        stored or readable keys).
        """
        return Account(config=config, book=self.book(config), broker=self._brokers(config))

    def config(self, config_id: uuid.UUID) -> dict[str, Any] | None:
        """Return a ``webhook_configs`` row by id (backend, no RLS), or None."""
        with self.db.transaction() as conn:
            return books_repo.config(conn, config_id)

    # --- recording ------------------------------------------------------------------------------

    def record(
        self,
        book: Book,
        reports: Iterable[BrokerOrder],
        at: datetime,
        *,
        repair: str | None = None,
    ) -> list[Recorded]:
        """Record the broker's reports of the book's orders in one transaction; return the changes.

        One ``Recorded`` per report of an order we hold (reports of orders we lack are skipped:
        reconciliation reports them). Idempotent (``ledger.record_report``).
        """
        reports = list(reports)
        if not reports:
            return []
        out = []
        with self.db.transaction() as conn:
            for report in reports:
                recorded = ledger.record_report(conn, book, report, at, repair=repair)
                if recorded is not None:
                    out.append(recorded)
        return out

    # --- resolving orders the broker may have --------------------------------------------------

    def look_up_existing(self, broker: Broker, client_order_id: str) -> BrokerOrder | None:
        """Look up an order the broker says it has (a duplicate id), again after each wait; or None.

        Alpaca's reads can lag its writes: a look-up right after a timed-out POST may answer 404
        while a resubmit answers "client_order_id must be unique" (FACTS.md).
        """
        found = broker.get_order_by_client_order_id(client_order_id)
        for wait in self.lookup_waits:
            if found is not None:
                break
            self._sleep(wait)
            found = broker.get_order_by_client_order_id(client_order_id)
        return found

    @staticmethod
    def not_found_rule(broker: Broker) -> dict[str, Any]:
        """Return ``ledger.record_not_found``'s ``answers_needed`` and ``grace`` for this broker."""
        if getattr(broker, "reads_lag", True):
            return {"answers_needed": NOT_FOUND_ANSWERS, "grace": NOT_FOUND_GRACE}
        return {"answers_needed": 1, "grace": timedelta(0)}

    def resolve_unsent(
        self, account: Account, at: datetime, settle: timedelta = PENDING_SETTLE
    ) -> dict[str, int]:
        """Ask the broker about the account's pending_new orders whose job has ended; record the answers.

        Found: recorded (the order reaches our books with its fills). Not found: counted, and
        closed ``never_submitted`` only as ``not_found_rule`` says. Returns ``asked``,
        ``found``, ``closed``. Broker calls run outside any transaction.
        """
        with self.db.transaction() as conn:
            pending = books_repo.unresolved_pending(conn, account.config_id, settle)
        if not pending:
            return {"asked": 0, "found": 0, "closed": 0}
        answers = [
            (row, account.broker.get_order_by_client_order_id(row["client_order_id"])) for row in pending
        ]
        found = [report for _, report in answers if report is not None]
        closed = 0
        rule = self.not_found_rule(account.broker)
        with self.db.transaction() as conn:
            for report in found:
                ledger.record_report(conn, account.book, report, at)
            for row, report in answers:
                if report is None and ledger.record_not_found(conn, account.book, row, at, **rule):
                    closed += 1
        return {"asked": len(pending), "found": len(found), "closed": closed}

    # --- named selections -----------------------------------------------------------------------

    def configs(self, config_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """Return every config (or the one ``config_id``), oldest first."""
        with self.db.transaction() as conn:
            return books_repo.configs(conn, config_id)

    def configs_with_open_orders(
        self, config_id: uuid.UUID | None = None, *, settle: timedelta | None = PENDING_SETTLE
    ) -> list[dict[str, Any]]:
        """Return the Alpaca configs with orders open at the broker (or pending_new for over ``settle``)."""
        with self.db.transaction() as conn:
            return books_repo.configs_with_open_orders(conn, config_id, settle)

    def open_acknowledged(self, config_id: uuid.UUID) -> list[str]:
        """Return the client_order_ids of the config's open orders the broker has acknowledged."""
        with self.db.transaction() as conn:
            return books_repo.open_acknowledged(conn, config_id)

    def open_orders(self, config_id: uuid.UUID, symbol: str | None = None) -> list[dict[str, Any]]:
        """Return the config's open orders (in ``symbol``), oldest first."""
        with self.db.transaction() as conn:
            return orders_repo.open_orders(conn, config_id, symbol)

    def unresolved_pending(
        self, config_id: uuid.UUID, settle: timedelta = PENDING_SETTLE
    ) -> list[dict[str, Any]]:
        """Return the config's pending_new orders recorded over ``settle`` ago whose job has ended."""
        with self.db.transaction() as conn:
            return books_repo.unresolved_pending(conn, config_id, settle)

    def configs_with_day_orders(
        self, close: datetime, config_id: uuid.UUID | None = None
    ) -> list[dict[str, Any]]:
        """Return the configs holding an open day order placed before the session ``close``."""
        with self.db.transaction() as conn:
            return books_repo.configs_with_day_orders(conn, config_id, close)

    def configs_to_stream(self, recent: timedelta) -> list[dict[str, Any]]:
        """Return the Alpaca configs with keys and an open order or one updated within ``recent``."""
        with self.db.transaction() as conn:
            return books_repo.configs_to_stream(conn, recent)


def accounts_for(
    db: Database,
    accounts: Accounts | None = None,
    brokers: BrokerFactory | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Accounts:
    """Return ``accounts``, else a new ``Accounts`` on ``db`` with ``brokers`` (callers without a runtime)."""
    if accounts is not None:
        return accounts
    return Accounts(db, brokers, clock=clock)
