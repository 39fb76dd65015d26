"""Feed a config's market-data source into its paper account: each new bar stored and applied.

For sources that push nothing on the webhook URL (``replay``, ``alpaca``, ``ccxt:<exchange>``),
``MarketFeed`` subscribes to the adapter's bars and stores each one exactly as a bar pushed by
TradingView is stored (``services.bar_intake.store_bar``: duplicates and out-of-order bars
recorded, an accepted bar's ``apply_bar`` job deferred under the symbol's signal lock). So a bar
from any source is applied in order with the symbol's alerts, through the same job and the same
ledger path, and a bar delivered twice by a reconnecting stream is a duplicate, not a second fill.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import procrastinate

from viewzenix.db import Database
from viewzenix.marketdata import Bar, MarketData, Subscription
from viewzenix.repositories import webhook_configs as configs_repo
from viewzenix.services.bar_intake import BarOutcome, store_bar

logger = logging.getLogger(__name__)


class MarketFeed:
    """Bars of ``symbols`` from ``source`` into config ``config_id``'s queue; ``start``/``close``."""

    def __init__(
        self,
        db: Database,
        job_app: procrastinate.App,
        config_id: uuid.UUID,
        source: MarketData,
        symbols: list[str],
    ) -> None:
        self.db = db
        self.job_app = job_app
        self.config_id = config_id
        self.source = source
        self.symbols = symbols
        self.outcomes: dict[str, int] = {}
        self._subscription: Subscription | None = None

    def start(self) -> MarketFeed:
        """Subscribe to the source's bars."""
        self._subscription = self.source.subscribe(self.symbols, self.on_bar)
        return self

    def close(self) -> None:
        """Stop the subscription."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    def on_bar(self, bar: Bar) -> BarOutcome:
        """Store one bar (its own transaction); return what became of it. Raises LookupError."""
        with self.db.transaction() as conn:
            config = _config(conn, self.config_id)
            outcome = store_bar(conn, self.job_app, config, bar, source_ip=None)
        self.outcomes[outcome.status] = self.outcomes.get(outcome.status, 0) + 1
        return outcome


def _config(conn: Any, config_id: uuid.UUID) -> dict[str, Any]:
    row = configs_repo.get_for_intake(conn, config_id, token_hash=None)
    if row is None:
        raise LookupError(f"webhook config {config_id} does not exist")
    return row
