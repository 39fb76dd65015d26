"""Plan the orders for one signal: intent → risk → sizing → orders. Pure: no Flask, no I/O.

``plan_signal`` looks at one normalised ``Signal`` with the current position, account, open
orders and the config's ``TradingSettings`` and returns a complete, explicit ``Plan``: which open
orders to cancel, which orders to submit (exit before entry), which were refused (``Denial``) and
why, or why the signal needs nothing (``ignored_reason``). Whoever executes the plan (simulated or
Alpaca broker, repositories) needs no further decisions. The order behaviour follows TradersPost's
documented signal semantics (traderspost.io/reference).

Positions are signed: short < 0. "Held" below means ``abs(position.qty)``.

Intent (``buy``; ``sell`` is its mirror image, long ↔ short, buy ↔ sell)
  ``sentiment`` is the position *after* the signal; absent, it is unknown.

  - flat, sentiment absent or long → ENTER long.
  - flat, sentiment flat or short → ignored: a buy with that sentiment only reduces a short.
  - long, sentiment absent or long → ADD (needs ``risk.allow_add``, else Denial
    ``add_not_allowed``: TradersPost refuses a buy while long unless adding is enabled).
  - long, sentiment flat or short → ignored: nothing to cover.
  - short, sentiment flat → EXIT: buy to cover the whole position, never go long.
  - short, sentiment short → cover the signal quantity: PARTIAL_EXIT when it is smaller than the
    position, else EXIT of the whole position.
  - short, sentiment absent → PARTIAL_EXIT when the signal quantity is smaller than the position
    (TradersPost "Exit Partial Position"), else as sentiment long.
  - short, sentiment long → REVERSE: exit the whole short, then enter long (needs
    ``allow_reverse``, else the exit goes and the entry is denied ``reverse_not_allowed``:
    TradersPost "Allow side swapping"). Entering short always needs ``risk.allow_short``
    (Denial ``short_not_allowed``); exiting a long with ``sell`` never does.
  - Reversal entry size: sized as below; when that size comes from the signal's quantity and
    ``subtract_exit_quantity`` is on, the exited quantity is subtracted first (TradersPost
    "Subtract exit quantity from signal quantity": TradingView's ``{{strategy.order.contracts}}``
    on a reversal includes the closing contracts, so long 10 + "sell 20 short" = exit 10 + enter
    short 10). Nothing left → exit only, intent EXIT.
  - ``signal.target_position`` (``{{strategy.position_size}}``), when present and the config uses
    the signal's quantity, decides alone for ``buy``/``sell``: the orders move the position from
    ``position.qty`` to the target exactly (exit, then entry of ``abs(target)``); sentiment,
    quantity and even the action are not consulted. Already there → ignored.

``add`` adds to the position in its own direction (ADD, needs ``allow_add``); flat → ignored.
``exit`` closes the position: the signal quantity (capped at the position; percent_of_position is
a share of it) or the whole position → PARTIAL_EXIT / EXIT; flat → ignored. ``cancel`` cancels
the symbol's open orders (only those of ``signal.cancel_order_type`` when set), places nothing,
intent CANCEL; nothing open → ignored.

Cancels
  A plan that submits at least one order first cancels the symbol's open orders: all of them when
  it exits or the position is flat (TradersPost: "If there are open orders for TSLA, they will be
  canceled"; the take-profit/stop-loss legs of a position being exited would otherwise fire on
  nothing, and Alpaca holds the shares of open sell orders), only the open entry orders for an
  ADD (the legs protecting the held position stay). A plan that submits nothing cancels nothing,
  and an open order carrying one of the plan's own client_order_ids (a retried job) is never
  canceled.

Sizing (entries, adds, and exits sized from the signal)
  The signal's ``quantity`` with its ``quantityType`` (absent: fixed_quantity) when it has one and
  ``settings.use_signal_quantity``; else ``settings.quantity``/``settings.quantity_type``. The
  price is the order's limit price, else its stop price, else ``signal_price``.

  - fixed_quantity: as given, fractions kept.
  - dollar_amount: amount / price.
  - percent_of_equity: equity * pct / 100 / price.
  - risk_dollar_amount: risk / (distance from price to the stop), the stop from
    ``signal.stop_loss`` (stop_price, or percent/amount from the price); none, or not on the
    losing side → Denial ``risk_sizing_needs_stop``.
  - risk_percent: risk = equity * pct / 100, then as above.
  - percent_of_position: pct * held / 100; with nothing held → Denial
    ``percent_of_position_needs_position``.
  - All but fixed_quantity round DOWN to whole shares (stocks); 0 → Denial
    ``quantity_rounds_to_zero``. A price needed but absent → Denial ``no_price_for_sizing``.
    A quantity ≤ 0 → Denial ``invalid_quantity``.

Orders
  Type and time in force: the signal's, else the settings'. limit needs ``limit_price`` (else the
  signal price, rounded as below), stop needs ``stop_price``, stop_limit both, trailing_stop exactly
  one of ``trail_amount``/``trail_percent``; otherwise the whole signal is denied
  ``invalid_order_prices``. Entries and exits carry ``reference_price`` = ``signal_price`` (what a
  simulated market order fills at). Exit and entry use the same type and prices.

Risk (``settings.risk``)
  Checked on every entry order (ENTER, ADD, the entry of a REVERSE), Denial with that order
  attached, first failing rule wins: paused entries (``entries_paused``), an entry at ``now``
  outside the config's trading windows (``outside_trading_window``, ``domain/windows.py``),
  reverse/short/add policy, then ``max_position_qty`` (abs position after the order > max) and
  ``max_position_notional`` (abs position after * price > max; no price →
  ``no_price_for_notional_limit``). Exits are never denied by these: reducing
  risk is always allowed. Two rules apply to everything: a signal older than
  ``max_signal_age_seconds`` (``now - signal.signal_time``, both set) is denied whole
  (``stale_signal``, order None, no cancels, no orders); a symbol outside ``allowed_symbols``
  (case-insensitive, empty = all) has each exit/entry it would have placed denied
  ``symbol_not_allowed`` with the order attached (order None when it would have placed none), and
  nothing is canceled.

Take-profit / stop-loss legs (on every entry that is not denied)
  TAKE_PROFIT: LIMIT on the opposite side at ``take_profit.limit_price``, or entry price ±
  percent/amount. STOP_LOSS: STOP at ``stop_loss.stop_price`` or entry price ∓ percent/amount;
  STOP_LIMIT when ``stop_loss.type`` is stop_limit (its ``limit_price`` required); TRAILING_STOP
  when trailing_stop (percent → trail_percent, amount → trail_price). Same qty as the entry, GTC,
  ``parent_client_order_id`` = the entry's: active once it fills, OCO with each other. The entry
  price is the limit price, else stop price, else signal price. A leg that cannot be priced →
  Denial ``bracket_needs_price`` (order None); one on the wrong side of the entry price or not
  positive → ``invalid_bracket_price`` (leg attached). Either way the entry still goes.

Prices computed here (legs from percent/amount, a limit from the signal price) are rounded half-up
to $0.01 at or above $1 and to $0.0001 below (Alpaca "Orders at Alpaca", sub-penny increments,
following SEC Rule 612). Prices the signal gives are passed on as given.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from viewzenix.domain.model import (
    AccountState,
    Action,
    OpenOrder,
    OrderSide,
    OrderType,
    PositionSide,
    PositionState,
    QuantityType,
    Sentiment,
    Signal,
    StopLoss,
    StrEnum,
    TakeProfit,
    TimeInForce,
    TradingSettings,
)
from viewzenix.domain.symbols import canonical_symbol
from viewzenix.domain.windows import entry_denial

__all__ = [
    "MAX_CLIENT_ORDER_ID_LENGTH",
    "Denial",
    "Intent",
    "OrderPurpose",
    "OrderRequest",
    "Plan",
    "client_order_id",
    "is_stale",
    "needs_account",
    "plan_signal",
]

MAX_CLIENT_ORDER_ID_LENGTH = 48  # Alpaca: client_order_id ≤ 48 characters
_HUNDRED = Decimal(100)
_WHOLE = Decimal(1)
_CENT = Decimal("0.01")
_SUB_PENNY = Decimal("0.0001")


class Intent(StrEnum):
    """What a signal means for the position (stored as text)."""

    ENTER = "enter"
    ADD = "add"
    EXIT = "exit"
    PARTIAL_EXIT = "partial_exit"
    REVERSE = "reverse"
    CANCEL = "cancel"


class OrderPurpose(StrEnum):
    """Why an order exists: it opens, closes, or protects a position."""

    ENTRY = "entry"
    EXIT = "exit"
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"


_LEG_CODES = {
    OrderPurpose.ENTRY: "en",
    OrderPurpose.EXIT: "ex",
    OrderPurpose.TAKE_PROFIT: "tp",
    OrderPurpose.STOP_LOSS: "sl",
}
_PRIMARY = (OrderPurpose.ENTRY, OrderPurpose.EXIT)


@dataclass(frozen=True)
class OrderRequest:
    """One order to submit (or that was denied), complete enough for any broker adapter.

    ``qty`` > 0 in shares; prices in the quote currency. ``trail_price`` is Alpaca's
    ``trail_price`` (TradersPost ``trailAmount``). ``reference_price`` is the signal's price, what
    a simulated market order fills at. ``parent_client_order_id`` marks a take-profit/stop-loss
    leg: active once that parent fills, OCO with its sibling leg.
    """

    client_order_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    order_type: OrderType
    time_in_force: TimeInForce
    purpose: OrderPurpose
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    extended_hours: bool = False
    reference_price: Decimal | None = None
    parent_client_order_id: str | None = None


@dataclass(frozen=True)
class Denial:
    """A refusal: machine-readable ``code``, a message with the numbers, the refused order.

    ``order`` is recorded with status DENIED, or is None when the refusal came before an order
    existed. Codes: stale_signal, symbol_not_allowed, short_not_allowed, add_not_allowed,
    outside_trading_window,
    reverse_not_allowed, max_position_qty, max_position_notional, no_price_for_notional_limit,
    invalid_order_prices, invalid_quantity, no_price_for_sizing, risk_sizing_needs_stop,
    percent_of_position_needs_position, quantity_rounds_to_zero, bracket_needs_price,
    invalid_bracket_price.
    """

    code: str
    message: str
    order: OrderRequest | None = None


@dataclass(frozen=True)
class Plan:
    """What to do for one signal: cancel these, then submit these in order; these were refused.

    ``ignored_reason`` set means nothing to do (then ``orders``, ``denials`` and
    ``cancel_client_order_ids`` are empty). ``intent`` is what the signal asked for, also when
    part or all of it was denied; None when denied before interpretation (stale signal) or when
    already at a target position. The entry of a REVERSE should be submitted once its exit has
    filled (TradersPost: "wait for the exit to fully fill, then send an order for the entry").
    """

    intent: Intent | None
    cancel_client_order_ids: tuple[str, ...] = ()
    orders: tuple[OrderRequest, ...] = ()
    denials: tuple[Denial, ...] = ()
    ignored_reason: str | None = None


def client_order_id(signal_id: uuid.UUID, leg: str) -> str:
    """Derive the broker ``client_order_id`` of one leg of a signal's plan.

    Returns ``f"vzx-{signal_id.hex}-{leg}"``: 39 characters for the leg codes used here ("en",
    "ex", "tp", "sl"). Same signal and leg, same id, so a retried job cannot submit twice
    (Alpaca: client_order_id ≤ 48 characters and unique per account forever; a duplicate is
    refused). Raises ValueError for an empty leg or a result longer than 48 characters.
    """
    if not leg:
        raise ValueError("leg must not be empty")
    value = f"vzx-{signal_id.hex}-{leg}"
    if len(value) > MAX_CLIENT_ORDER_ID_LENGTH:
        raise ValueError(
            f"client_order_id {value!r} has {len(value)} characters; "
            f"Alpaca allows at most {MAX_CLIENT_ORDER_ID_LENGTH}"
        )
    return value


def plan_signal(
    *,
    signal: Signal,
    signal_id: uuid.UUID,
    position: PositionState,
    account: AccountState,
    open_orders: Sequence[OpenOrder],
    settings: TradingSettings,
    now: datetime,
) -> Plan:
    """Decide what one signal does: cancels, orders (exit before entry), denials or nothing.

    ``position`` is the signal's symbol (signed qty, short < 0); ``account`` amounts in account
    currency; ``open_orders`` may include other symbols (ignored); ``now`` and
    ``signal.signal_time`` are timezone-aware UTC (mixing naive and aware raises TypeError).
    The rules and their vendor sources are in this module's docstring. Never raises for a
    trading reason: refusals are ``Denial``s in the plan.
    """
    ctx = _Context(
        signal=signal,
        signal_id=signal_id,
        position=position,
        account=account,
        settings=settings,
        open_orders=tuple(o for o in open_orders if _same_symbol(o.symbol, signal.ticker)),
        now=now,
    )
    stale = _stale_denial(signal, settings.risk.max_signal_age_seconds, now)
    if stale is not None:
        return Plan(intent=None, denials=(stale,))
    plan = _plan_action(ctx)
    if not _symbol_allowed(signal.ticker, settings.risk.allowed_symbols):
        return _deny_symbol(ctx, plan)
    return plan


# --- context and small helpers -------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    signal: Signal
    signal_id: uuid.UUID
    position: PositionState
    account: AccountState
    settings: TradingSettings
    open_orders: tuple[OpenOrder, ...]
    now: datetime | None = None

    @property
    def symbol(self) -> str:
        return self.signal.ticker

    @property
    def held(self) -> Decimal:
        return abs(self.position.qty)

    def signal_quantity(self) -> tuple[Decimal, QuantityType] | None:
        """The signal's own quantity and type, when it has one and the config uses it."""
        if self.signal.quantity is None or not self.settings.use_signal_quantity:
            return None
        return self.signal.quantity, self.signal.quantity_type or QuantityType.FIXED_QUANTITY

    def sizing_quantity(self) -> tuple[Decimal, QuantityType]:
        return self.signal_quantity() or (self.settings.quantity, self.settings.quantity_type)

    def describe_position(self) -> str:
        if self.position.qty == 0:
            return f"{self.symbol} is flat"
        return f"{self.symbol} is {self.position.side} {_fmt(self.held)}"


