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

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from viewzenix.brokers import broker_for
from viewzenix.brokers.base import Broker, BrokerOrder
from viewzenix.db import Database
from viewzenix.repositories import books as books_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.services import ledger
from viewzenix.services.ledger import Book, Recorded

BrokerFactory = Callable[[dict[str, Any]], Broker]


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
    ) -> None:
        self.db = db
        self._brokers = brokers or self._default_broker
        self._clock = clock

    def _default_broker(self, config: dict[str, Any]) -> Broker:
        from viewzenix.services.broker_credentials import load_alpaca_credentials

        return broker_for(
            self.db,
            config,
            clock=self._clock,
            credentials=lambda: load_alpaca_credentials(self.db, config["id"]),
        )

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

    # --- named selections -----------------------------------------------------------------------

    def configs(self, config_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """Return every config (or the one ``config_id``), oldest first."""
        with self.db.transaction() as conn:
            return books_repo.configs(conn, config_id)

    def configs_with_open_orders(
        self, config_id: uuid.UUID | None = None, *, settled: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Return the Alpaca configs with orders open at the broker (or pending_new before ``settled``)."""
        with self.db.transaction() as conn:
            return books_repo.configs_with_open_orders(conn, config_id, settled)

    def open_acknowledged(self, config_id: uuid.UUID) -> list[str]:
        """Return the client_order_ids of the config's open orders the broker has acknowledged."""
        with self.db.transaction() as conn:
            return books_repo.open_acknowledged(conn, config_id)

    def open_orders(self, config_id: uuid.UUID, symbol: str | None = None) -> list[dict[str, Any]]:
        """Return the config's open orders (in ``symbol``), oldest first."""
        with self.db.transaction() as conn:
            return orders_repo.open_orders(conn, config_id, symbol)

    def unresolved_pending(self, config_id: uuid.UUID, settled: datetime) -> list[dict[str, Any]]:
        """Return the config's pending_new orders recorded before ``settled`` whose job has ended."""
        with self.db.transaction() as conn:
            return books_repo.unresolved_pending(conn, config_id, settled)

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
