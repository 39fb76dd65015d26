"""Domain vocabulary: signals, orders, positions and their enums.

Pure Python: this module imports neither Flask nor psycopg. Money and quantities are
``Decimal``; timestamps are timezone-aware UTC ``datetime``. Names follow alpaca-py's
``alpaca/trading/enums.py`` (``OrderSide``, ``OrderType``, ``TimeInForce``) and the
TradersPost signal vocabulary (``action``, ``sentiment``, ``quantityType``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from viewzenix.domain.windows import TradingWindows

# Enums are stored as their text value in Postgres; StrEnum's str() is that value.
StrEnum = enum.StrEnum


class Action(StrEnum):
    """What the alert asks for (TradersPost ``action``)."""

    BUY = "buy"
    SELL = "sell"
    EXIT = "exit"
    CANCEL = "cancel"
    ADD = "add"


class Sentiment(StrEnum):
    """The position *after* the signal (TradersPost ``sentiment``; bullish/bearish are aliases)."""

    LONG = "long"
    SHORT = "short"
    FLAT = "flat"


class QuantityType(StrEnum):
    """How ``quantity`` is read (TradersPost ``quantityType``)."""

    FIXED_QUANTITY = "fixed_quantity"
    DOLLAR_AMOUNT = "dollar_amount"
    RISK_DOLLAR_AMOUNT = "risk_dollar_amount"
    RISK_PERCENT = "risk_percent"
    PERCENT_OF_EQUITY = "percent_of_equity"
    PERCENT_OF_POSITION = "percent_of_position"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    """Alpaca: day, gtc, opg, cls, ioc, fok (crypto: gtc, ioc)."""

    DAY = "day"
    GTC = "gtc"
    OPG = "opg"
    CLS = "cls"
    IOC = "ioc"
    FOK = "fok"


class OrderStatus(StrEnum):
    """Order life cycle: PENDING_NEW → SUBMITTED → ACCEPTED → PARTIALLY_FILLED → FILLED.

    PENDING_NEW: recorded in our books, the broker's answer not known yet (never sent, or sent
    and the answer lost: ask the broker by client_order_id before sending again). HELD: a
    take-profit/stop-loss leg the broker holds until its parent fills (Alpaca ``held``).
    Terminal: FILLED, DENIED (our risk rules refused it; never sent), REJECTED (the broker
    refused it), CANCELED (one L, as brokers spell it), EXPIRED.
    """

    PENDING_NEW = "pending_new"
    HELD = "held"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DENIED = "denied"
    REJECTED = "rejected"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        return not self.is_terminal


_TERMINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.DENIED,
        OrderStatus.REJECTED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
    }
)


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"
    FLAT = "flat"


class SignalStatus(StrEnum):
    """Outcome of a stored signal: what happened, in one word.

    ``accepted`` at intake; ``submitting`` while its orders are recorded and the broker's answer
    is pending; then ``executed`` (at least one order reached the broker and was not refused
    there, or open orders were canceled), ``ignored`` (nothing to do, e.g. exit while flat),
    ``denied`` (our risk rules refused every order), ``rejected`` (intake refused the alert, or
    the broker refused every order sent), ``failed`` (an error, retried). ``duplicate``: a
    resend of an earlier alert, stored for the record, runs nothing. ``awaiting_approval``:
    accepted on a config in approval mode, waiting for its owner's click (no job until then).
    """

    ACCEPTED = "accepted"
    SUBMITTING = "submitting"
    EXECUTED = "executed"
    IGNORED = "ignored"
    DENIED = "denied"
    REJECTED = "rejected"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    AWAITING_APPROVAL = "awaiting_approval"


@dataclass(frozen=True)
class TakeProfit:
    """Exit target: an absolute ``limit_price``, or relative by ``percent`` or ``amount`` (price units)."""

    limit_price: Decimal | None = None
    percent: Decimal | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class StopLoss:
    """Protective stop: absolute ``stop_price``, or relative ``percent``/``amount``.

    ``limit_price`` for a stop_limit; for a trailing_stop, ``amount``/``percent`` is the trail.
    """

    type: OrderType = OrderType.STOP
    stop_price: Decimal | None = None
    percent: Decimal | None = None
    amount: Decimal | None = None
    limit_price: Decimal | None = None


@dataclass(frozen=True)
class Signal:
    """A normalised trading signal, whatever alert format it arrived in.

    ``target_position`` is the signed position size the sender says it holds after this signal
    (TradingView ``{{strategy.position_size}}``), when the alert carries it. ``signal_time`` is
    the alert's own time (UTC), used by the stale-signal rule. ``extras`` keeps unknown fields.
    """

    ticker: str
    action: Action
    sentiment: Sentiment | None = None
    quantity: Decimal | None = None
    quantity_type: QuantityType | None = None
    order_type: OrderType | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    time_in_force: TimeInForce | None = None
    extended_hours: bool | None = None
    signal_price: Decimal | None = None
    signal_time: datetime | None = None
    interval: str | None = None
    exchange: str | None = None
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None
    cancel_order_type: OrderType | None = None
    target_position: Decimal | None = None
    alert_id: str | None = None
    comment: str | None = None
    source_format: str = "traderspost"
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RiskRules:
    """Per-config risk rules, checked before any order reaches a broker.

    ``allowed_symbols`` empty means every symbol. ``max_position_qty`` and
    ``max_position_notional`` (account currency) bound the absolute position after the order.
    ``max_signal_age_seconds`` refuses a signal whose own ``time`` is older than that (only when
    the alert carries a time). ``entries_paused`` denies every entry (ENTER, ADD, the entry of a
    REVERSE) while exits and cancels still run.
    """

    allowed_symbols: tuple[str, ...] = ()
    max_position_qty: Decimal | None = None
    max_position_notional: Decimal | None = None
    allow_short: bool = True
    allow_add: bool = True
    max_signal_age_seconds: int | None = None
    entries_paused: bool = False
    # Entries only inside these windows (viewzenix/domain/windows.py); None: no time limit.
    trading_windows: TradingWindows | None = None


@dataclass(frozen=True)
class TradingSettings:
    """A webhook config's trading settings.

    Sizing: ``quantity_type``/``quantity`` are the default when the alert carries no quantity
    (or when ``use_signal_quantity`` is false). Reversals follow TradersPost's "Allow side
    swapping" (``allow_reverse``) and "Subtract exit quantity from signal quantity"
    (``subtract_exit_quantity``, on by default because TradingView's
    ``{{strategy.order.contracts}}`` on a reversal includes the contracts that close the old side).
    Simulated fills: ``slippage_bps`` (1 bp = 0.01 %), ``commission_rate`` (fraction of notional,
    0.001 = 0.1 %) plus ``commission_fixed`` per fill, in account currency.
    """

    broker: str = "simulated"
    quantity_type: QuantityType = QuantityType.FIXED_QUANTITY
    quantity: Decimal = Decimal("1")
    use_signal_quantity: bool = True
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    allow_reverse: bool = True
    subtract_exit_quantity: bool = True
    risk: RiskRules = field(default_factory=RiskRules)
    starting_cash: Decimal = Decimal("100000")
    slippage_bps: Decimal = Decimal("0")
    commission_rate: Decimal = Decimal("0")
    commission_fixed: Decimal = Decimal("0")
    # Crypto fills pay this fraction in the asset received: a buy gets qty x (1 - rate) coins, a
    # sell's cash is notional x (1 - rate). Default Alpaca's base-tier taker fee, 0.25 % (30-day
    # crypto volume under $100,000: alpaca.markets/support/crypto-maker-taker-gmt-faq).
    crypto_fee_rate: Decimal = Decimal("0.0025")
    # Paper market data (issue 16): buying power = equity × margin_multiplier − gross exposure −
    # what open orders hold (1 = cash account); a market price older than max_quote_age_seconds
    # is refused; when one bar crosses both legs of a bracket, "stop_first" (backtesting.py) or
    # "target_first" fills.
    margin_multiplier: Decimal = Decimal("1")
    max_quote_age_seconds: int | None = None
    bracket_conflict: str = "stop_first"


@dataclass(frozen=True)
class PositionState:
    """The current position in one symbol: signed ``qty`` (short < 0), ``avg_entry_price``."""

    symbol: str
    qty: Decimal = Decimal("0")
    avg_entry_price: Decimal = Decimal("0")

    @property
    def side(self) -> PositionSide:
        if self.qty > 0:
            return PositionSide.LONG
        if self.qty < 0:
            return PositionSide.SHORT
        return PositionSide.FLAT


@dataclass(frozen=True)
class AccountState:
    """A (paper) account: ``cash`` and ``equity`` (cash + marked positions), account currency."""

    cash: Decimal
    equity: Decimal


@dataclass(frozen=True)
class OpenOrder:
    """An order still open at the broker, as the engine needs to see it."""

    order_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    qty: Decimal
    purpose: str