@dataclass(frozen=True)
class _Pricing:
    """The resolved order type, time in force and prices shared by a plan's exit and entry."""

    order_type: OrderType
    time_in_force: TimeInForce
    extended_hours: bool
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    reference_price: Decimal | None = None

    @property
    def entry_price(self) -> Decimal | None:
        """The price an entry is expected to fill at: limit, else stop, else the signal's."""
        for price in (self.limit_price, self.stop_price, self.reference_price):
            if price is not None:
                return price
        return None


def _fmt(value: Decimal) -> str:
    """Show a Decimal without exponent or trailing zeros (1E+2 → 100, 10.50 → 10.5)."""
    return f"{value.normalize():f}"


def _same_symbol(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name one instrument, in any spelling (``BTCUSD`` = ``BTC/USD``)."""
    return canonical_symbol(a) == canonical_symbol(b)


def _symbol_allowed(symbol: str, allowed: tuple[str, ...]) -> bool:
    return not allowed or any(_same_symbol(symbol, s) for s in allowed)


def _side_of(order_side: OrderSide) -> PositionSide:
    return PositionSide.LONG if order_side is OrderSide.BUY else PositionSide.SHORT


def _opposite(order_side: OrderSide) -> OrderSide:
    return OrderSide.SELL if order_side is OrderSide.BUY else OrderSide.BUY


def _order_side_for(position_qty: Decimal) -> OrderSide:
    """The side that grows a position of this sign (BUY for long)."""
    return OrderSide.BUY if position_qty > 0 else OrderSide.SELL


def _signed(order_side: OrderSide, qty: Decimal) -> Decimal:
    return qty if order_side is OrderSide.BUY else -qty


def _round_price(price: Decimal) -> Decimal:
    """Round half-up to $0.01 at or above $1, to $0.0001 below (Alpaca sub-penny rule)."""
    step = _CENT if price >= _WHOLE else _SUB_PENNY
    return price.quantize(step, rounding=ROUND_HALF_UP)


def _ignored(intent: Intent | None, reason: str) -> Plan:
    return Plan(intent=intent, ignored_reason=reason)


def _denied(intent: Intent | None, denial: Denial) -> Plan:
    return Plan(intent=intent, denials=(denial,))


# --- whole-signal rules --------------------------------------------------------------------


_EQUITY_SIZING = frozenset({QuantityType.PERCENT_OF_EQUITY, QuantityType.RISK_PERCENT})


def needs_account(signal: Signal, settings: TradingSettings) -> bool:
    """Return True when planning ``signal`` may size from the account's equity.

    Only percent_of_equity and risk_percent read ``account``; the caller can skip asking the
    broker for it otherwise (a network call with a real broker).
    """
    return signal.quantity_type in _EQUITY_SIZING or settings.quantity_type in _EQUITY_SIZING


def is_stale(signal: Signal, settings: TradingSettings, now: datetime) -> bool:
    """Return True when the signal's own time is older than ``risk.max_signal_age_seconds``.

    A stale alert is denied whole; its price is also too old to cross resting orders.
    """
    return _stale_denial(signal, settings.risk.max_signal_age_seconds, now) is not None


def _stale_denial(signal: Signal, max_age_seconds: int | None, now: datetime) -> Denial | None:
    if signal.signal_time is None or max_age_seconds is None:
        return None
    age = now - signal.signal_time
    if age <= timedelta(seconds=max_age_seconds):
        return None
    seconds = _fmt(Decimal(str(age.total_seconds())))
    return Denial(
        "stale_signal",
        f"signal time {signal.signal_time.isoformat()} is {seconds} s old "
        f"at {now.isoformat()}, above max_signal_age_seconds {max_age_seconds}",
        None,
    )


def _deny_symbol(ctx: _Context, plan: Plan) -> Plan:
    """Turn every exit/entry the plan would have placed into a symbol_not_allowed Denial."""
    allowed = ", ".join(ctx.settings.risk.allowed_symbols)
    message = f"{ctx.symbol} is not in allowed_symbols ({allowed})"
    refused = [o for o in plan.orders if o.purpose in _PRIMARY]
    refused += [d.order for d in plan.denials if d.order is not None and d.order.purpose in _PRIMARY]
    denials = tuple(Denial("symbol_not_allowed", message, order) for order in refused)
    return Plan(
        intent=plan.intent,
        denials=denials or (Denial("symbol_not_allowed", message, None),),
    )


# --- dispatch by action --------------------------------------------------------------------


def _plan_action(ctx: _Context) -> Plan:
    action = ctx.signal.action
    if action is Action.CANCEL:
        return _plan_cancel(ctx)
    if action is Action.EXIT:
        return _plan_exit(ctx)
    if action is Action.ADD:
        return _plan_add(ctx)
    side = OrderSide.BUY if action is Action.BUY else OrderSide.SELL
    if ctx.signal.target_position is not None and ctx.settings.use_signal_quantity:
        return _plan_to_target(ctx, ctx.signal.target_position)
    return _plan_trade(ctx, side)


def _plan_cancel(ctx: _Context) -> Plan:
    wanted = ctx.signal.cancel_order_type
    ids = tuple(o.client_order_id for o in ctx.open_orders if wanted is None or o.order_type == wanted)
    if not ids:
        kind = f"{wanted} " if wanted is not None else ""
        return _ignored(Intent.CANCEL, f"no open {kind}orders for {ctx.symbol} to cancel")
    return Plan(intent=Intent.CANCEL, cancel_client_order_ids=ids)


def _plan_exit(ctx: _Context) -> Plan:
    if ctx.position.qty == 0:
        return _ignored(Intent.EXIT, f"nothing to exit: {ctx.describe_position()}")
    pricing = _resolve_pricing(ctx)
    if isinstance(pricing, Denial):
        return _denied(Intent.EXIT, pricing)
    qty = ctx.held
    signal_quantity = ctx.signal_quantity()
    if signal_quantity is not None:
        exit_side = _opposite(_order_side_for(ctx.position.qty))
        sized = _size(ctx, pricing, exit_side, *signal_quantity, cap=ctx.held)
        if isinstance(sized, Denial):
            return _denied(Intent.EXIT, sized)
        qty = sized
    intent = Intent.PARTIAL_EXIT if qty < ctx.held else Intent.EXIT
    return _build(ctx, pricing, intent, exit_qty=qty)


def _plan_add(ctx: _Context) -> Plan:
    if ctx.position.qty == 0:
        return _ignored(Intent.ADD, f"nothing to add to: {ctx.describe_position()}")
    pricing = _resolve_pricing(ctx)
    if isinstance(pricing, Denial):
        return _denied(Intent.ADD, pricing)
    side = _order_side_for(ctx.position.qty)
    entry = _size(ctx, pricing, side, *ctx.sizing_quantity())
    return _build(ctx, pricing, Intent.ADD, entry_side=side, entry=entry)


def _plan_to_target(ctx: _Context, target: Decimal) -> Plan:
    """Move the position from its quantity to ``target`` exactly (strategy.position_size)."""
    current = ctx.position.qty
    if target == current:
        return _ignored(None, f"{ctx.symbol} is already at the target position {_fmt(target)}")
    intent, exit_qty, entry_qty = _target_steps(current, target)
    pricing = _resolve_pricing(ctx)
    if isinstance(pricing, Denial):
        return _denied(intent, pricing)
    side = _order_side_for(target) if entry_qty else None
    return _build(ctx, pricing, intent, exit_qty=exit_qty, entry_side=side, entry=entry_qty)


def _target_steps(current: Decimal, target: Decimal) -> tuple[Intent, Decimal | None, Decimal | None]:
    """(intent, exit qty, entry qty) that take a signed position from current to target."""
    if current == 0:
        return Intent.ENTER, None, abs(target)
    if target == 0:
        return Intent.EXIT, abs(current), None
    if (current > 0) != (target > 0):
        return Intent.REVERSE, abs(current), abs(target)
    if abs(target) > abs(current):
        return Intent.ADD, None, abs(target) - abs(current)
    return Intent.PARTIAL_EXIT, abs(current) - abs(target), None


def _plan_trade(ctx: _Context, side: OrderSide) -> Plan:
    """Plan a buy or sell from the position and the sentiment (see the module docstring)."""
    wanted = _side_of(side)
    sentiment = ctx.signal.sentiment
    goes_wanted_way = sentiment is None or sentiment.value == wanted.value
    held_side = ctx.position.side
    if held_side is PositionSide.FLAT or held_side is wanted:
        if not goes_wanted_way:
            return _ignored(
                Intent.EXIT,
                f"{ctx.signal.action} with sentiment {sentiment} only reduces a "
                f"{_side_of(_opposite(side))} position, and {ctx.describe_position()}: "
                "nothing to exit",
            )
        intent = Intent.ENTER if held_side is PositionSide.FLAT else Intent.ADD
        return _plan_entry(ctx, intent, side)
    return _plan_against_position(ctx, side)


def _plan_entry(ctx: _Context, intent: Intent, side: OrderSide) -> Plan:
    pricing = _resolve_pricing(ctx)
    if isinstance(pricing, Denial):
        return _denied(intent, pricing)
    entry = _size(ctx, pricing, side, *ctx.sizing_quantity())
    return _build(ctx, pricing, intent, entry_side=side, entry=entry)


def _plan_against_position(ctx: _Context, side: OrderSide) -> Plan:
    """A buy while short (or a sell while long): partial exit, exit, or reverse."""
    pricing = _resolve_pricing(ctx)
    if isinstance(pricing, Denial):
        return _denied(Intent.EXIT, pricing)
    sentiment = ctx.signal.sentiment
    if sentiment is Sentiment.FLAT:
        return _build(ctx, pricing, Intent.EXIT, exit_qty=ctx.held)
    keeps_side = sentiment is not None and sentiment.value == ctx.position.side.value
    signal_quantity = ctx.signal_quantity()
    signal_qty: Decimal | Denial | None = None
    if signal_quantity is not None:
        signal_qty = _size(ctx, pricing, side, *signal_quantity)
    if (sentiment is None or keeps_side) and signal_qty is not None:
        if isinstance(signal_qty, Denial):
            return _denied(Intent.EXIT, signal_qty)
        if signal_qty < ctx.held:
            return _build(ctx, pricing, Intent.PARTIAL_EXIT, exit_qty=signal_qty)
    if keeps_side:
        return _build(ctx, pricing, Intent.EXIT, exit_qty=ctx.held)
    return _plan_reverse(ctx, pricing, side, signal_qty)


def _plan_reverse(
    ctx: _Context, pricing: _Pricing, side: OrderSide, signal_qty: Decimal | Denial | None
) -> Plan:
    entry: Decimal | Denial
    if signal_qty is None:
        entry = _size(ctx, pricing, side, *ctx.sizing_quantity())
    elif isinstance(signal_qty, Denial) or not ctx.settings.subtract_exit_quantity:
        entry = signal_qty
    else:
        entry = signal_qty - ctx.held
        if entry <= 0:
            return _build(ctx, pricing, Intent.EXIT, exit_qty=ctx.held)
    return _build(ctx, pricing, Intent.REVERSE, exit_qty=ctx.held, entry_side=side, entry=entry)


# --- order type and prices -----------------------------------------------------------------


def _resolve_pricing(ctx: _Context) -> _Pricing | Denial:
    """Pick order type and time in force and check the prices the type needs."""
    signal, settings = ctx.signal, ctx.settings
    order_type = signal.order_type or settings.order_type
    base = _Pricing(
        order_type=order_type,
        time_in_force=signal.time_in_force or settings.time_in_force,
        extended_hours=bool(signal.extended_hours),
        reference_price=signal.signal_price,
    )
    if order_type is OrderType.MARKET:
        return base
    if order_type is OrderType.LIMIT:
        return _limit_pricing(base, signal)
    if order_type is OrderType.STOP:
        return _stop_pricing(base, signal)
    if order_type is OrderType.STOP_LIMIT:
        return _stop_limit_pricing(base, signal)
    return _trailing_pricing(base, signal)


def _invalid_prices(message: str) -> Denial:
    return Denial("invalid_order_prices", message, None)


def _limit_pricing(base: _Pricing, signal: Signal) -> _Pricing | Denial:
    if signal.limit_price is not None:
        return replace(base, limit_price=signal.limit_price)
    if signal.signal_price is not None:
        return replace(base, limit_price=_round_price(signal.signal_price))
    return _invalid_prices("a limit order needs limitPrice or a signal price; the signal has neither")


def _stop_pricing(base: _Pricing, signal: Signal) -> _Pricing | Denial:
    if signal.stop_price is None:
        return _invalid_prices("a stop order needs stopPrice; the signal has none")
    return replace(base, stop_price=signal.stop_price)


def _stop_limit_pricing(base: _Pricing, signal: Signal) -> _Pricing | Denial:
    if signal.stop_price is None or signal.limit_price is None:
        return _invalid_prices(
            "a stop_limit order needs both stopPrice and limitPrice; the signal has "
            f"stopPrice {signal.stop_price} and limitPrice {signal.limit_price}"
        )
    return replace(base, stop_price=signal.stop_price, limit_price=signal.limit_price)


def _trailing_pricing(base: _Pricing, signal: Signal) -> _Pricing | Denial:
    if (signal.trail_amount is None) == (signal.trail_percent is None):
        return _invalid_prices(
            "a trailing_stop order needs exactly one of trailAmount and trailPercent; the signal "
            f"has trailAmount {signal.trail_amount} and trailPercent {signal.trail_percent}"
        )
    return replace(base, trail_price=signal.trail_amount, trail_percent=signal.trail_percent)


# --- sizing --------------------------------------------------------------------------------


def _size(
    ctx: _Context,
    pricing: _Pricing,
    side: OrderSide,
    amount: Decimal,
    quantity_type: QuantityType,
    *,
    cap: Decimal | None = None,
) -> Decimal | Denial:
    """Turn (amount, quantity type) into shares for an order on ``side``, or a Denial.

    ``cap`` (an exit's held quantity) wins over rounding: 100 % of 0.5 shares is 0.5.
    """
    if amount <= 0:
        return Denial("invalid_quantity", f"{quantity_type} {_fmt(amount)} is not positive", None)
    if quantity_type is QuantityType.FIXED_QUANTITY:
        return amount if cap is None else min(amount, cap)
    raw = _raw_size(ctx, pricing, side, amount, quantity_type)
    if isinstance(raw, Denial):
        return raw
    if cap is not None and raw >= cap:
        return cap
    whole = raw.quantize(_WHOLE, rounding=ROUND_DOWN)
    if whole <= 0:
        return Denial(
            "quantity_rounds_to_zero",
            f"{quantity_type} {_fmt(amount)} gives {_fmt(raw)} shares of {ctx.symbol}, "
            "which rounds down to 0 whole shares",
            None,
        )
    return whole


def _raw_size(
    ctx: _Context,
    pricing: _Pricing,
    side: OrderSide,
    amount: Decimal,
    quantity_type: QuantityType,
) -> Decimal | Denial:
    if quantity_type is QuantityType.PERCENT_OF_POSITION:
        if ctx.held == 0:
            return Denial(
                "percent_of_position_needs_position",
                f"percent_of_position {_fmt(amount)} needs a position, and {ctx.describe_position()}",
                None,
            )
        return ctx.held * amount / _HUNDRED
    price = pricing.entry_price
    if price is None or price <= 0:
        return Denial(
            "no_price_for_sizing",
            f"{quantity_type} sizing needs a price: the signal has no positive limitPrice, "
            "stopPrice or signal price",
            None,
        )
    equity_share = ctx.account.equity * amount / _HUNDRED
    if quantity_type is QuantityType.DOLLAR_AMOUNT:
        return amount / price
    if quantity_type is QuantityType.PERCENT_OF_EQUITY:
        return equity_share / price
    risk = amount if quantity_type is QuantityType.RISK_DOLLAR_AMOUNT else equity_share
    distance = _stop_distance(ctx, side, price, quantity_type)
    if isinstance(distance, Denial):
        return distance
    return risk / distance


def _stop_distance(
    ctx: _Context, side: OrderSide, price: Decimal, quantity_type: QuantityType
) -> Decimal | Denial:
    """Loss per share between ``price`` and the signal's stop, for risk sizing."""
    stop_loss = ctx.signal.stop_loss
    stop = None if stop_loss is None else _stop_loss_price(stop_loss, side, price)
    if stop is None:
        return Denial(
            "risk_sizing_needs_stop",
            f"{quantity_type} sizing needs a stop loss (stopPrice, percent or amount); the signal has none",
            None,
        )
    distance = price - stop if side is OrderSide.BUY else stop - price
    if distance <= 0:
        below = "below" if side is OrderSide.BUY else "above"
        return Denial(
            "risk_sizing_needs_stop",
            f"{quantity_type} sizing needs the stop {below} the entry price: stop {_fmt(stop)}, "
            f"entry price {_fmt(price)} for a {side}",
            None,
        )
    return distance


# --- building the plan ---------------------------------------------------------------------


def _build(
    ctx: _Context,
    pricing: _Pricing,
    intent: Intent,
    *,
    exit_qty: Decimal | None = None,
    entry_side: OrderSide | None = None,
    entry: Decimal | Denial | None = None,
) -> Plan:
    """Assemble exit, entry (risk-checked) and its legs, and the cancels that go first."""
    orders: list[OrderRequest] = []
    denials: list[Denial] = []
    if exit_qty:
        exit_side = _opposite(_order_side_for(ctx.position.qty))
        orders.append(_order(ctx, pricing, exit_side, exit_qty, OrderPurpose.EXIT))
    if entry is not None and entry_side is not None:
        exited = _signed(_order_side_for(ctx.position.qty), exit_qty or Decimal(0))
        remaining = ctx.position.qty - exited
        placed, refused = _entry_orders(ctx, pricing, intent, entry_side, entry, remaining)
        orders += placed
        denials += refused
    return Plan(
        intent=intent,
        cancel_client_order_ids=_cancels(ctx, orders, denials),
        orders=tuple(orders),
        denials=tuple(denials),
    )


def _entry_orders(
    ctx: _Context,
    pricing: _Pricing,
    intent: Intent,
    side: OrderSide,
    entry: Decimal | Denial,
    remaining: Decimal,
) -> tuple[list[OrderRequest], list[Denial]]:
    """The entry and its legs, or the entry's Denial. ``remaining``: signed qty before entry."""
    if isinstance(entry, Denial):
        return [], [_policy_denial(ctx, intent, side, None) or entry]
    order = _order(ctx, pricing, side, entry, OrderPurpose.ENTRY)
    denial = _policy_denial(ctx, intent, side, order) or _limit_denial(
        ctx, pricing, order, abs(remaining + _signed(side, entry))
    )
    if denial is not None:
        return [], [denial]
    legs, leg_denials = _legs(ctx, pricing, order)
    return [order, *legs], leg_denials


def _order(
    ctx: _Context, pricing: _Pricing, side: OrderSide, qty: Decimal, purpose: OrderPurpose
) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id(ctx.signal_id, _LEG_CODES[purpose]),
        symbol=ctx.symbol,
        side=side,
        qty=qty,
        order_type=pricing.order_type,
        time_in_force=pricing.time_in_force,
        purpose=purpose,
        limit_price=pricing.limit_price,
        stop_price=pricing.stop_price,
        trail_price=pricing.trail_price,
        trail_percent=pricing.trail_percent,
        extended_hours=pricing.extended_hours,
        reference_price=pricing.reference_price,
    )


def _cancels(ctx: _Context, orders: list[OrderRequest], denials: list[Denial]) -> tuple[str, ...]:
    """Open orders to cancel before submitting ``orders`` (see "Cancels" in the module doc)."""
    if not orders:
        return ()
    own = {o.client_order_id for o in orders}
    own |= {d.order.client_order_id for d in denials if d.order is not None}
    everything = ctx.position.qty == 0 or any(o.purpose is OrderPurpose.EXIT for o in orders)
    return tuple(
        o.client_order_id
        for o in ctx.open_orders
        if o.client_order_id not in own and (everything or o.purpose == OrderPurpose.ENTRY)
    )


# --- risk rules ----------------------------------------------------------------------------


def _policy_denial(
    ctx: _Context, intent: Intent, side: OrderSide, order: OrderRequest | None
) -> Denial | None:
    """Paused entries, then reverse, short and add permissions (none depends on the order's size)."""
    risk = ctx.settings.risk
    new_side = _side_of(side)
    if risk.entries_paused:
        return Denial(
            "entries_paused",
            f"entries are paused for this webhook config: no {new_side} {ctx.symbol} position is "
            "entered or added to (exits still run)",
            order,
        )
    outside = entry_denial(risk.trading_windows, ctx.now) if ctx.now is not None else None
    if outside is not None:
        return Denial("outside_trading_window", outside, order)
    if intent is Intent.REVERSE and not ctx.settings.allow_reverse:
        return Denial(
            "reverse_not_allowed",
            f"allow_reverse is off: the {ctx.position.side} {ctx.symbol} position is exited, "
            f"but no {new_side} position is entered",
            order,
        )
    if side is OrderSide.SELL and not risk.allow_short:
        return Denial(
            "short_not_allowed",
            f"allow_short is off: {ctx.symbol} cannot be sold short ({ctx.describe_position()})",
            order,
        )
    if intent is Intent.ADD and not risk.allow_add:
        return Denial(
            "add_not_allowed",
            f"allow_add is off: {ctx.describe_position()}, and this {side} would add to it",
            order,
        )
    return None


def _limit_denial(ctx: _Context, pricing: _Pricing, order: OrderRequest, after: Decimal) -> Denial | None:
    """max_position_qty and max_position_notional on the absolute position after ``order``."""
    risk = ctx.settings.risk
    if risk.max_position_qty is not None and after > risk.max_position_qty:
        return Denial(
            "max_position_qty",
            f"{ctx.symbol} position after this {order.side} of {_fmt(order.qty)} would be "
            f"{_fmt(after)}, above max_position_qty {_fmt(risk.max_position_qty)}",
            order,
        )
    if risk.max_position_notional is None:
        return None
    price = pricing.entry_price
    if price is None:
        return Denial(
            "no_price_for_notional_limit",
            f"max_position_notional {_fmt(risk.max_position_notional)} needs a price to check, "
            "and the signal has no limitPrice, stopPrice or signal price",
            order,
        )
    notional = after * price
    if notional > risk.max_position_notional:
        return Denial(
            "max_position_notional",
            f"{ctx.symbol} position after this {order.side} would be {_fmt(after)} * "
            f"{_fmt(price)} = {_fmt(notional)}, above max_position_notional "
            f"{_fmt(risk.max_position_notional)}",
            order,
        )
    return None


# --- take-profit and stop-loss legs --------------------------------------------------------


def _legs(ctx: _Context, pricing: _Pricing, entry: OrderRequest) -> tuple[list[OrderRequest], list[Denial]]:
    """The entry's take-profit and stop-loss legs, and Denials for those that cannot go."""
    results: list[OrderRequest | Denial] = []
    if ctx.signal.take_profit is not None:
        results.append(_take_profit_leg(ctx, ctx.signal.take_profit, entry, pricing.entry_price))
    if ctx.signal.stop_loss is not None:
        results.append(_stop_loss_leg(ctx, ctx.signal.stop_loss, entry, pricing.entry_price))
    legs = [r for r in results if isinstance(r, OrderRequest)]
    denials = [r for r in results if isinstance(r, Denial)]
    return legs, denials


def _offset(base: Decimal, sign: int, percent: Decimal | None, amount: Decimal | None) -> Decimal | None:
    """``base`` moved by ``sign`` * (percent of base, else amount), rounded to a valid tick."""
    if percent is not None:
        return _round_price(base + sign * base * percent / _HUNDRED)
    if amount is not None:
        return _round_price(base + sign * amount)
    return None


def _take_profit_price(tp: TakeProfit, entry_side: OrderSide, base: Decimal | None) -> Decimal | None:
    if tp.limit_price is not None:
        return tp.limit_price
    if base is None:
        return None
    return _offset(base, 1 if entry_side is OrderSide.BUY else -1, tp.percent, tp.amount)


def _stop_loss_price(sl: StopLoss, entry_side: OrderSide, base: Decimal | None) -> Decimal | None:
    if sl.stop_price is not None:
        return sl.stop_price
    if base is None:
        return None
    return _offset(base, -1 if entry_side is OrderSide.BUY else 1, sl.percent, sl.amount)


def _leg(
    ctx: _Context,
    entry: OrderRequest,
    purpose: OrderPurpose,
    order_type: OrderType,
    **prices: Decimal | None,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id(ctx.signal_id, _LEG_CODES[purpose]),
        symbol=entry.symbol,
        side=_opposite(entry.side),
        qty=entry.qty,
        order_type=order_type,
        time_in_force=TimeInForce.GTC,
        purpose=purpose,
        parent_client_order_id=entry.client_order_id,
        **prices,
    )


def _needs_price(what: str, relative: bool) -> Denial:
    reason = (
        "is relative (percent or amount), and the entry has no limit, stop or signal price"
        if relative
        else "has no absolute price, percent or amount"
    )
    return Denial("bracket_needs_price", f"{what} {reason}: the leg is not placed", None)


def _wrong_side(leg: OrderRequest, price: Decimal, base: Decimal | None) -> bool:
    """True when ``price`` is not positive or lies on the wrong side of the entry price."""
    if price <= 0:
        return True
    if base is None:
        return False
    if price == base:
        return True
    return (price > base) != _belongs_above(leg)


def _belongs_above(leg: OrderRequest) -> bool:
    """A sell take-profit and a buy stop-loss lie above the entry price; the others below."""
    return (leg.purpose is OrderPurpose.TAKE_PROFIT) == (leg.side is OrderSide.SELL)


def _invalid_leg(leg: OrderRequest, price: Decimal, base: Decimal | None) -> Denial:
    if price <= 0 or base is None:
        problem = f"{leg.purpose} price {_fmt(price)} is not positive"
    else:
        where = "above" if _belongs_above(leg) else "below"
        problem = (
            f"{leg.purpose} price {_fmt(price)} must be {where} the entry price {_fmt(base)} "
            f"of a {_opposite(leg.side)} entry"
        )
    return Denial("invalid_bracket_price", f"{problem}: the leg is not placed", leg)


def _take_profit_leg(
    ctx: _Context, tp: TakeProfit, entry: OrderRequest, base: Decimal | None
) -> OrderRequest | Denial:
    price = _take_profit_price(tp, entry.side, base)
    if price is None:
        return _needs_price("take_profit", tp.percent is not None or tp.amount is not None)
    leg = _leg(ctx, entry, OrderPurpose.TAKE_PROFIT, OrderType.LIMIT, limit_price=price)
    if _wrong_side(leg, price, base):
        return _invalid_leg(leg, price, base)
    return leg


def _stop_loss_leg(
    ctx: _Context, sl: StopLoss, entry: OrderRequest, base: Decimal | None
) -> OrderRequest | Denial:
    if sl.type is OrderType.TRAILING_STOP:
        return _trailing_stop_leg(ctx, sl, entry)
    if sl.type not in (OrderType.STOP, OrderType.STOP_LIMIT):
        return Denial(
            "invalid_bracket_price",
            f"stop_loss type {sl.type} is not one of stop, stop_limit, trailing_stop: the leg is not placed",
            None,
        )
    stop = _stop_loss_price(sl, entry.side, base)
    if stop is None:
        return _needs_price("stop_loss", sl.percent is not None or sl.amount is not None)
    if sl.type is OrderType.STOP_LIMIT and sl.limit_price is None:
        return Denial(
            "bracket_needs_price",
            "stop_loss of type stop_limit has no limitPrice: the leg is not placed",
            None,
        )
    leg = _leg(ctx, entry, OrderPurpose.STOP_LOSS, sl.type, stop_price=stop, limit_price=sl.limit_price)
    if _wrong_side(leg, stop, base):
        return _invalid_leg(leg, stop, base)
    return leg


def _trailing_stop_leg(ctx: _Context, sl: StopLoss, entry: OrderRequest) -> OrderRequest | Denial:
    if (sl.percent is None) == (sl.amount is None):
        return Denial(
            "bracket_needs_price",
            "stop_loss of type trailing_stop needs exactly one of percent and amount; it has "
            f"percent {sl.percent} and amount {sl.amount}: the leg is not placed",
            None,
        )
    return _leg(
        ctx,
        entry,
        OrderPurpose.STOP_LOSS,
        OrderType.TRAILING_STOP,
        trail_percent=sl.percent,
        trail_price=sl.amount,
    )
