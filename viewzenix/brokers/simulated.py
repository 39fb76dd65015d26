"""The simulated (paper) broker: an exchange in Postgres that fills against the prices alerts carry.

Like a remote exchange it keeps its own books, schema ``paper`` (``paper.accounts``,
``paper.orders``, ``paper.fills``, ``paper.positions``; SQL in
``viewzenix.brokers.paper_books``), answers only through the broker port
(``viewzenix.brokers.base``) and never touches our books (``public.*``): its settings are passed
in. Every public method runs in its own transaction, committed before it returns, so what it
reports is already on the exchange's books, and a caller's rollback cannot undo it. The prices
it knows are ``OrderRequest.reference_price`` (the signal's price), the prices later signals
bring through ``process_price``, the bars of its config's market data (``process_bar``: pushed
by TradingView, replayed, or from Alpaca / ccxt) and, for a market order without a price, the
config's ``MarketData`` quote (``docs/market-data.md``).

Statuses (the exchange's vocabulary, a subset of ``OrderStatus``): held, accepted (working),
partially_filled, filled, rejected, canceled, expired. There is no pending_new or submitted at
the exchange: an order it takes is accepted at once (or held, or refused).

Fill rules (document of record; prices in the quote currency, Decimal throughout)
  - Slippage: a buy fills at price * (1 + slippage_bps / 10000), a sell at
    price * (1 - slippage_bps / 10000). Commission per fill = notional * commission_rate +
    commission_fixed, paid from cash.
  - Crypto fee (Alpaca's, in the asset received; ``crypto_fee_rate``, default its base-tier
    taker 0.25 %): a buy's position grows by qty * (1 - rate) (the fill's ``fee_qty``), a sell
    adds notional * rate to its commission.
  - market: fills at once at the slipped reference price; without one, at the market data's
    quote (ask for buys, bid for sells), else its last trade, else the last bar's close; data
    older than ``max_quote_age_seconds`` is REJECTED (``stale_market_data``), no price at all is
    REJECTED (``no_market_price``). An order beyond buying power is REJECTED
    (``insufficient_buying_power``), as Alpaca's paper accounts do.
  - limit: marketable when price ≤ limit (buy) or price ≥ limit (sell); fills at the slipped
    *market price*, capped at the limit (never worse than the limit), not at the limit itself.
  - stop: triggers when price ≥ stop (buy) or price ≤ stop (sell); fills like a market order at
    the slipped price that triggered it (a gap through the stop fills at the gapped price).
  - stop_limit: triggers like a stop (recorded in ``paper.orders.triggered_at``), then behaves
    as a limit order, also at later prices.
  - trailing_stop: ``stop_price`` holds the current trigger, as Alpaca's order does. It starts
    at price - trail (sell) or price + trail (buy) from the first known price (trail =
    ``trail_price``, or price * trail_percent / 100) and only ever ratchets with the high
    (sell) or low (buy) water mark of later prices; it triggers like a stop.
  - Orders that are not marketable when submitted rest (ACCEPTED) and are checked against the
    price of every later signal for the same symbol (``process_price``). At submission the
    price is the reference price, else the symbol's last known price. IOC and FOK orders that
    cannot fill at once are CANCELED (``not_marketable``). DAY orders still resting expire
    (EXPIRED) at their market's session close from ``exchange_calendars`` (holidays and early
    closes included; ``domain.sessions.session_close_after``; crypto never closes), by
    ``expire_day_orders`` or when a later price or bar arrives past that close.
  - Take-profit / stop-loss legs (``parent_client_order_id``) wait as HELD until the parent
    fills, then rest (ACCEPTED) and are checked at once; a leg filling cancels its open sibling
    legs (OCO). Canceling, rejecting or expiring a parent cancels its waiting legs.
  - Orders fill whole (no partial fills). The mark (``paper.positions.last_price``) is the
    market price, not the slipped fill price, so equity shows the slippage cost at once.

Refusals at submission, checked in this order: an unknown parent → REJECTED
(``parent_not_found``); qty ≤ 0, a price its type needs missing, or a leg for another symbol
than its parent's → REJECTED (``invalid_order``; legs too, before they are held); a parent
already canceled, rejected or expired → the leg is CANCELED (``parent_not_filled``); a market
order without a reference price → REJECTED (``no_market_price``). A cancel through the port
has status_code ``canceled``; an OCO cancel ``oco``.

Positions: signed qty; increases move the average entry price; reductions realise
(exit - avg) * qty for longs, (avg - exit) * qty for shorts (commissions are not deducted from
realised P&L, they leave cash separately); a flip through zero opens the new side at the fill
price (``viewzenix.domain.positions``). Cash: buy -= qty * px + commission, sell += qty * px -
commission. Equity = cash + Σ qty * mark (shorts negative; mark = last_price, else
avg_entry_price). Shorts are allowed (the engine checked ``allow_short``).

Concurrency: calls for one account may run in parallel (jobs for different symbols of one
config). Every call that changes a symbol's orders first locks that symbol's
``paper.positions`` row (created at zero on first use), then order rows, then the account row
(cash changes are atomic increments, ``cash = cash + delta``). Calls for one symbol therefore
run one after the other; calls for different symbols only meet on the account row: an order that
opens exposure locks it for its buying-power check (so two such orders are checked in turn, the
second against the first's fill), a fill when it adds its cash, each until the call commits.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg

from viewzenix.brokers import paper_books as books
from viewzenix.brokers.base import (
    BrokerFill,
    BrokerName,
    BrokerOrder,
    BrokerUnavailable,
    DuplicateOrder,
    OrderNotCancelable,
    OrderNotFound,
)
from viewzenix.brokers.paper_books import PaperOrder
from viewzenix.db import Connection, Database, ending_transaction
from viewzenix.domain.engine import OrderRequest
from viewzenix.domain.model import (
    AccountState,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionState,
    TimeInForce,
    TradingSettings,
)
from viewzenix.domain.positions import apply_fill, cash_delta
from viewzenix.domain.sessions import is_crypto, session_close_after
from viewzenix.marketdata import Bar, MarketData, MarketDataUnavailable, price_of

__all__ = ["NO_MARKET_PRICE_MESSAGE", "SimulatedBroker", "fill_commission", "slipped_price"]

logger = logging.getLogger(__name__)

_ZERO = Decimal(0)
_BPS = Decimal(10000)
_HUNDRED = Decimal(100)

NO_MARKET_PRICE_MESSAGE = (
    "The simulated broker has no price for this symbol yet: a {order_type} order fills at the "
    "alert's price, else at the latest quote, trade or bar of the config's market data, and there "
    'is none. Add a price to the alert (e.g. "price": "{{{{close}}}}") or push bars first.'
)
_STOP_TYPES = (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)
# What one exchange call's transaction has read or done (``_transaction``): the position rows it
# locked (by symbol), the orders it placed (only ``submit_order`` places one) and their fills.
_TX: ContextVar[dict[str, Any] | None] = ContextVar("viewzenix_paper_transaction", default=None)


def _new_tx() -> dict[str, Any]:
    """A transaction's record: positions locked, orders placed and their fills."""
    return {"positions": {}, "placed": set(), "fills": {}}


