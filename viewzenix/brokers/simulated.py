"""The simulated (paper) broker: fills against the prices alerts carry, account kept in Postgres.

Everything runs on the connection and transaction it is given (tables ``paper_accounts``,
``positions``, ``orders``, ``order_events``, ``fills``), so a signal's orders, fills, positions
and cash commit or roll back together. It has no market data: the only prices it knows are
``OrderRequest.reference_price`` (the signal's price) and the prices later signals bring through
``process_price``.

Fill rules (document of record; prices in the quote currency, Decimal throughout)
  - Slippage: a buy fills at price * (1 + slippage_bps / 10000), a sell at
    price * (1 - slippage_bps / 10000). Commission per fill = notional * commission_rate +
    commission_fixed, paid from cash.
  - market: fills at once at the slipped reference price; without a reference price it is
    REJECTED (``no_market_price``).
  - limit: marketable when price ≤ limit (buy) or price ≥ limit (sell); fills at the slipped
    *market price*, capped at the limit (never worse than the limit), not at the limit itself.
  - stop: triggers when price ≥ stop (buy) or price ≤ stop (sell); fills like a market order at
    the slipped price that triggered it (a gap through the stop fills at the gapped price).
  - stop_limit: triggers like a stop (recorded as an ``OrderTriggered`` event), then behaves as
    a limit order, also at later prices.
  - trailing_stop: ``stop_price`` holds the current trigger, as Alpaca's order does. It starts
    at price - trail (sell) or price + trail (buy) from the first known price (trail =
    ``trail_price``, or price * trail_percent / 100) and only ever ratchets with the high
    (sell) or low (buy) water mark of later prices; it triggers like a stop.
  - Orders that are not marketable when submitted rest (ACCEPTED) and are checked against the
    price of every later signal for the same symbol (``process_price``). At submission the
    price is the reference price, else the symbol's last known price. IOC and FOK orders that
    cannot fill at once are CANCELED (``not_marketable``). DAY orders still resting expire
    (EXPIRED) when a price arrives on a later New York calendar date than their submission.
  - Take-profit / stop-loss legs (``parent_client_order_id``) wait as HELD until the parent
    fills, then rest (ACCEPTED) and are checked at once; a leg filling cancels its open sibling
    legs (OCO). Canceling, rejecting or expiring a parent cancels its waiting legs.
  - Orders fill whole (no partial fills). The mark (``positions.last_price``) is the market
    price, not the slipped fill price, so equity shows the slippage cost at once.

Positions: signed qty; increases move the average entry price; reductions realise
(exit - avg) * qty for longs, (avg - exit) * qty for shorts (commissions are not deducted from
realised P&L, they leave cash separately); a flip through zero opens the new side at the fill
price. Cash: buy -= qty * px + commission, sell += qty * px - commission. Equity = cash +
Σ qty * mark (shorts negative). Shorts are allowed (the engine checked ``allow_short``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from viewzenix.brokers.base import (
    BrokerOrder,
    DuplicateOrder,
    OrderNotCancelable,
    OrderNotFound,
)
from viewzenix.db import Connection
from viewzenix.domain.engine import OrderRequest
from viewzenix.domain.model import (
    AccountState,
    OpenOrder,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionState,
    TimeInForce,
    TradingSettings,
)
from viewzenix.repositories import accounts as accounts_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import positions as positions_repo
from viewzenix.repositories.positions import PositionRecord

logger = logging.getLogger(__name__)

NAME = "simulated"
_ZERO = Decimal(0)
_BPS = Decimal(10000)
_HUNDRED = Decimal(100)
_NEW_YORK = ZoneInfo("America/New_York")
_WORKING = (OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value)
_OPEN = (OrderStatus.HELD.value, OrderStatus.SUBMITTED.value, *_WORKING)

# Event names, past tense (STYLE.md).
ORDER_SUBMITTED = "OrderSubmitted"
ORDER_ACCEPTED = "OrderAccepted"
ORDER_TRIGGERED = "OrderTriggered"
ORDER_FILLED = "OrderFilled"
ORDER_PARTIALLY_FILLED = "OrderPartiallyFilled"
ORDER_CANCELED = "OrderCanceled"
ORDER_REJECTED = "OrderRejected"
ORDER_EXPIRED = "OrderExpired"
ORDER_DENIED = "OrderDenied"

NO_MARKET_PRICE_MESSAGE = (
    "The simulated broker has no market data: a {order_type} order fills at the alert's price, "
    'and this alert carries none. Add a price to the alert (e.g. "price": "{{{{close}}}}").'
)


def fill_commission(settings: TradingSettings, qty: Decimal, px: Decimal) -> Decimal:
    """Return the commission of one fill: qty * px * commission_rate + commission_fixed."""
    return qty * px * settings.commission_rate + settings.commission_fixed


def slipped_price(settings: TradingSettings, side: OrderSide | str, price: Decimal) -> Decimal:
    """Return ``price`` moved against the trader by ``slippage_bps`` (buy up, sell down)."""
    slip = settings.slippage_bps / _BPS
    if OrderSide(side) is OrderSide.BUY:
        return price * (1 + slip)
    return price * (1 - slip)


def apply_fill(
    position: PositionRecord, side: OrderSide | str, qty: Decimal, px: Decimal, at: datetime
) -> PositionRecord:
    """Return ``position`` after a fill of ``qty`` at ``px`` on ``side`` (pure).

    Increase: average entry price weighted by qty; ``opened_at`` = ``at`` when opening from flat.
    Reduction: realised P&L += (px - avg) * closed qty (long) or (avg - px) * closed qty
    (short). Flat: avg 0, opened_at None. Through zero: the new side opens at ``px``.
    """
    signed = qty if OrderSide(side) is OrderSide.BUY else -qty
    old = position.qty
    new = old + signed
    avg, realized, opened_at = position.avg_entry_price, position.realized_pnl, position.opened_at
    if old == 0 or (old > 0) == (signed > 0):
        avg = (abs(old) * avg + qty * px) / abs(new)
        if old == 0:
            opened_at = at
    else:
        closed = min(qty, abs(old))
        realized += (px - avg) * closed * (1 if old > 0 else -1)
        if new == 0:
            avg, opened_at = _ZERO, None
        elif (new > 0) != (old > 0):
            avg, opened_at = px, at
    return replace(position, qty=new, avg_entry_price=avg, realized_pnl=realized, opened_at=opened_at)


class SimulatedBroker:
    """Paper broker for one webhook config, on the caller's connection and transaction.

    ``settings`` supplies starting_cash, slippage_bps, commission_rate and commission_fixed.
    ``signal_id`` and ``intent`` are written on the orders it records; ``clock`` returns the
    UTC time used for submitted_at / filled_at / canceled_at of submits and cancels.
    """

    name = NAME

    def __init__(
        self,
        conn: Connection,
        *,
        config_id: uuid.UUID,
        user_id: uuid.UUID,
        settings: TradingSettings,
        signal_id: uuid.UUID | None = None,
        intent: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.conn = conn
        self.config_id = config_id
        self.user_id = user_id
        self.settings = settings
        self.signal_id = signal_id
        self.intent = intent
        self.clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def for_config(cls, conn: Connection, config: dict[str, Any], **kwargs: Any) -> SimulatedBroker:
        """Build from a ``webhook_configs`` row (its id, user_id and trading settings)."""
        from viewzenix.repositories.webhook_configs import trading_settings

        return cls(
            conn,
            config_id=config["id"],
            user_id=config["user_id"],
            settings=trading_settings(config),
            **kwargs,
        )

    def for_signal(self, signal_id: uuid.UUID | None, intent: str | None) -> SimulatedBroker:
        """Return a broker on the same account recording ``signal_id`` and ``intent`` on orders."""
        return SimulatedBroker(
            self.conn,
            config_id=self.config_id,
            user_id=self.user_id,
            settings=self.settings,
            signal_id=signal_id,
            intent=intent,
            clock=self.clock,
        )

    # --- the broker protocol ---------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        """Record and work one order; return it as it stands after submission.

        Market orders fill or are REJECTED at once; others fill at once when marketable, else
        rest (ACCEPTED); legs wait HELD for their parent. Raises DuplicateOrder when the
        config already has ``request.client_order_id`` (Alpaca: unique per account forever).
        """
        now = self.clock()
        parent = None
        if request.parent_client_order_id is not None:
            parent = orders_repo.get_by_client_order_id(
                self.conn, self.config_id, request.parent_client_order_id, for_update=True
            )
        waits = parent is not None and parent["status"] in _OPEN
        row = self._insert(request, parent, OrderStatus.HELD if waits else OrderStatus.SUBMITTED, now)
        self._event(row, ORDER_SUBMITTED, None, row["status"], {"qty": request.qty}, now)
        logger.info(
            "simulated order submitted: %s %s %s %s",
            request.side,
            request.qty,
            request.symbol,
            request.order_type,
            extra=self._log("order_submitted", row),
        )
        if waits:
            return BrokerOrder.from_row(row)
        if request.parent_client_order_id is not None and parent is None:
            row = self._reject(
                row,
                "parent_not_found",
                f"parent order {request.parent_client_order_id} does not exist",
                now,
            )
            return BrokerOrder.from_row(row)
        if parent is not None and parent["status"] != OrderStatus.FILLED:
            row = self._transition(
                row,
                OrderStatus.CANCELED,
                ORDER_CANCELED,
                now,
                code="parent_not_filled",
                message=(f"parent order {parent['client_order_id']} is {parent['status']}, not filled"),
            )
            return BrokerOrder.from_row(row)
        problem = _invalid_request(request)
        if problem is not None:
            return BrokerOrder.from_row(self._reject(row, "invalid_order", problem, now))
        reference = request.reference_price
        if request.order_type is OrderType.MARKET and (reference is None or reference <= 0):
            message = NO_MARKET_PRICE_MESSAGE.format(order_type=request.order_type)
            return BrokerOrder.from_row(self._reject(row, "no_market_price", message, now))
        row = self._transition(row, OrderStatus.ACCEPTED, ORDER_ACCEPTED, now)
        row = self._work(row, self._price_for(request), now)
        return BrokerOrder.from_row(row)

    def cancel_order(
        self,
        client_order_id: str,
        *,
        status_code: str = "canceled",
        status_message: str | None = None,
    ) -> BrokerOrder:
        """Cancel an open order and its waiting legs; return it.

        Canceling a canceled order returns it unchanged. Raises OrderNotFound, and
        OrderNotCancelable when it is filled, rejected, denied or expired.
        """
        row = orders_repo.get_by_client_order_id(self.conn, self.config_id, client_order_id, for_update=True)
        if row is None:
            raise OrderNotFound(client_order_id=client_order_id)
        if row["status"] == OrderStatus.CANCELED:
            return BrokerOrder.from_row(row)
        if OrderStatus(row["status"]).is_terminal:
            raise OrderNotCancelable(
                f"order {client_order_id} is {row['status']} and cannot be canceled",
                client_order_id=client_order_id,
            )
        row = self._cancel(row, self.clock(), code=status_code, message=status_message)
        return BrokerOrder.from_row(row)

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """Return the config's order with this client_order_id, or None."""
        row = orders_repo.get_by_client_order_id(self.conn, self.config_id, client_order_id)
        return None if row is None else BrokerOrder.from_row(row)

    def get_positions(self) -> list[PositionState]:
        """Return the paper account's non-flat positions."""
        return [p.state() for p in positions_repo.open_for(self.conn, self.config_id)]

    def get_account(self) -> AccountState:
        """Return cash and equity, opening the paper account with starting_cash on first use."""
        return accounts_repo.state(self.conn, self._account())

    # --- beyond the protocol ----------------------------------------------------------------

    def open_orders(self, symbol: str | None = None) -> list[OpenOrder]:
        """Return the open orders (pending to partially_filled), of one symbol or all."""
        return [
            OpenOrder(
                order_id=str(row["id"]),
                client_order_id=row["client_order_id"],
                symbol=row["symbol"],
                side=OrderSide(row["side"]),
                order_type=OrderType(row["order_type"]),
                qty=row["qty"] - row["filled_qty"],
                purpose=row["purpose"],
            )
            for row in orders_repo.open_orders(self.conn, self.config_id, symbol)
        ]

    def process_price(self, symbol: str, price: Decimal, at: datetime) -> list[BrokerOrder]:
        """Mark ``symbol`` at ``price`` and work its resting orders against it, oldest first.

        Fills what ``price`` crosses (and, in turn, activates legs and cancels OCO siblings),
        ratchets trailing stops, expires DAY orders from an earlier New York date. Returns the
        resting orders whose state changed. ``at``: UTC time of the price (fills' filled_at).
        """
        if price <= 0:
            return []
        positions_repo.mark(self.conn, config_id=self.config_id, symbol=symbol, last_price=price)
        changed: list[BrokerOrder] = []
        for resting in orders_repo.lock_resting(self.conn, self.config_id, symbol):
            row = orders_repo.get(self.conn, resting["id"])
            if row is None or row["status"] not in _WORKING:
                continue  # filled or canceled meanwhile (OCO)
            if self._expired(row, at):
                new = self._expire(row, at)
            else:
                new = self._work(row, price, at)
            if _state(new) != _state(row):
                changed.append(BrokerOrder.from_row(new))
        return changed

    # --- working an order -------------------------------------------------------------------

    def _work(self, row: dict[str, Any], price: Decimal | None, at: datetime) -> dict[str, Any]:
        """Check an ACCEPTED order against ``price``: fill, trigger, ratchet, or let it rest."""
        order_type = OrderType(row["order_type"])
        side = OrderSide(row["side"])
        buy = side is OrderSide.BUY
        if price is None:
            return self._unfilled(row, at)
        if order_type is OrderType.MARKET:
            return self._fill(row, slipped_price(self.settings, side, price), price, at)
        if order_type is OrderType.LIMIT:
            return self._work_limit(row, price, at)
        if order_type is OrderType.STOP:
            if _crosses_stop(buy, price, row["stop_price"]):
                return self._fill(row, slipped_price(self.settings, side, price), price, at)
            return self._unfilled(row, at)
        if order_type is OrderType.STOP_LIMIT:
            triggered = orders_repo.has_event(self.conn, row["id"], ORDER_TRIGGERED)
            if not triggered and _crosses_stop(buy, price, row["stop_price"]):
                self._event(row, ORDER_TRIGGERED, row["status"], row["status"], {"price": price}, at)
                triggered = True
            if triggered:
                return self._work_limit(row, price, at)
            return self._unfilled(row, at)
        return self._work_trailing(row, price, at)

    def _work_limit(self, row: dict[str, Any], price: Decimal, at: datetime) -> dict[str, Any]:
        limit = row["limit_price"]
        side = OrderSide(row["side"])
        if side is OrderSide.BUY and price <= limit:
            return self._fill(row, min(slipped_price(self.settings, side, price), limit), price, at)
        if side is OrderSide.SELL and price >= limit:
            return self._fill(row, max(slipped_price(self.settings, side, price), limit), price, at)
        return self._unfilled(row, at)

    def _work_trailing(self, row: dict[str, Any], price: Decimal, at: datetime) -> dict[str, Any]:
        side = OrderSide(row["side"])
        buy = side is OrderSide.BUY
        stop = row["stop_price"]
        if stop is not None and _crosses_stop(buy, price, stop):
            return self._fill(row, slipped_price(self.settings, side, price), price, at)
        if row["trail_price"] is not None:
            trail = row["trail_price"]
        else:
            trail = price * (row["trail_percent"] or _ZERO) / _HUNDRED
        candidate = price + trail if buy else price - trail
        if stop is None or (candidate < stop if buy else candidate > stop):
            row = orders_repo.set_stop_price(self.conn, row["id"], candidate)
            if _crosses_stop(buy, price, candidate):  # a zero trail triggers at once
                return self._fill(row, slipped_price(self.settings, side, price), price, at)
        return self._unfilled(row, at)

    def _unfilled(self, row: dict[str, Any], at: datetime) -> dict[str, Any]:
        """An order that could not fill now: IOC/FOK are canceled, the rest keep resting."""
        if row["time_in_force"] in (TimeInForce.IOC, TimeInForce.FOK):
            return self._cancel(
                row,
                at,
                code="not_marketable",
                message=f"{row['time_in_force']} order could not fill at once at the current price",
            )
        return row

    def _fill(self, row: dict[str, Any], px: Decimal, market_price: Decimal, at: datetime) -> dict[str, Any]:
        """Fill the order's remaining qty at ``px``: fill row, position, cash, legs, OCO."""
        qty = row["qty"] - row["filled_qty"]
        side = OrderSide(row["side"])
        commission = fill_commission(self.settings, qty, px)
        trade_id = f"{row['client_order_id']}-{orders_repo.count_fills(self.conn, row['id']) + 1}"

        position = positions_repo.lock(
            self.conn, config_id=self.config_id, user_id=self.user_id, symbol=row["symbol"]
        )
        position = apply_fill(position, side, qty, px, at)
        positions_repo.save(self.conn, replace(position, last_price=market_price))
        self._account()
        notional = qty * px
        cash_delta = -(notional + commission) if side is OrderSide.BUY else notional - commission
        accounts_repo.add_cash(self.conn, self.config_id, cash_delta)

        orders_repo.insert_fill(
            self.conn,
            order_id=row["id"],
            user_id=self.user_id,
            config_id=self.config_id,
            trade_id=trade_id,
            symbol=row["symbol"],
            side=side.value,
            last_qty=qty,
            last_px=px,
            commission=commission,
            filled_at=at,
        )
        filled_qty = row["filled_qty"] + qty
        filled_avg_price = (
            px
            if row["filled_qty"] == 0
            else (row["filled_avg_price"] * row["filled_qty"] + px * qty) / filled_qty
        )
        filled = orders_repo.record_fill(
            self.conn,
            row["id"],
            status=OrderStatus.FILLED.value,
            filled_qty=filled_qty,
            filled_avg_price=filled_avg_price,
            filled_at=at,
        )
        detail = {"trade_id": trade_id, "last_qty": qty, "last_px": px, "commission": commission}
        self._event(row, ORDER_FILLED, row["status"], OrderStatus.FILLED, detail, at)
        logger.info(
            "simulated fill: %s %s %s @ %s",
            side,
            qty,
            row["symbol"],
            px,
            extra=self._log("order_filled", row),
        )
        if row["parent_order_id"] is not None:
            self._cancel_siblings(filled, at)
        self._activate_legs(filled, market_price, at)
        return filled

    def _activate_legs(self, parent: dict[str, Any], price: Decimal, at: datetime) -> None:
        """A filled parent: its HELD legs become ACCEPTED and are worked at ``price``."""
        for leg in orders_repo.children(self.conn, parent["id"]):
            current = orders_repo.get(self.conn, leg["id"])
            if current is None or current["status"] != OrderStatus.HELD:
                continue
            accepted = self._transition(
                current,
                OrderStatus.ACCEPTED,
                ORDER_ACCEPTED,
                at,
                detail={"parent_client_order_id": parent["client_order_id"]},
            )
            self._work(accepted, price, at)

    def _cancel_siblings(self, leg: dict[str, Any], at: datetime) -> None:
        """OCO: a filled leg cancels the other open legs of its parent."""
        for sibling in orders_repo.children(self.conn, leg["parent_order_id"]):
            if sibling["id"] == leg["id"] or sibling["status"] not in _OPEN:
                continue
            self._cancel(
                sibling,
                at,
                code="oco",
                message=f"canceled: sibling leg {leg['client_order_id']} filled (OCO)",
            )

    def _cancel(self, row: dict[str, Any], at: datetime, *, code: str, message: str | None) -> dict[str, Any]:
        canceled = self._transition(
            row,
            OrderStatus.CANCELED,
            ORDER_CANCELED,
            at,
            code=code,
            message=message,
            canceled_at=at,
        )
        self._cancel_waiting_legs(row, at)
        logger.info("simulated order canceled: %s", code, extra=self._log("order_canceled", row))
        return canceled

    def _cancel_waiting_legs(self, parent: dict[str, Any], at: datetime) -> None:
        for leg in orders_repo.children(self.conn, parent["id"]):
            if leg["status"] == OrderStatus.HELD:
                self._cancel(
                    leg,
                    at,
                    code="parent_not_filled",
                    message=f"canceled: parent order {parent['client_order_id']} will not fill",
                )

    def _reject(self, row: dict[str, Any], code: str, message: str, at: datetime) -> dict[str, Any]:
        rejected = self._transition(row, OrderStatus.REJECTED, ORDER_REJECTED, at, code=code, message=message)
        self._cancel_waiting_legs(row, at)
        logger.info("simulated order rejected: %s", code, extra=self._log("order_rejected", row))
        return rejected

    def _expired(self, row: dict[str, Any], at: datetime) -> bool:
        submitted_at = row["submitted_at"]
        if row["time_in_force"] != TimeInForce.DAY or submitted_at is None:
            return False
        return _new_york_date(at) > _new_york_date(submitted_at)

    def _expire(self, row: dict[str, Any], at: datetime) -> dict[str, Any]:
        expired = self._transition(
            row,
            OrderStatus.EXPIRED,
            ORDER_EXPIRED,
            at,
            code="day_order_expired",
            message="day order expired: a price arrived on a later New York trading date",
        )
        self._cancel_waiting_legs(row, at)
        return expired

    # --- records ----------------------------------------------------------------------------

    def _insert(
        self,
        request: OrderRequest,
        parent: dict[str, Any] | None,
        status: OrderStatus,
        now: datetime,
    ) -> dict[str, Any]:
        row = orders_repo.insert(
            self.conn,
            user_id=self.user_id,
            config_id=self.config_id,
            signal_id=self.signal_id,
            parent_order_id=parent["id"] if parent is not None else None,
            broker_order_id=f"sim-{uuid.uuid4()}",
            broker=NAME,
            intent=None if self.intent is None else str(self.intent),
            **orders_repo.request_columns(request),
            status=status.value,
            submitted_at=now,
        )
        if row is None:  # Alpaca: client_order_id is unique per account forever
            raise DuplicateOrder(client_order_id=request.client_order_id)
        return row

    def _transition(
        self,
        row: dict[str, Any],
        status: OrderStatus,
        event_type: str,
        at: datetime,
        *,
        code: str | None = None,
        message: str | None = None,
        canceled_at: datetime | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        new = orders_repo.update_status(
            self.conn,
            row["id"],
            status.value,
            status_code=code,
            status_message=message,
            canceled_at=canceled_at,
        )
        event_detail = dict(detail or {})
        if code is not None:
            event_detail["status_code"] = code
        if message is not None:
            event_detail["status_message"] = message
        self._event(row, event_type, row["status"], status, event_detail, at)
        return new

    def _event(
        self,
        row: dict[str, Any],
        event_type: str,
        from_status: str | None,
        to_status: str,
        detail: dict[str, Any] | None,
        at: datetime,
    ) -> None:
        orders_repo.insert_event(
            self.conn,
            order_id=row["id"],
            user_id=self.user_id,
            event_type=event_type,
            from_status=None if from_status is None else str(from_status),
            to_status=str(to_status),
            detail={k: _json_value(v) for k, v in (detail or {}).items()},
            created_at=at,
        )

    def _account(self) -> accounts_repo.PaperAccount:
        return accounts_repo.open_account(
            self.conn,
            config_id=self.config_id,
            user_id=self.user_id,
            starting_cash=self.settings.starting_cash,
        )

    def _price_for(self, request: OrderRequest) -> Decimal | None:
        """The price an order is checked against at submission: reference, else the mark.

        A reference price that is not positive counts as none.
        """
        if request.reference_price is not None and request.reference_price > 0:
            return request.reference_price
        if request.order_type is OrderType.MARKET:
            return None
        position = positions_repo.lock(
            self.conn, config_id=self.config_id, user_id=self.user_id, symbol=request.symbol
        )
        return position.last_price

    def _log(self, action: str, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "action": action,
            "order_id": row["id"],
            "client_order_id": row["client_order_id"],
            "signal_id": row["signal_id"],
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


def _new_york_date(moment: datetime) -> date:
    return moment.astimezone(_NEW_YORK).date()


def _state(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["status"], row["filled_qty"], row["stop_price"])


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