def _tx() -> dict[str, Any]:
    """This transaction's record (``_TX``); outside ``_transaction`` a fresh one, remembering nothing."""
    return _TX.get() or _new_tx()


def fill_commission(settings: TradingSettings, qty: Decimal, px: Decimal) -> Decimal:
    """Return the commission of one fill: qty * px * commission_rate + commission_fixed."""
    return qty * px * settings.commission_rate + settings.commission_fixed


def slipped_price(settings: TradingSettings, side: OrderSide | str, price: Decimal) -> Decimal:
    """Return ``price`` moved against the trader by ``slippage_bps`` (buy up, sell down)."""
    slip = settings.slippage_bps / _BPS
    if OrderSide(side) is OrderSide.BUY:
        return price * (1 + slip)
    return price * (1 - slip)


class SimulatedBroker:
    """Trade one webhook config's paper account on the paper exchange (schema ``paper``).

    ``settings`` supplies starting_cash, slippage_bps, commission_rate and commission_fixed
    (account currency). ``clock`` returns the UTC time of submits and cancels (submitted_at,
    filled_at of an immediate fill, canceled_at); ``process_price`` uses the price's own time.
    Implements ``Broker``, ``PriceDriven`` and ``SessionDriven``; every method runs in its own
    transaction on ``db`` and raises BrokerUnavailable when Postgres cannot be reached or the transaction
    fails operationally (pool timeout, lost connection, deadlock): the call was rolled back,
    unless its COMMIT had gone out (the connection broke while committing, or after a submit's
    fill, which carries the COMMIT), so look an order up before submitting again.
    """

    name = BrokerName.SIMULATED
    reads_lag = False  # it reads its own books
    # Its transactions commit without waiting for the WAL flush (``_transaction``).
    synchronous_commit = False
    # Its books live on our server: its commits and ours share one WAL (docs/scaling.md), so a
    # crash of Postgres loses a suffix of both, never one of ours without its own before it.
    commits_in_our_wal = True

    def __init__(
        self,
        db: Database,
        *,
        config_id: uuid.UUID,
        settings: TradingSettings,
        clock: Callable[[], datetime] | None = None,
        market_data: MarketData | None = None,
    ) -> None:
        self.db = db
        self.config_id = config_id
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.market_data = market_data

    @classmethod
    def for_config(
        cls,
        db: Database,
        config_row: dict[str, Any],
        clock: Callable[[], datetime] | None = None,
        market_data: MarketData | None = None,
    ) -> SimulatedBroker:
        """Build the broker of a ``public.webhook_configs`` row (its id and trading settings).

        ``market_data``: the config's source of quotes (None: the exchange's own marks, from the
        bars and prices it was given).
        """
        from viewzenix.repositories.webhook_configs import trading_settings

        return cls(
            db,
            config_id=config_row["id"],
            settings=trading_settings(config_row),
            clock=clock,
            market_data=market_data,
        )

    # --- Broker ------------------------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        """Place one order and work it at once; return it as it stands after submission.

        Market orders fill or are REJECTED at once; others fill at once when marketable, else
        rest (ACCEPTED, or CANCELED ``not_marketable`` for IOC/FOK); legs wait HELD for their
        parent. Refusals are reports (REJECTED/CANCELED with a status_code), not exceptions.
        Raises DuplicateOrder when the config already has ``request.client_order_id``, even a
        canceled one (Alpaca: unique per account forever), BrokerUnavailable.
        """
        now = self.clock()
        with self._transaction() as conn:
            self._lock_position(conn, request.symbol)
            order = self._place(conn, request, now)
            return self._report(conn, order)

    def cancel_order(self, client_order_id: str) -> BrokerOrder:
        """Cancel an open order and its held legs; return it (status_code ``canceled``).

        Canceling a canceled order returns it unchanged. Raises OrderNotFound,
        OrderNotCancelable (filled, rejected, expired), BrokerUnavailable.
        """
        now = self.clock()
        with self._transaction() as conn:
            found = books.get_by_client_order_id(conn, self.config_id, client_order_id)
            if found is None:
                raise OrderNotFound(client_order_id=client_order_id)
            self._lock_position(conn, found.symbol)
            order = books.get_by_client_order_id(conn, self.config_id, client_order_id, for_update=True)
            assert order is not None  # orders are never deleted while the config exists
            if order.status is OrderStatus.CANCELED:
                return self._report(conn, order)
            if order.status.is_terminal:
                raise OrderNotCancelable(
                    f"order {client_order_id} is {order.status} and cannot be canceled",
                    client_order_id=client_order_id,
                )
            order = self._cancel(conn, order, now, code="canceled", message=None)
            return self._report(conn, order)

    def get_order_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        """Return the config's order with this client_order_id, or None. Raises BrokerUnavailable.

        The report carries all the order's fills. Alpaca: ``GET /v2/orders:by_client_order_id``.
        """
        with self._transaction() as conn:
            order = books.get_by_client_order_id(conn, self.config_id, client_order_id)
            return None if order is None else self._report(conn, order)

    def list_open_orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        """Return the open orders (held, accepted, partially_filled), of one symbol or all, oldest first.

        Raises BrokerUnavailable.
        """
        with self._transaction() as conn:
            return self._reports(conn, books.open_orders(conn, self.config_id, symbol))

    def list_orders(self, after: datetime | None = None) -> list[BrokerOrder]:
        """Return every order, open and closed, submitted after ``after`` (UTC), oldest first.

        For reconciliation. Raises BrokerUnavailable.
        """
        with self._transaction() as conn:
            return self._reports(conn, books.all_orders(conn, self.config_id, after))

    def get_positions(self) -> list[PositionState]:
        """Return the paper account's non-flat positions by symbol: signed qty, avg entry price.

        Raises BrokerUnavailable.
        """
        with self._transaction() as conn:
            return [
                PositionState(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price)
                for p in books.open_positions(conn, self.config_id)
            ]

    def get_account(self) -> AccountState:
        """Return cash and equity, opening the paper account with starting_cash on first use.

        Equity = cash + Σ qty × mark (mark = last_price, else avg_entry_price), account
        currency. Raises BrokerUnavailable.
        """
        with self._transaction() as conn:
            books.ensure_account(conn, self.config_id, self.settings.starting_cash)
            return books.account_state(conn, self.config_id)

    # --- PriceDriven -------------------------------------------------------------------------

    def process_price(self, symbol: str, price: Decimal, at: datetime) -> list[BrokerOrder]:
        """Mark ``symbol`` at ``price`` and work its resting orders against it, oldest first.

        Fills what ``price`` (quote currency) crosses and, in turn, activates legs and cancels
        OCO siblings; ratchets trailing stops; expires DAY orders from an earlier New York
        date. ``at``: UTC time of the price (filled_at, canceled_at). Returns, oldest first,
        every order of ``symbol`` open before the call whose report changed during it (a
        stop_limit's trigger alone changes no report). A price ≤ 0 is ignored (returns []).
        Raises BrokerUnavailable.
        """
        if price <= 0:
            return []
        # The usual case, nothing resting in the symbol: the mark alone, no transaction. Else
        # (or the symbol's first price) the mark and the working of its orders in one.
        if not self._mark_alone(symbol, price, at):
            return []
        with self._transaction() as conn:
            # Marking locks the row as lock_position would; a first price creates it first. The
            # orders read with the mark predate that lock: a first order of the symbol placed by a
            # transaction that created the row meanwhile is read again once we hold it.
            marked, opened = books.mark_existing_and_open_orders(conn, self.config_id, symbol, price, at)
            if marked is None:
                self._lock_position(conn, symbol)
                marked = books.mark_existing(conn, self.config_id, symbol, price, at)
                opened = books.open_orders(conn, self.config_id, symbol)
            _tx()["positions"][symbol] = marked
            if not opened:
                return []  # nothing resting: the mark is all this price changes
            before = self._reports(conn, opened)
            for resting in books.lock_working(conn, self.config_id, symbol):
                order = books.get_order(conn, resting.id)
                if order.status not in books.WORKING_STATUSES:
                    continue  # filled or canceled meanwhile (OCO)
                if self._expired(order, at):
                    self._expire(conn, order, at)
                else:
                    self._work(conn, order, price, at)
            after = self._reports(conn, books.orders_by_id(conn, (o.id for o in opened)))
        old = {report.client_order_id: report for report in before}
        return [report for report in after if report != old[report.client_order_id]]

    # --- BarDriven ---------------------------------------------------------------------------

    def process_bar(self, bar: Bar) -> list[BrokerOrder]:
        """Work ``bar.symbol``'s resting orders against one bar's range; mark it at the close.

        Rules (document of record, as backtesting.py fills on OHLC bars):
          - limit: a buy fills when low ≤ limit, at the limit, or at the open when the bar opens
            at or below it (a gap through); a sell mirrors (high ≥ limit). Never worse than the
            limit, slippage included.
          - stop: a buy triggers when high ≥ stop and fills at the stop, or at the open when the
            bar opens at or above it; a sell mirrors (low ≤ stop). Slippage is added.
          - stop_limit: triggers like a stop, then fills like a limit: at the trigger price when
            it is within the limit, else at the limit when the rest of the bar reaches it.
          - trailing_stop: checked with its current trigger like a stop; when not triggered, its
            trigger moves to high − trail (sell) / low + trail (buy) when that is tighter, so it
            follows the highs (lows) bar by bar. With no trigger yet it starts from the open.
          - bracket legs: when one bar crosses both the stop loss and the take profit of one
            entry, the config's ``bracket_conflict`` decides: ``stop_first`` (default, as
            backtesting.py assumes: the bar's path is unknown, so the worse outcome) fills the
            stop loss and cancels the target (OCO); ``target_first`` the reverse.
          - DAY orders whose session closed (``viewzenix.domain.sessions``) before the bar
            opened expire instead of filling.
          - Fills are timed at the bar's close (``bar.end``); the mark becomes the close.
        A bar whose open time is not after the last bar worked for the symbol does nothing
        (returns []), so a replayed bar or a retried job fills nothing twice. Returns, oldest
        first, every order of the symbol open before the call whose report changed.
        Raises BrokerUnavailable.
        """
        at = bar.end
        with self._transaction() as conn:
            position = self._lock_position(conn, bar.symbol)
            if position.last_bar_at is not None and bar.start <= position.last_bar_at:
                return []
            opened = books.open_orders(conn, self.config_id, bar.symbol)
            before = self._reports(conn, opened)
            working = books.lock_working(conn, self.config_id, bar.symbol)
            for resting in sorted(working, key=self._bar_priority):
                order = books.get_order(conn, resting.id)
                if order.status not in books.WORKING_STATUSES:
                    continue  # filled or canceled meanwhile (OCO)
                if self._expired(order, bar.start):
                    self._expire(conn, order, at, reason="its session closed before this bar")
                else:
                    self._work_bar(conn, order, bar)
            books.mark(conn, self.config_id, bar.symbol, bar.close, at, bar_at=bar.start)
            _tx()["positions"].pop(bar.symbol, None)
            after = self._reports(conn, books.orders_by_id(conn, (o.id for o in opened)))
        old = {report.client_order_id: report for report in before}
        return [report for report in after if report != old[report.client_order_id]]

    def _bar_priority(self, order: PaperOrder) -> int:
        """Legs are worked stop-type first (``stop_first``) or limits first; others keep their order."""
        if order.parent_order_id is None:
            return 0
        stop_leg = order.order_type in _STOP_TYPES
        if self.settings.bracket_conflict == "target_first":
            return 1 if stop_leg else 0
        return 0 if stop_leg else 1

    def _work_bar(self, conn: Connection, order: PaperOrder, bar: Bar) -> PaperOrder:
        buy = order.side is OrderSide.BUY
        at = bar.end
        if order.order_type is OrderType.MARKET:
            return self._fill(conn, order, slipped_price(self.settings, order.side, bar.open), bar.close, at)
        if order.order_type is OrderType.LIMIT:
            return self._fill_limit_on_bar(conn, order, bar, bar.open)
        if order.order_type is OrderType.STOP:
            trigger = _stop_touch(buy, bar, order.stop_price)
            if trigger is None:
                return order
            return self._fill(conn, order, slipped_price(self.settings, order.side, trigger), bar.close, at)
        if order.order_type is OrderType.STOP_LIMIT:
            if order.triggered_at is not None:
                return self._fill_limit_on_bar(conn, order, bar, bar.open)
            trigger = _stop_touch(buy, bar, order.stop_price)
            if trigger is None:
                return order
            order = books.set_triggered(conn, order.id, at)
            return self._fill_limit_on_bar(conn, order, bar, trigger)
        return self._work_trailing_bar(conn, order, bar)

    def _fill_limit_on_bar(self, conn: Connection, order: PaperOrder, bar: Bar, first: Decimal) -> PaperOrder:
        """Fill a limit at ``first`` (the open, or a stop_limit's trigger) if within it, else at the limit."""
        limit = order.limit_price
        assert limit is not None
        buy = order.side is OrderSide.BUY
        if (first <= limit) if buy else (first >= limit):
            px = first
        elif (bar.low <= limit) if buy else (bar.high >= limit):
            px = limit
        else:
            return order
        slipped = slipped_price(self.settings, order.side, px)
        px = min(slipped, limit) if buy else max(slipped, limit)
        return self._fill(conn, order, px, bar.close, bar.end)

    def _work_trailing_bar(self, conn: Connection, order: PaperOrder, bar: Bar) -> PaperOrder:
        buy = order.side is OrderSide.BUY
        if order.trail_price is not None:
            trail = order.trail_price
        else:
            trail = bar.open * (order.trail_percent or _ZERO) / _HUNDRED
        stop = order.stop_price
        if stop is None:
            stop = bar.open + trail if buy else bar.open - trail
            order = books.set_stop_price(conn, order.id, stop)
        trigger = _stop_touch(buy, bar, stop)
        if trigger is not None:
            return self._fill(
                conn, order, slipped_price(self.settings, order.side, trigger), bar.close, bar.end
            )
        if order.trail_percent is not None and order.trail_price is None:
            trail = (bar.low if buy else bar.high) * order.trail_percent / _HUNDRED
        candidate = bar.low + trail if buy else bar.high - trail
        if candidate < stop if buy else candidate > stop:
            order = books.set_stop_price(conn, order.id, candidate)
        return order

    # --- SessionDriven -----------------------------------------------------------------------

    def expire_day_orders(self, session_close: datetime, at: datetime) -> list[BrokerOrder]:
        """Expire the working DAY orders submitted before ``session_close`` (UTC); return the changes.

        The session's close is US equities' (``viewzenix.domain.sessions``); crypto symbols have
        none and are skipped. Expiring a parent cancels its held legs (``parent_not_filled``).
        Each symbol is handled like ``process_price``: its position row locked first, in one
        transaction. Returns, oldest first, every order whose report changed.
        Raises BrokerUnavailable.
        """
        with self._transaction() as conn:
            symbols = books.symbols_with_day_orders_before(conn, self.config_id, session_close)
        changed: list[BrokerOrder] = []
        for symbol in symbols:
            if is_crypto(symbol):
                continue
            with self._transaction() as conn:
                self._lock_position(conn, symbol)
                opened = books.open_orders(conn, self.config_id, symbol)
                before = {r.client_order_id: r for r in self._reports(conn, opened)}
                for order in books.lock_working(conn, self.config_id, symbol):
                    current = books.get_order(conn, order.id)
                    if (
                        current.time_in_force is TimeInForce.DAY
                        and current.status in books.WORKING_STATUSES
                        and current.submitted_at < session_close
                        and self._expired(current, at)
                    ):
                        self._expire(conn, current, at, reason="at the session close")
                after = self._reports(conn, books.orders_by_id(conn, (o.id for o in opened)))
            changed += [r for r in after if r != before[r.client_order_id]]
        return changed

    # --- placing an order --------------------------------------------------------------------

    def _place(self, conn: Connection, request: OrderRequest, now: datetime) -> PaperOrder:
        """Insert the order with its verdict, then work it when accepted (the symbol is locked)."""
        parent = None
        if request.parent_client_order_id is not None:
            parent = books.get_by_client_order_id(
                conn, self.config_id, request.parent_client_order_id, for_update=True
            )
        market = None
        if request.order_type is OrderType.MARKET and not _positive(request.reference_price):
            market = self._market_price(conn, request, now)
        status, code, message = self._verdict(request, parent, market, now)
        opening = _ZERO  # what it opens: held against buying power while open (accepted orders)
        if status is OrderStatus.ACCEPTED:
            opening = self._opening_qty(conn, request)
            status, code, message = self._buying_power(conn, request, market, opening)
        order = books.insert_order(
            conn,
            request,
            config_id=self.config_id,
            broker_order_id=f"sim-{uuid.uuid4()}",
            parent_order_id=None if parent is None else parent.id,
            status=status,
            status_code=code,
            status_message=message,
            submitted_at=now,
            canceled_at=now if status is OrderStatus.CANCELED else None,
            opening_qty=opening if status is OrderStatus.ACCEPTED else _ZERO,
        )
        if order is None:  # Alpaca: client_order_id is unique per account forever
            raise DuplicateOrder(client_order_id=request.client_order_id)
        _tx()["placed"].add(order.id)
        logger.info(
            "simulated order %s: %s %s %s %s",
            status,
            request.side,
            request.qty,
            request.symbol,
            request.order_type,
            extra=self._log(f"order_{status}", order),
        )
        if status is not OrderStatus.ACCEPTED:
            return order
        price = market[0] if market is not None else self._price_for(conn, request)
        return self._work(conn, order, price, now)

    def _verdict(
        self,
        request: OrderRequest,
        parent: PaperOrder | None,
        market: tuple[Decimal, datetime] | None = None,
        now: datetime | None = None,
    ) -> tuple[OrderStatus, str | None, str | None]:
        """The status a new order starts in, with the code and message of a refusal."""
        if request.parent_client_order_id is not None and parent is None:
            return (
                OrderStatus.REJECTED,
                "parent_not_found",
                f"parent order {request.parent_client_order_id} does not exist",
            )
        problem = _invalid_request(request)
        if problem is None and parent is not None and parent.symbol != request.symbol:
            problem = f"a leg must trade its parent's symbol {parent.symbol}, not {request.symbol}"
        if problem is not None:
            return OrderStatus.REJECTED, "invalid_order", problem
        if parent is not None and parent.status in books.OPEN_STATUSES:
            return OrderStatus.HELD, None, None
        if parent is not None and parent.status is not OrderStatus.FILLED:
            message = f"parent order {parent.client_order_id} is {parent.status}, not filled"
            return OrderStatus.CANCELED, "parent_not_filled", message
        if request.order_type is OrderType.MARKET and not _positive(request.reference_price):
            if market is None:
                message = NO_MARKET_PRICE_MESSAGE.format(order_type=request.order_type)
                return OrderStatus.REJECTED, "no_market_price", message
            max_age = self.settings.max_quote_age_seconds
            age = ((now or self.clock()) - market[1]).total_seconds()
            if max_age is not None and age > max_age:
                message = (
                    f"the latest price of {request.symbol} ({market[0]} at {market[1].isoformat()}) is "
                    f"{age:.0f}s old, older than max_quote_age_seconds {max_age}: not used"
                )
                return OrderStatus.REJECTED, "stale_market_data", message
        return OrderStatus.ACCEPTED, None, None

    def _market_price(
        self, conn: Connection, request: OrderRequest, now: datetime
    ) -> tuple[Decimal, datetime] | None:
        """The price a market order without a reference fills at, and its time.

        The market-data source's quote (ask to buy, bid to sell), else its last trade, else the
        exchange's own mark (the close of the last bar it worked, or the last alert price); a
        source that does not answer is logged and the mark used.
        """
        buy = request.side is OrderSide.BUY
        if self.market_data is not None:
            try:
                found = price_of(
                    self.market_data.latest_quote(request.symbol),
                    self.market_data.latest_trade(request.symbol),
                    None,
                    buy=buy,
                )
            except MarketDataUnavailable as error:  # the source is down: fall back to our own mark
                logger.warning(
                    "market data unavailable: %s",
                    error,
                    extra={"action": "market_data_unavailable", "config_id": self.config_id},
                )
                found = None
            if found is not None:
                return found
        position = self._lock_position(conn, request.symbol)
        if position.last_price is not None and position.last_price > 0:
            return position.last_price, position.last_price_at or now
        return None

    def _opening_qty(self, conn: Connection, request: OrderRequest) -> Decimal:
        """The part of ``request``'s quantity that opens a position or adds to one (shares).

        A buy beyond what covers the short held, a sell beyond what closes the long held
        (Alpaca's "buy long" and "sell short"; its "buy to cover" and "sell long" free nothing
        until they fill): short 3, a buy of 8 opens 5. Against the position now, not counting the
        symbol's other open orders. 0 for a leg, which closes. Locks the position (held to the
        call's end).
        """
        if request.parent_client_order_id is not None:
            return _ZERO
        position = self._lock_position(conn, request.symbol)
        closable = -position.qty if request.side is OrderSide.BUY else position.qty
        return max(request.qty - max(closable, _ZERO), _ZERO)

    def _buying_power(
        self,
        conn: Connection,
        request: OrderRequest,
        market: tuple[Decimal, datetime] | None,
        opening: Decimal,
    ) -> tuple[OrderStatus, str | None, str | None]:
        """Refuse an order that would open more than the account can carry, as Alpaca does.

        Buying power = equity × margin_multiplier (1 = a cash account: its cash) − Σ |qty × mark|
        of the positions held − what open orders hold (their unfilled opening part at their
        limit, else stop, price: ``paper_books.account_state_and_exposure``). Only ``opening``,
        the part of the order that opens or adds exposure (``_opening_qty``), counts, priced at
        its limit (limit, stop_limit), stop (stop), else the market price; an order that opens
        nothing (a leg, a close) and one without any known price are not checked. Alpaca
        ("Placing Orders", Buying Power): orders beyond buying power are rejected "insufficient
        buying power", and open buy long and sell short orders reduce it until they fill or end.
        The account's row is locked for the check, until this call commits: two orders of one
        account at once (two jobs, two symbols) are checked in turn, the second against the
        first's fill.
        """
        if opening <= 0:
            return OrderStatus.ACCEPTED, None, None
        price = request.limit_price or request.stop_price
        if price is None:
            price = request.reference_price if _positive(request.reference_price) else None
        if price is None and market is not None:
            price = market[0]
        if price is None:
            price = self._lock_position(conn, request.symbol).last_price
        if price is None or price <= 0:
            return OrderStatus.ACCEPTED, None, None
        state, exposure, reserved = books.account_state_and_exposure(
            conn, self.config_id, self.settings.starting_cash
        )
        buying_power = state.equity * self.settings.margin_multiplier - exposure - reserved
        needed = opening * price
        if needed <= buying_power:
            return OrderStatus.ACCEPTED, None, None
        held = f", held by open orders {reserved:.2f}" if reserved > 0 else ""
        message = (
            f"insufficient buying power: {request.side} {opening} {request.symbol} at {price} needs "
            f"{needed:.2f}, buying power is {max(buying_power, _ZERO):.2f} (equity {state.equity:.2f}, "
            f"margin multiplier {self.settings.margin_multiplier}{held})"
        )
        return OrderStatus.REJECTED, "insufficient_buying_power", message

    def _price_for(self, conn: Connection, request: OrderRequest) -> Decimal | None:
        """The price an order is checked against at submission: reference, else the mark.

        A reference price that is not positive counts as none.
        """
        if request.reference_price is not None and request.reference_price > 0:
            return request.reference_price
        if request.order_type is OrderType.MARKET:
            return None
        return self._lock_position(conn, request.symbol).last_price

    # --- working an order --------------------------------------------------------------------

    def _work(self, conn: Connection, order: PaperOrder, price: Decimal | None, at: datetime) -> PaperOrder:
        """Check an ACCEPTED order against ``price``: fill, trigger, ratchet, or let it rest."""
        if price is None:
            return self._unfilled(conn, order, at)
        buy = order.side is OrderSide.BUY
        if order.order_type is OrderType.MARKET:
            return self._fill(conn, order, slipped_price(self.settings, order.side, price), price, at)
        if order.order_type is OrderType.LIMIT:
            return self._work_limit(conn, order, price, at)
        if order.order_type is OrderType.STOP:
            if _crosses_stop(buy, price, order.stop_price):
                return self._fill(conn, order, slipped_price(self.settings, order.side, price), price, at)
            return self._unfilled(conn, order, at)
        if order.order_type is OrderType.STOP_LIMIT:
            if order.triggered_at is None and _crosses_stop(buy, price, order.stop_price):
                order = books.set_triggered(conn, order.id, at)
                logger.info("simulated stop_limit triggered", extra=self._log("order_triggered", order))
            if order.triggered_at is not None:
                return self._work_limit(conn, order, price, at)
            return self._unfilled(conn, order, at)
        return self._work_trailing(conn, order, price, at)

    def _work_limit(self, conn: Connection, order: PaperOrder, price: Decimal, at: datetime) -> PaperOrder:
        limit = order.limit_price
        assert limit is not None  # _invalid_request refused a limit order without one
        slipped = slipped_price(self.settings, order.side, price)
        if order.side is OrderSide.BUY and price <= limit:
            return self._fill(conn, order, min(slipped, limit), price, at)
        if order.side is OrderSide.SELL and price >= limit:
            return self._fill(conn, order, max(slipped, limit), price, at)
        return self._unfilled(conn, order, at)

    def _work_trailing(self, conn: Connection, order: PaperOrder, price: Decimal, at: datetime) -> PaperOrder:
        buy = order.side is OrderSide.BUY
        stop = order.stop_price
        if stop is not None and _crosses_stop(buy, price, stop):
            return self._fill(conn, order, slipped_price(self.settings, order.side, price), price, at)
        if order.trail_price is not None:
            trail = order.trail_price
        else:
            trail = price * (order.trail_percent or _ZERO) / _HUNDRED
        candidate = price + trail if buy else price - trail
        if stop is None or (candidate < stop if buy else candidate > stop):
            order = books.set_stop_price(conn, order.id, candidate)
            if _crosses_stop(buy, price, candidate):  # a zero trail triggers at once
                return self._fill(conn, order, slipped_price(self.settings, order.side, price), price, at)
        return self._unfilled(conn, order, at)

    def _unfilled(self, conn: Connection, order: PaperOrder, at: datetime) -> PaperOrder:
        """An order that could not fill now: IOC/FOK are canceled, the rest keep resting."""
        if order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            return self._cancel(
                conn,
                order,
                at,
                code="not_marketable",
                message=f"{order.time_in_force} order could not fill at once at the current price",
            )
        return order

    def _fill(
        self, conn: Connection, order: PaperOrder, px: Decimal, market_price: Decimal, at: datetime
    ) -> PaperOrder:
        """Fill the order's remaining qty at ``px``: fill row, position, cash, then OCO and legs."""
        qty = order.qty - order.filled_qty
        commission = fill_commission(self.settings, qty, px)
        fee_qty = Decimal(0)
        if is_crypto(order.symbol):  # Alpaca's crypto fee, in the asset received
            if order.side is OrderSide.BUY:
                fee_qty = qty * self.settings.crypto_fee_rate
            else:
                commission += qty * px * self.settings.crypto_fee_rate
        # An order with nothing filled has no fill yet (fills move filled_qty): no count needed.
        count = 0 if order.filled_qty == 0 else books.count_fills(conn, order.id)
        trade_id = f"{order.client_order_id}-{count + 1}"

        position = self._lock_position(conn, order.symbol)
        position = apply_fill(position, order.side, qty - fee_qty, px, at)
        delta = cash_delta(order.side, qty, px, commission)
        filled_qty = order.filled_qty + qty
        if order.filled_avg_price is None or order.filled_qty == 0:
            filled_avg_price = px
        else:
            filled_avg_price = (order.filled_avg_price * order.filled_qty + px * qty) / filled_qty
        # Position, cash, fill and order: one statement. When nothing can follow it in this call,
        # the COMMIT goes with it (one round trip less, and the account row is held no longer).
        last = self._fill_ends_call(order)
        with ending_transaction(conn) if last else nullcontext():
            sent = books.send_fill(
                conn,
                position=replace(position, last_price=market_price),
                cash_delta=delta,
                starting_cash=self.settings.starting_cash,
                order=order,
                trade_id=trade_id,
                qty=qty,
                price=px,
                commission=commission,
                fee_qty=fee_qty,
                filled_at=at,
                filled_qty=filled_qty,
                filled_avg_price=filled_avg_price,
            )
        applied = books.applied_fill(sent, order)
        _tx()["positions"][order.symbol] = applied.position
        _tx()["fills"].setdefault(order.id, []).append(applied.fill)
        filled = applied.order
        logger.info(
            "simulated fill: %s %s %s @ %s",
            order.side,
            qty,
            order.symbol,
            px,
            extra=self._log("order_filled", order),
        )
        if filled.parent_order_id is not None:
            self._cancel_siblings(conn, filled, at)
        self._activate_legs(conn, filled, market_price, at)
        return filled

    def _fill_ends_call(self, order: PaperOrder) -> bool:
        """Whether ``order``'s fill is the last statement of this exchange call: ``submit_order``
        filling the order it placed (only it places one), with no parent (no siblings to cancel)
        and no legs yet (placed now). The call's report is then built from what the call wrote,
        without a statement."""
        return order.id in _tx()["placed"] and order.parent_order_id is None

    def _activate_legs(self, conn: Connection, parent: PaperOrder, price: Decimal, at: datetime) -> None:
        """A filled parent: its HELD legs become ACCEPTED and are worked at ``price``."""
        if parent.id in _tx()["placed"]:
            return  # placed in this transaction: no leg can name it yet
        for leg in books.lock_children(conn, parent.id):
            current = books.get_order(conn, leg.id)
            if current.status is not OrderStatus.HELD:
                continue  # canceled meanwhile (OCO: a sibling filled at activation)
            accepted = books.set_status(conn, current.id, OrderStatus.ACCEPTED)
            logger.info("simulated leg activated", extra=self._log("order_accepted", accepted))
            self._work(conn, accepted, price, at)

    def _cancel_siblings(self, conn: Connection, leg: PaperOrder, at: datetime) -> None:
        """OCO: a filled leg cancels the other open legs of its parent."""
        assert leg.parent_order_id is not None
        for sibling in books.lock_children(conn, leg.parent_order_id):
            if sibling.id == leg.id or sibling.status not in books.OPEN_STATUSES:
                continue
            self._cancel(
                conn,
                sibling,
                at,
                code="oco",
                message=f"canceled: sibling leg {leg.client_order_id} filled (OCO)",
            )

    def _cancel(
        self, conn: Connection, order: PaperOrder, at: datetime, *, code: str, message: str | None
    ) -> PaperOrder:
        canceled = books.set_status(
            conn,
            order.id,
            OrderStatus.CANCELED,
            status_code=code,
            status_message=message,
            canceled_at=at,
        )
        self._cancel_held_legs(conn, order, at)
        logger.info("simulated order canceled: %s", code, extra=self._log("order_canceled", order))
        return canceled

    def _cancel_held_legs(self, conn: Connection, parent: PaperOrder, at: datetime) -> None:
        """A parent that will not fill: its HELD legs are canceled (``parent_not_filled``)."""
        if parent.id in _tx()["placed"]:
            return  # placed in this transaction: no leg can name it yet
        for leg in books.lock_children(conn, parent.id):
            if leg.status is OrderStatus.HELD:
                self._cancel(
                    conn,
                    leg,
                    at,
                    code="parent_not_filled",
                    message=f"canceled: parent order {parent.client_order_id} will not fill",
                )

    def _expired(self, order: PaperOrder, at: datetime) -> bool:
        """A DAY order is over once its session's close (market calendar) is at or before ``at``."""
        if order.time_in_force is not TimeInForce.DAY:
            return False
        close = session_close_after(order.submitted_at, order.symbol)
        return close is not None and close <= at

    def _expire(
        self,
        conn: Connection,
        order: PaperOrder,
        at: datetime,
        reason: str = "a price arrived after its session's close",
    ) -> PaperOrder:
        expired = books.set_status(
            conn,
            order.id,
            OrderStatus.EXPIRED,
            status_code="day_order_expired",
            status_message=f"day order expired: {reason}",
        )
        self._cancel_held_legs(conn, order, at)
        logger.info("simulated day order expired", extra=self._log("order_expired", order))
        return expired

    # --- reports -----------------------------------------------------------------------------

    def _report(self, conn: Connection, order: PaperOrder) -> BrokerOrder:
        return self._reports(conn, [order])[0]

    def _reports(self, conn: Connection, orders: Sequence[PaperOrder]) -> list[BrokerOrder]:
        """The port's reports of ``orders`` (same order), each with all its fills."""
        fills: dict[uuid.UUID, list[BrokerFill]] = defaultdict(list)
        tx = _tx()
        if all(o.id in tx["placed"] for o in orders):
            # Placed in this transaction: every fill they have was inserted by it, in order.
            known = [f for o in orders for f in tx["fills"].get(o.id, ())]
        else:
            known = books.fills_for(conn, (o.id for o in orders))
        for fill in known:
            fills[fill.order_id].append(
                BrokerFill(
                    trade_id=fill.trade_id,
                    qty=fill.qty,
                    price=fill.price,
                    commission=fill.commission,
                    filled_at=fill.filled_at,
                    fee_qty=fill.fee_qty,
                )
            )
        parents = books.client_order_ids(
            conn, {o.parent_order_id for o in orders if o.parent_order_id is not None}
        )
        return [
            BrokerOrder(
                client_order_id=o.client_order_id,
                broker_order_id=o.broker_order_id,
                status=o.status,
                symbol=o.symbol,
                side=o.side.value,
                qty=o.qty,
                filled_qty=o.filled_qty,
                filled_avg_price=o.filled_avg_price,
                status_code=o.status_code,
                status_message=o.status_message,
                submitted_at=o.submitted_at,
                filled_at=o.filled_at,
                canceled_at=o.canceled_at,
                stop_price=o.stop_price,
                parent_client_order_id=None if o.parent_order_id is None else parents[o.parent_order_id],
                fills=tuple(fills[o.id]),
                order_type=o.order_type.value,
                time_in_force=o.time_in_force.value,
                limit_price=o.limit_price,
            )
            for o in orders
        ]

    # --- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One exchange call: a transaction, driver failures translated to BrokerUnavailable.

        Committed without waiting for its WAL flush (``synchronous_commit =
        off``): the exchange shares our server, so its commit record precedes, in the one WAL,
        the commit of every transaction that records what it reported, and that synchronous
        commit flushes both. A crash of Postgres can lose only an exchange call that nothing
        durable of ours mentions yet, which is a call whose answer was lost (docs/scaling.md).
        """
        try:
            with self.db.transaction(without_flush=not self.synchronous_commit) as conn:
                token = _TX.set(_new_tx())
                try:
                    yield conn
                finally:
                    _TX.reset(token)
        except psycopg.OperationalError as exc:
            raise BrokerUnavailable(f"the paper exchange did not answer: {exc}") from exc

    def _mark_alone(self, symbol: str, price: Decimal, at: datetime) -> bool:
        """``paper_books.mark_alone`` in autocommit; True when orders rest (or the symbol has no
        position row yet): the price must then be worked in a transaction."""
        try:
            with self.db.statement() as conn:
                marked, resting = books.mark_alone(
                    conn, self.config_id, symbol, price, at, unflushed=not self.synchronous_commit
                )
        except psycopg.OperationalError as exc:
            raise BrokerUnavailable(f"the paper exchange did not answer: {exc}") from exc
        return marked is None or resting

    def _lock_position(self, conn: Connection, symbol: str) -> books.PaperPosition:
        """``paper_books.lock_position``, once per symbol and transaction: the lock is held till
        its end, so the row read then stays ours; a save replaces it, a mark drops it."""
        positions = _tx()["positions"]
        position = positions.get(symbol)
        if position is None:
            position = positions[symbol] = books.lock_position(conn, self.config_id, symbol)
        return position

    def _log(self, action: str, order: PaperOrder) -> dict[str, Any]:
        return {
            "action": action,
            "order_id": order.id,
            "client_order_id": order.client_order_id,
            "config_id": self.config_id,
        }


def _invalid_request(request: OrderRequest) -> str | None:
    """Why the order cannot be worked (qty, or a price its type needs is missing), or None."""
    if request.qty <= 0:
        return f"qty {request.qty} is not positive"
    needs = {
        OrderType.LIMIT: ("limit_price",),
        OrderType.STOP: ("stop_price",),
        OrderType.STOP_LIMIT: ("stop_price", "limit_price"),
    }.get(request.order_type, ())
    missing = [name for name in needs if getattr(request, name) is None]
    if missing:
        return f"a {request.order_type} order needs {' and '.join(missing)}"
    if request.order_type is OrderType.TRAILING_STOP and (
        (request.trail_price is None) == (request.trail_percent is None)
    ):
        return "a trailing_stop order needs exactly one of trail_price and trail_percent"
    return None


def _crosses_stop(buy: bool, price: Decimal, stop: Decimal | None) -> bool:
    if stop is None:
        return False
    return price >= stop if buy else price <= stop


def _stop_touch(buy: bool, bar: Bar, stop: Decimal | None) -> Decimal | None:
    """The price a stop triggers at within ``bar``: the open when it gapped through, else the stop."""
    if stop is None:
        return None
    if buy:
        if bar.open >= stop:
            return bar.open
        return stop if bar.high >= stop else None
    if bar.open <= stop:
        return bar.open
    return stop if bar.low <= stop else None


def _positive(price: Decimal | None) -> bool:
    return price is not None and price > 0
