"""Specification of the order-planning engine, grouped by use case."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from viewzenix.domain.engine import (
    MAX_CLIENT_ORDER_ID_LENGTH,
    Denial,
    Intent,
    OrderPurpose,
    OrderRequest,
    Plan,
    client_order_id,
    plan_signal,
)
from viewzenix.domain.model import (
    AccountState,
    Action,
    OpenOrder,
    OrderSide,
    OrderType,
    PositionState,
    QuantityType,
    RiskRules,
    Sentiment,
    Signal,
    StopLoss,
    TakeProfit,
    TimeInForce,
    TradingSettings,
)

SIGNAL_ID = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
NOW = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)
D = Decimal


def signal(action: str, **fields: Any) -> Signal:
    fields.setdefault("ticker", "AAPL")
    return Signal(action=Action(action), **fields)


def settings(**fields: Any) -> TradingSettings:
    risk_fields = {k: fields.pop(k) for k in list(fields) if k in RiskRules.__dataclass_fields__}
    return TradingSettings(risk=RiskRules(**risk_fields), **fields)


def plan(
    sig: Signal,
    *,
    position: str = "0",
    config: TradingSettings | None = None,
    equity: str = "100000",
    open_orders: tuple[OpenOrder, ...] = (),
    now: datetime = NOW,
) -> Plan:
    return plan_signal(
        signal=sig,
        signal_id=SIGNAL_ID,
        position=PositionState(symbol="AAPL", qty=D(position), avg_entry_price=D("100")),
        account=AccountState(cash=D(equity), equity=D(equity)),
        open_orders=open_orders,
        settings=config or TradingSettings(),
        now=now,
    )


def open_order(
    name: str, purpose: str, order_type: OrderType = OrderType.LIMIT, symbol: str = "AAPL"
) -> OpenOrder:
    return OpenOrder(
        order_id=f"broker-{name}",
        client_order_id=name,
        symbol=symbol,
        side=OrderSide.SELL,
        order_type=order_type,
        qty=D("10"),
        purpose=purpose,
    )


def cid(leg: str) -> str:
    return client_order_id(SIGNAL_ID, leg)


def the(result: Plan, purpose: OrderPurpose) -> OrderRequest:
    (order,) = [o for o in result.orders if o.purpose is purpose]
    return order


def steps(result: Plan) -> list[tuple[OrderPurpose, OrderSide, Decimal]]:
    return [(o.purpose, o.side, o.qty) for o in result.orders]


def only_denial(result: Plan) -> Denial:
    (denial,) = result.denials
    return denial


ENTRY, EXIT = OrderPurpose.ENTRY, OrderPurpose.EXIT
TP, SL = OrderPurpose.TAKE_PROFIT, OrderPurpose.STOP_LOSS
BUY, SELL = OrderSide.BUY, OrderSide.SELL


# --- client_order_id -----------------------------------------------------------------------


def test_client_order_id_is_deterministic_and_within_alpaca_limit() -> None:
    first = client_order_id(SIGNAL_ID, "en")
    assert first == client_order_id(SIGNAL_ID, "en")
    assert first == f"vzx-{SIGNAL_ID.hex}-en"
    assert len(first) == 39 <= MAX_CLIENT_ORDER_ID_LENGTH == 48


def test_client_order_ids_differ_per_leg_and_per_signal() -> None:
    ids = {client_order_id(SIGNAL_ID, leg) for leg in ("en", "ex", "tp", "sl")}
    assert len(ids) == 4
    assert client_order_id(uuid.uuid4(), "en") != client_order_id(SIGNAL_ID, "en")


def test_client_order_id_refuses_ids_alpaca_would_refuse() -> None:
    with pytest.raises(ValueError, match="at most 48"):
        client_order_id(SIGNAL_ID, "x" * 12)
    with pytest.raises(ValueError, match="empty"):
        client_order_id(SIGNAL_ID, "")


def test_planning_the_same_signal_twice_gives_the_same_orders_and_ids() -> None:
    sig = signal("sell", sentiment=Sentiment.SHORT, quantity=D(20), signal_price=D(100))
    first, second = plan(sig, position="10"), plan(sig, position="10")
    assert first == second
    assert [o.client_order_id for o in first.orders] == [cid("ex"), cid("en")]


# --- buy -----------------------------------------------------------------------------------


def test_buy_while_flat_enters_long() -> None:
    result = plan(signal("buy", quantity=D(10), signal_price=D(100)))
    assert result.intent is Intent.ENTER
    assert steps(result) == [(ENTRY, BUY, D(10))]
    assert result.denials == () and result.ignored_reason is None
    entry = the(result, ENTRY)
    assert entry.symbol == "AAPL" and entry.client_order_id == cid("en")
    assert entry.parent_client_order_id is None


def test_buy_while_long_adds_when_allowed() -> None:
    result = plan(signal("buy", quantity=D(5)), position="10")
    assert result.intent is Intent.ADD
    assert steps(result) == [(ENTRY, BUY, D(5))]


def test_rejects_buy_when_already_long_and_add_disallowed() -> None:
    result = plan(signal("buy", quantity=D(5)), position="10", config=settings(allow_add=False))
    assert result.intent is Intent.ADD
    assert result.orders == ()
    denial = only_denial(result)
    assert denial.code == "add_not_allowed"
    assert "long 10" in denial.message
    assert denial.order is not None and denial.order.qty == D(5) and denial.order.side is BUY


def test_buy_while_short_covers_then_reverses_to_long() -> None:
    result = plan(signal("buy", quantity=D(15)), position="-10")
    assert result.intent is Intent.REVERSE
    assert steps(result) == [(EXIT, BUY, D(10)), (ENTRY, BUY, D(5))]


def test_buy_with_flat_sentiment_while_short_only_covers() -> None:
    sig = signal("buy", sentiment=Sentiment.FLAT, quantity=D(30))
    result = plan(sig, position="-10")
    assert result.intent is Intent.EXIT
    assert steps(result) == [(EXIT, BUY, D(10))]


def test_buy_with_short_sentiment_while_short_covers_part_of_the_short() -> None:
    result = plan(signal("buy", sentiment=Sentiment.SHORT, quantity=D(4)), position="-10")
    assert result.intent is Intent.PARTIAL_EXIT
    assert steps(result) == [(EXIT, BUY, D(4))]


def test_buy_with_short_sentiment_and_larger_quantity_covers_only_the_short() -> None:
    result = plan(signal("buy", sentiment=Sentiment.SHORT, quantity=D(25)), position="-10")
    assert result.intent is Intent.EXIT
    assert steps(result) == [(EXIT, BUY, D(10))]


@pytest.mark.parametrize("sentiment", [Sentiment.FLAT, Sentiment.SHORT])
def test_buy_that_only_reduces_a_short_is_ignored_while_flat(sentiment: Sentiment) -> None:
    result = plan(signal("buy", sentiment=sentiment))
    assert result.ignored_reason is not None and "nothing to exit" in result.ignored_reason
    assert result.orders == result.denials == result.cancel_client_order_ids == ()


def test_buy_with_flat_sentiment_while_long_is_ignored() -> None:
    result = plan(signal("buy", sentiment=Sentiment.FLAT), position="10")
    assert result.ignored_reason is not None and "AAPL is long 10" in result.ignored_reason
    assert result.orders == ()


# --- sell ----------------------------------------------------------------------------------


def test_sell_while_flat_enters_short_when_shorting_allowed() -> None:
    result = plan(signal("sell", quantity=D(7)))
    assert result.intent is Intent.ENTER
    assert steps(result) == [(ENTRY, SELL, D(7))]


def test_rejects_sell_while_flat_when_shorting_disallowed() -> None:
    result = plan(signal("sell", quantity=D(7)), config=settings(allow_short=False))
    assert result.orders == ()
    denial = only_denial(result)
    assert denial.code == "short_not_allowed"
    assert denial.order is not None and denial.order.side is SELL and denial.order.qty == D(7)


def test_sell_with_flat_sentiment_while_long_exits_and_never_goes_short() -> None:
    result = plan(signal("sell", sentiment=Sentiment.FLAT, quantity=D(25)), position="10")
    assert result.intent is Intent.EXIT
    assert steps(result) == [(EXIT, SELL, D(10))]


def test_selling_out_of_a_long_is_allowed_when_shorting_is_not() -> None:
    config = settings(allow_short=False)
    result = plan(signal("sell", sentiment=Sentiment.FLAT), position="10", config=config)
    assert steps(result) == [(EXIT, SELL, D(10))]
    assert result.denials == ()


def test_sell_without_sentiment_smaller_than_the_long_is_a_partial_exit() -> None:
    # TradersPost "Exit Partial Position": long 10, sell 5 -> sell 5, stay long 5.
    result = plan(signal("sell", quantity=D(5)), position="10")
    assert result.intent is Intent.PARTIAL_EXIT
    assert steps(result) == [(EXIT, SELL, D(5))]


def test_sell_with_long_sentiment_while_long_sells_part_of_it() -> None:
    result = plan(signal("sell", sentiment=Sentiment.LONG, quantity=D(3)), position="10")
    assert result.intent is Intent.PARTIAL_EXIT
    assert steps(result) == [(EXIT, SELL, D(3))]


def test_sell_while_short_adds_to_the_short() -> None:
    result = plan(signal("sell", quantity=D(3)), position="-10")
    assert result.intent is Intent.ADD
    assert steps(result) == [(ENTRY, SELL, D(3))]


def test_rejects_adding_to_a_short_when_shorting_disallowed() -> None:
    result = plan(signal("sell", quantity=D(3)), position="-10", config=settings(allow_short=False))
    assert only_denial(result).code == "short_not_allowed"
    assert result.orders == ()


def test_sell_with_long_sentiment_while_short_is_ignored() -> None:
    result = plan(signal("sell", sentiment=Sentiment.LONG), position="-10")
    assert result.ignored_reason is not None and "AAPL is short 10" in result.ignored_reason


# --- reversal ------------------------------------------------------------------------------


def test_reversal_subtracts_exit_quantity_from_tradingview_contracts() -> None:
    # {{strategy.order.contracts}} = 20 closes the long 10 and opens short 10.
    result = plan(signal("sell", sentiment=Sentiment.SHORT, quantity=D(20)), position="10")
    assert result.intent is Intent.REVERSE
    assert steps(result) == [(EXIT, SELL, D(10)), (ENTRY, SELL, D(10))]
    assert [o.client_order_id for o in result.orders] == [cid("ex"), cid("en")]


def test_reversal_without_subtraction_enters_the_full_signal_quantity() -> None:
    config = settings(subtract_exit_quantity=False)
    result = plan(signal("sell", quantity=D(10)), position="5", config=config)
    assert result.intent is Intent.REVERSE
    assert steps(result) == [(EXIT, SELL, D(5)), (ENTRY, SELL, D(10))]


def test_reversal_with_nothing_left_after_subtraction_only_exits() -> None:
    result = plan(signal("sell", quantity=D(10)), position="10")
    assert result.intent is Intent.EXIT
    assert steps(result) == [(EXIT, SELL, D(10))]
    assert result.denials == ()


def test_opposite_sentiment_exits_whole_position_even_with_a_smaller_quantity() -> None:
    result = plan(signal("sell", sentiment=Sentiment.SHORT, quantity=D(4)), position="10")
    assert result.intent is Intent.EXIT
    assert steps(result) == [(EXIT, SELL, D(10))]


def test_reversal_without_signal_quantity_enters_the_configured_size() -> None:
    config = settings(quantity=D(3))
    result = plan(signal("sell", sentiment=Sentiment.SHORT), position="10", config=config)
    assert result.intent is Intent.REVERSE
    assert steps(result) == [(EXIT, SELL, D(10)), (ENTRY, SELL, D(3))]


def test_reversal_disallowed_exits_and_denies_the_entry() -> None:
    config = settings(allow_reverse=False)
    result = plan(signal("buy", quantity=D(15)), position="-10", config=config)
    assert result.intent is Intent.REVERSE
    assert steps(result) == [(EXIT, BUY, D(10))]
    denial = only_denial(result)
    assert denial.code == "reverse_not_allowed"
    assert denial.order is not None and denial.order.purpose is ENTRY and denial.order.qty == D(5)


def test_reversal_to_short_with_shorting_disallowed_exits_and_denies_the_entry() -> None:
    config = settings(allow_short=False)
    result = plan(signal("sell", sentiment=Sentiment.SHORT, quantity=D(20)), position="10", config=config)
    assert steps(result) == [(EXIT, SELL, D(10))]
    assert only_denial(result).code == "short_not_allowed"


def test_reversal_entry_that_cannot_be_sized_still_exits() -> None:
    sig = signal(
        "sell",
        sentiment=Sentiment.SHORT,
        quantity=D(1000),
        quantity_type=QuantityType.DOLLAR_AMOUNT,
    )
    result = plan(sig, position="10")
    assert steps(result) == [(EXIT, SELL, D(10))]
    denial = only_denial(result)
    assert denial.code == "no_price_for_sizing" and denial.order is None


def test_reversal_entry_is_checked_against_limits_from_flat() -> None:
    config = settings(max_position_qty=D(12))
    result = plan(signal("sell", quantity=D(22)), position="10", config=config)
    assert steps(result) == [(EXIT, SELL, D(10)), (ENTRY, SELL, D(12))]
    denied = plan(signal("sell", quantity=D(23)), position="10", config=config)
    assert steps(denied) == [(EXIT, SELL, D(10))]
    assert only_denial(denied).code == "max_position_qty"


# --- target position (strategy.position_size) ----------------------------------------------


def test_target_position_from_flat_enters_exactly_that_size() -> None:
    result = plan(signal("buy", quantity=D(99), target_position=D(6)))
    assert result.intent is Intent.ENTER
    assert steps(result) == [(ENTRY, BUY, D(6))]


def test_target_position_reverses_exactly_and_ignores_quantity() -> None:
    sig = signal("sell", sentiment=Sentiment.SHORT, quantity=D(99), target_position=D(-15))
    result = plan(sig, position="10")
    assert result.intent is Intent.REVERSE
    assert steps(result) == [(EXIT, SELL, D(10)), (ENTRY, SELL, D(15))]


def test_target_position_closer_to_flat_partially_exits() -> None:
    result = plan(signal("sell", quantity=D(99), target_position=D(4)), position="10")
    assert result.intent is Intent.PARTIAL_EXIT
    assert steps(result) == [(EXIT, SELL, D(6))]


def test_target_position_further_out_adds_and_needs_add_allowed() -> None:
    result = plan(signal("sell", target_position=D(-16)), position="-10")
    assert result.intent is Intent.ADD
    assert steps(result) == [(ENTRY, SELL, D(6))]
    config = settings(allow_add=False)
    denied = plan(signal("sell", target_position=D(-16)), position="-10", config=config)
    assert only_denial(denied).code == "add_not_allowed"


def test_target_position_zero_exits_whole_position() -> None:
    result = plan(signal("buy", target_position=D(0)), position="-8")
    assert result.intent is Intent.EXIT
    assert steps(result) == [(EXIT, BUY, D(8))]


def test_target_position_decides_even_against_the_action() -> None:
    result = plan(signal("buy", target_position=D(4)), position="10")
    assert steps(result) == [(EXIT, SELL, D(6))]


def test_target_position_already_held_is_ignored() -> None:
    result = plan(signal("buy", target_position=D(10)), position="10")
    assert result.intent is None
    assert result.ignored_reason is not None and "already at the target" in result.ignored_reason


def test_target_position_is_not_used_when_config_ignores_signal_quantity() -> None:
    config = settings(use_signal_quantity=False, quantity=D(2))
    result = plan(signal("buy", target_position=D(10)), config=config)
    assert steps(result) == [(ENTRY, BUY, D(2))]


# --- add -----------------------------------------------------------------------------------


def test_add_while_flat_is_ignored() -> None:
    result = plan(signal("add", quantity=D(5)))
    assert result.intent is Intent.ADD
    assert result.ignored_reason is not None and "nothing to add to" in result.ignored_reason
    assert result.orders == result.denials == ()


def test_add_increases_a_long_by_buying_whatever_the_sentiment() -> None:
    result = plan(signal("add", sentiment=Sentiment.SHORT, quantity=D(5)), position="10")
    assert result.intent is Intent.ADD
    assert steps(result) == [(ENTRY, BUY, D(5))]


def test_add_increases_a_short_by_selling() -> None:
    result = plan(signal("add", quantity=D(5)), position="-10")
    assert steps(result) == [(ENTRY, SELL, D(5))]


def test_rejects_add_when_add_disallowed() -> None:
    result = plan(signal("add", quantity=D(5)), position="10", config=settings(allow_add=False))
    assert only_denial(result).code == "add_not_allowed"
    assert result.orders == ()


def test_add_sized_as_percent_of_position_rounds_down() -> None:
    sig = signal("add", quantity=D(25), quantity_type=QuantityType.PERCENT_OF_POSITION)
    assert steps(plan(sig, position="-10")) == [(ENTRY, SELL, D(2))]


# --- exit ----------------------------------------------------------------------------------


def test_exit_while_flat_is_ignored() -> None:
    result = plan(signal("exit"), open_orders=(open_order("old", "entry"),))
    assert result.intent is Intent.EXIT
    assert result.ignored_reason == "nothing to exit: AAPL is flat"
    assert result.orders == result.denials == result.cancel_client_order_ids == ()


def test_exit_closes_a_whole_long_by_selling() -> None:
    result = plan(signal("exit"), position="10")
    assert result.intent is Intent.EXIT
    assert steps(result) == [(EXIT, SELL, D(10))]
    assert the(result, EXIT).client_order_id == cid("ex")


def test_exit_closes_a_whole_short_by_buying() -> None:
    assert steps(plan(signal("exit"), position="-4")) == [(EXIT, BUY, D(4))]


def test_exit_with_a_smaller_quantity_is_partial() -> None:
    result = plan(signal("exit", quantity=D(3)), position="10")
    assert result.intent is Intent.PARTIAL_EXIT
    assert steps(result) == [(EXIT, SELL, D(3))]


def test_exit_with_a_larger_quantity_closes_only_the_position() -> None:
    result = plan(signal("exit", quantity=D(30)), position="10")
    assert result.intent is Intent.EXIT
    assert steps(result) == [(EXIT, SELL, D(10))]


def test_exit_by_percent_of_position_rounds_down_to_whole_shares() -> None:
    sig = signal("exit", quantity=D(33), quantity_type=QuantityType.PERCENT_OF_POSITION)
    result = plan(sig, position="-10")
    assert result.intent is Intent.PARTIAL_EXIT
    assert steps(result) == [(EXIT, BUY, D(3))]


def test_exit_of_100_percent_closes_a_fractional_position_exactly() -> None:
    sig = signal("exit", quantity=D(100), quantity_type=QuantityType.PERCENT_OF_POSITION)
    result = plan(sig, position="0.5")
    assert result.intent is Intent.EXIT
    assert steps(result) == [(EXIT, SELL, D("0.5"))]


def test_exit_ignores_the_signal_quantity_when_the_config_does() -> None:
    config = settings(use_signal_quantity=False)
    result = plan(signal("exit", quantity=D(3)), position="10", config=config)
    assert steps(result) == [(EXIT, SELL, D(10))]


# --- cancel --------------------------------------------------------------------------------


def test_cancel_cancels_every_open_order_for_the_symbol_only() -> None:
    orders = (
        open_order("a", "entry"),
        open_order("b", "stop_loss", OrderType.STOP, symbol="aapl"),
        open_order("c", "entry", symbol="MSFT"),
    )
    result = plan(signal("cancel"), open_orders=orders)
    assert result.intent is Intent.CANCEL
    assert result.cancel_client_order_ids == ("a", "b")
    assert result.orders == result.denials == ()


def test_cancel_with_an_order_type_cancels_only_that_type() -> None:
    orders = (open_order("a", "entry", OrderType.LIMIT), open_order("b", "entry", OrderType.STOP))
    result = plan(signal("cancel", cancel_order_type=OrderType.STOP), open_orders=orders)
    assert result.cancel_client_order_ids == ("b",)


def test_cancel_with_nothing_open_is_ignored() -> None:
    orders = (open_order("a", "entry", OrderType.LIMIT),)
    result = plan(signal("cancel", cancel_order_type=OrderType.STOP), open_orders=orders)
    assert result.intent is Intent.CANCEL
    assert result.ignored_reason == "no open stop orders for AAPL to cancel"
    assert result.cancel_client_order_ids == ()


# --- canceling open orders before trading --------------------------------------------------

OPEN = (
    open_order("pending-entry", "entry"),
    open_order("pending-exit", "exit"),
    open_order("tp", "take_profit"),
    open_order("sl", "stop_loss", OrderType.STOP),
)
ALL_OPEN = ("pending-entry", "pending-exit", "tp", "sl")


def test_exit_cancels_all_open_orders_for_the_symbol_first() -> None:
    result = plan(signal("exit"), position="10", open_orders=OPEN)
    assert result.cancel_client_order_ids == ALL_OPEN


def test_reversal_cancels_the_legs_of_the_position_being_exited() -> None:
    result = plan(signal("sell", quantity=D(20)), position="10", open_orders=OPEN)
    assert result.cancel_client_order_ids == ALL_OPEN


def test_entry_while_flat_cancels_all_open_orders_for_the_symbol() -> None:
    result = plan(signal("buy"), open_orders=OPEN)
    assert result.cancel_client_order_ids == ALL_OPEN


def test_add_cancels_open_entries_but_keeps_the_legs_protecting_the_position() -> None:
    result = plan(signal("buy"), position="10", open_orders=OPEN)
    assert result.intent is Intent.ADD
    assert result.cancel_client_order_ids == ("pending-entry",)


def test_a_fully_denied_signal_cancels_nothing() -> None:
    config = settings(allow_add=False)
    result = plan(signal("buy"), position="10", open_orders=OPEN, config=config)
    assert result.denials and result.cancel_client_order_ids == ()


def test_an_open_order_with_one_of_the_plans_own_ids_is_not_canceled() -> None:
    # A retried job: the first attempt's entry is already open at the broker.
    retried = (open_order(cid("en"), "entry"), open_order("other", "entry"))
    result = plan(signal("buy"), open_orders=retried)
    assert result.cancel_client_order_ids == ("other",)


# --- sizing --------------------------------------------------------------------------------


def test_fixed_quantity_is_used_as_given_including_fractions() -> None:
    sig = signal("buy", quantity=D("2.5"), quantity_type=QuantityType.FIXED_QUANTITY)
    assert steps(plan(sig)) == [(ENTRY, BUY, D("2.5"))]


def test_signal_quantity_without_a_type_is_a_fixed_quantity() -> None:
    config = settings(quantity_type=QuantityType.DOLLAR_AMOUNT, quantity=D(5000))
    assert steps(plan(signal("buy", quantity=D(3)), config=config)) == [(ENTRY, BUY, D(3))]


def test_config_sizing_applies_when_the_signal_has_no_quantity() -> None:
    config = settings(quantity_type=QuantityType.DOLLAR_AMOUNT, quantity=D(1000))
    result = plan(signal("buy", signal_price=D(100)), config=config)
    assert steps(result) == [(ENTRY, BUY, D(10))]


def test_config_sizing_applies_when_signal_quantity_is_disabled() -> None:
    config = settings(use_signal_quantity=False, quantity=D(4))
    assert steps(plan(signal("buy", quantity=D(50)), config=config)) == [(ENTRY, BUY, D(4))]


def test_dollar_amount_divides_by_the_signal_price_and_rounds_down() -> None:
    sig = signal(
        "buy",
        quantity=D(1000),
        quantity_type=QuantityType.DOLLAR_AMOUNT,
        signal_price=D(30),
    )
    assert steps(plan(sig)) == [(ENTRY, BUY, D(33))]


def test_dollar_amount_of_a_limit_order_divides_by_the_limit_price() -> None:
    sig = signal(
        "buy",
        quantity=D(1000),
        quantity_type=QuantityType.DOLLAR_AMOUNT,
        order_type=OrderType.LIMIT,
        limit_price=D(50),
        signal_price=D(30),
    )
    assert steps(plan(sig)) == [(ENTRY, BUY, D(20))]


def test_percent_of_equity_sizes_from_account_equity() -> None:
    sig = signal(
        "buy",
        quantity=D(10),
        quantity_type=QuantityType.PERCENT_OF_EQUITY,
        signal_price=D(150),
    )
    # 50_000 * 10 % = 5_000; / 150 = 33.3 -> 33
    assert steps(plan(sig, equity="50000")) == [(ENTRY, BUY, D(33))]


def test_risk_dollar_amount_divides_the_risk_by_the_distance_to_the_stop() -> None:
    sig = signal(
        "buy",
        quantity=D(500),
        quantity_type=QuantityType.RISK_DOLLAR_AMOUNT,
        signal_price=D(100),
        stop_loss=StopLoss(stop_price=D(97)),
    )
    assert the(plan(sig), ENTRY).qty == D(166)  # 500 / 3 = 166.67


def test_risk_dollar_amount_with_a_percent_stop_on_a_short_entry() -> None:
    sig = signal(
        "sell",
        quantity=D(500),
        quantity_type=QuantityType.RISK_DOLLAR_AMOUNT,
        signal_price=D(50),
        stop_loss=StopLoss(percent=D(4)),
    )
    result = plan(sig)
    assert the(result, ENTRY).qty == D(250)  # stop 52 -> 2 per share
    assert the(result, SL).stop_price == D("52.00")


def test_risk_percent_risks_a_share_of_equity() -> None:
    sig = signal(
        "buy",
        quantity=D(1),
        quantity_type=QuantityType.RISK_PERCENT,
        signal_price=D(20),
        stop_loss=StopLoss(amount=D("0.5")),
    )
    # 1 % of 100_000 = 1_000 at risk; 0.50 per share -> 2_000 shares
    assert the(plan(sig), ENTRY).qty == D(2000)


def test_percent_of_position_sizes_a_reversal_from_the_position_it_exits() -> None:
    sig = signal("buy", quantity=D(150), quantity_type=QuantityType.PERCENT_OF_POSITION)
    result = plan(sig, position="-10")
    # 150 % of 10 = 15 traded: 10 cover the short, 5 open the long.
    assert steps(result) == [(EXIT, BUY, D(10)), (ENTRY, BUY, D(5))]


def test_rejects_risk_sizing_without_a_stop() -> None:
    sig = signal(
        "buy",
        quantity=D(500),
        quantity_type=QuantityType.RISK_DOLLAR_AMOUNT,
        signal_price=D(100),
    )
    result = plan(sig)
    denial = only_denial(result)
    assert denial.code == "risk_sizing_needs_stop" and denial.order is None
    assert result.orders == ()


def test_rejects_risk_sizing_with_the_stop_on_the_wrong_side() -> None:
    sig = signal(
        "buy",
        quantity=D(500),
        quantity_type=QuantityType.RISK_DOLLAR_AMOUNT,
        signal_price=D(100),
        stop_loss=StopLoss(stop_price=D(105)),
    )
    denial = only_denial(plan(sig))
    assert denial.code == "risk_sizing_needs_stop"
    assert "stop 105" in denial.message and "entry price 100" in denial.message


def test_rejects_percent_of_position_for_an_entry_while_flat() -> None:
    sig = signal("buy", quantity=D(50), quantity_type=QuantityType.PERCENT_OF_POSITION)
    denial = only_denial(plan(sig))
    assert denial.code == "percent_of_position_needs_position"
    assert denial.order is None


@pytest.mark.parametrize(
    "quantity_type",
    [
        QuantityType.DOLLAR_AMOUNT,
        QuantityType.PERCENT_OF_EQUITY,
        QuantityType.RISK_DOLLAR_AMOUNT,
        QuantityType.RISK_PERCENT,
    ],
)
def test_rejects_sizing_that_needs_a_price_when_there_is_none(quantity_type: QuantityType) -> None:
    sig = signal(
        "buy",
        quantity=D(1000),
        quantity_type=quantity_type,
        stop_loss=StopLoss(stop_price=D(90)),
    )
    result = plan(sig)
    denial = only_denial(result)
    assert denial.code == "no_price_for_sizing" and denial.order is None
    assert result.orders == ()


def test_rejects_a_quantity_that_rounds_down_to_zero_shares() -> None:
    sig = signal(
        "buy",
        quantity=D(50),
        quantity_type=QuantityType.DOLLAR_AMOUNT,
        signal_price=D(100),
    )
    denial = only_denial(plan(sig))
    assert denial.code == "quantity_rounds_to_zero"
    assert "0.5 shares" in denial.message


def test_rejects_a_quantity_that_is_not_positive() -> None:
    denial = only_denial(plan(signal("buy", quantity=D(0))))
    assert denial.code == "invalid_quantity"


# --- order type, time in force, prices -----------------------------------------------------


def test_market_order_carries_the_signal_price_as_reference() -> None:
    entry = the(plan(signal("buy", signal_price=D("187.25"))), ENTRY)
    assert entry.order_type is OrderType.MARKET
    assert entry.reference_price == D("187.25")
    assert entry.limit_price is entry.stop_price is None
    assert entry.time_in_force is TimeInForce.DAY
    assert entry.extended_hours is False


def test_signal_order_type_and_time_in_force_override_the_config() -> None:
    config = settings(order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC)
    sig = signal("buy", order_type=OrderType.MARKET, time_in_force=TimeInForce.IOC)
    entry = the(plan(sig, config=config), ENTRY)
    assert (entry.order_type, entry.time_in_force) == (OrderType.MARKET, TimeInForce.IOC)


def test_config_order_type_and_time_in_force_apply_when_the_signal_has_none() -> None:
    config = settings(order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC)
    entry = the(plan(signal("buy", limit_price=D(99)), config=config), ENTRY)
    assert (entry.order_type, entry.time_in_force) == (OrderType.LIMIT, TimeInForce.GTC)
    assert entry.limit_price == D(99)


def test_limit_order_without_limit_price_uses_the_signal_price_rounded() -> None:
    sig = signal("buy", order_type=OrderType.LIMIT, signal_price=D("187.256"))
    assert the(plan(sig), ENTRY).limit_price == D("187.26")


def test_rejects_a_limit_order_without_any_price() -> None:
    result = plan(signal("buy", order_type=OrderType.LIMIT))
    denial = only_denial(result)
    assert denial.code == "invalid_order_prices" and denial.order is None
    assert result.intent is Intent.ENTER and result.orders == ()


def test_stop_order_needs_a_stop_price() -> None:
    entry = the(plan(signal("buy", order_type=OrderType.STOP, stop_price=D(105))), ENTRY)
    assert entry.stop_price == D(105) and entry.limit_price is None
    assert only_denial(plan(signal("buy", order_type=OrderType.STOP))).code == ("invalid_order_prices")


def test_stop_limit_order_needs_both_prices() -> None:
    sig = signal("buy", order_type=OrderType.STOP_LIMIT, stop_price=D(105), limit_price=D(106))
    entry = the(plan(sig), ENTRY)
    assert (entry.stop_price, entry.limit_price) == (D(105), D(106))
    half = signal("buy", order_type=OrderType.STOP_LIMIT, stop_price=D(105), signal_price=D(100))
    assert only_denial(plan(half)).code == "invalid_order_prices"


def test_trailing_stop_order_takes_a_trail_amount_or_a_trail_percent() -> None:
    by_amount = signal("sell", order_type=OrderType.TRAILING_STOP, trail_amount=D(2))
    by_percent = signal("sell", order_type=OrderType.TRAILING_STOP, trail_percent=D("1.5"))
    assert the(plan(by_amount, position="10"), EXIT).trail_price == D(2)
    assert the(plan(by_percent, position="10"), EXIT).trail_percent == D("1.5")


@pytest.mark.parametrize(
    "trail", [{}, {"trail_amount": D(2), "trail_percent": D(1)}], ids=["neither", "both"]
)
def test_rejects_a_trailing_stop_without_exactly_one_trail(trail: dict[str, Decimal]) -> None:
    sig = signal("sell", order_type=OrderType.TRAILING_STOP, **trail)
    result = plan(sig, position="10")
    assert only_denial(result).code == "invalid_order_prices"
    assert result.orders == ()


def test_exit_and_entry_of_a_reversal_share_the_order_type_and_prices() -> None:
    sig = signal("sell", quantity=D(20), order_type=OrderType.LIMIT, limit_price=D(101))
    result = plan(sig, position="10")
    assert [(o.order_type, o.limit_price) for o in result.orders] == [
        (OrderType.LIMIT, D(101)),
        (OrderType.LIMIT, D(101)),
    ]


def test_extended_hours_is_passed_through() -> None:
    sig = signal("buy", order_type=OrderType.LIMIT, limit_price=D(10), extended_hours=True)
    assert the(plan(sig), ENTRY).extended_hours is True


# --- risk rules ----------------------------------------------------------------------------


def test_stale_signal_is_denied_whole_without_orders_or_cancels() -> None:
    sig = signal("exit", signal_time=NOW - timedelta(seconds=61))
    config = settings(max_signal_age_seconds=60)
    result = plan(sig, position="10", config=config, open_orders=OPEN)
    assert result.intent is None
    assert result.orders == result.cancel_client_order_ids == ()
    denial = only_denial(result)
    assert denial.code == "stale_signal" and denial.order is None
    assert "61 s old" in denial.message and "max_signal_age_seconds 60" in denial.message


def test_signal_within_the_age_limit_or_without_a_time_goes() -> None:
    config = settings(max_signal_age_seconds=60)
    fresh = signal("buy", signal_time=NOW - timedelta(seconds=60))
    assert steps(plan(fresh, config=config)) == [(ENTRY, BUY, D(1))]
    assert steps(plan(signal("buy"), config=config)) == [(ENTRY, BUY, D(1))]


def test_symbol_outside_the_allowlist_denies_every_order_it_would_place() -> None:
    config = settings(allowed_symbols=("MSFT", "TSLA"))
    result = plan(signal("sell", quantity=D(20)), position="10", config=config, open_orders=OPEN)
    assert result.orders == result.cancel_client_order_ids == ()
    assert [(d.code, d.order and d.order.purpose) for d in result.denials] == [
        ("symbol_not_allowed", EXIT),
        ("symbol_not_allowed", ENTRY),
    ]
    assert "AAPL is not in allowed_symbols (MSFT, TSLA)" in result.denials[0].message


def test_symbol_outside_the_allowlist_cannot_cancel_either() -> None:
    config = settings(allowed_symbols=("MSFT",))
    result = plan(signal("cancel"), config=config, open_orders=OPEN)
    denial = only_denial(result)
    assert denial.code == "symbol_not_allowed" and denial.order is None
    assert result.cancel_client_order_ids == ()


def test_symbol_allowlist_is_case_insensitive() -> None:
    config = settings(allowed_symbols=("aapl",))
    assert steps(plan(signal("buy"), config=config)) == [(ENTRY, BUY, D(1))]


def test_rejects_an_entry_above_max_position_qty() -> None:
    result = plan(signal("buy", quantity=D(101)), config=settings(max_position_qty=D(100)))
    denial = only_denial(result)
    assert denial.code == "max_position_qty"
    assert "would be 101, above max_position_qty 100" in denial.message
    assert denial.order is not None and denial.order.qty == D(101)


def test_rejects_an_add_whose_resulting_position_exceeds_max_position_qty() -> None:
    config = settings(max_position_qty=D(100))
    assert plan(signal("buy", quantity=D(10)), position="90", config=config).denials == ()
    denied = plan(signal("sell", quantity=D(11)), position="-90", config=config)
    assert only_denial(denied).code == "max_position_qty"


def test_rejects_an_entry_above_max_position_notional() -> None:
    config = settings(max_position_notional=D(10000))
    ok = plan(signal("buy", quantity=D(100), signal_price=D(100)), config=config)
    assert ok.denials == ()
    denied = plan(signal("buy", quantity=D(100), signal_price=D("100.01")), config=config)
    denial = only_denial(denied)
    assert denial.code == "max_position_notional"
    assert "100 * 100.01 = 10001" in denial.message


def test_rejects_an_entry_when_max_position_notional_cannot_be_checked() -> None:
    result = plan(signal("buy", quantity=D(1)), config=settings(max_position_notional=D(10000)))
    assert only_denial(result).code == "no_price_for_notional_limit"


def test_exits_are_never_denied_by_size_limits() -> None:
    config = settings(max_position_qty=D(1), max_position_notional=D(1), allow_short=False)
    result = plan(signal("exit", signal_price=D(500)), position="-300", config=config)
    assert steps(result) == [(EXIT, BUY, D(300))]
    assert result.denials == ()


def test_paused_entries_deny_an_entry_with_the_order_attached() -> None:
    result = plan(signal("buy", quantity=D(5)), config=settings(entries_paused=True))
    assert result.orders == ()
    [denial] = result.denials
    assert denial.code == "entries_paused"
    assert "exits still run" in denial.message
    assert denial.order is not None and denial.order.side is BUY and denial.order.qty == D(5)


def test_paused_entries_still_let_an_exit_through() -> None:
    result = plan(signal("exit"), position="10", config=settings(entries_paused=True))
    assert result.intent is Intent.EXIT
    assert steps(result) == [(EXIT, SELL, D(10))]
    assert result.denials == ()


def test_paused_entries_exit_a_reversal_but_deny_its_entry() -> None:
    result = plan(signal("buy", quantity=D(15)), position="-10", config=settings(entries_paused=True))
    assert steps(result) == [(EXIT, BUY, D(10))]
    assert [d.code for d in result.denials] == ["entries_paused"]


def test_paused_entries_deny_an_add() -> None:
    result = plan(signal("add", quantity=D(2)), position="10", config=settings(entries_paused=True))
    assert result.orders == ()
    assert [d.code for d in result.denials] == ["entries_paused"]


# --- take-profit and stop-loss legs --------------------------------------------------------


def test_long_entry_gets_take_profit_and_stop_loss_legs_by_percent() -> None:
    sig = signal(
        "buy",
        quantity=D(10),
        signal_price=D(200),
        take_profit=TakeProfit(percent=D(5)),
        stop_loss=StopLoss(percent=D(2)),
    )
    result = plan(sig)
    assert steps(result) == [(ENTRY, BUY, D(10)), (TP, SELL, D(10)), (SL, SELL, D(10))]
    tp, sl = the(result, TP), the(result, SL)
    assert (tp.order_type, tp.limit_price, tp.stop_price) == (OrderType.LIMIT, D("210.00"), None)
    assert (sl.order_type, sl.stop_price, sl.limit_price) == (OrderType.STOP, D("196.00"), None)
    for leg, leg_code in ((tp, "tp"), (sl, "sl")):
        assert leg.client_order_id == cid(leg_code)
        assert leg.parent_client_order_id == cid("en")
        assert leg.time_in_force is TimeInForce.GTC
        assert leg.reference_price is None


def test_short_entry_legs_mirror_by_amount() -> None:
    sig = signal(
        "sell",
        quantity=D(4),
        signal_price=D(50),
        take_profit=TakeProfit(amount=D(3)),
        stop_loss=StopLoss(amount=D("1.5")),
    )
    result = plan(sig)
    assert the(result, TP).side is BUY and the(result, TP).limit_price == D("47.00")
    assert the(result, SL).side is BUY and the(result, SL).stop_price == D("51.50")


def test_absolute_leg_prices_are_used_as_given() -> None:
    sig = signal(
        "buy",
        signal_price=D(100),
        take_profit=TakeProfit(limit_price=D("110.5")),
        stop_loss=StopLoss(stop_price=D("95.125")),
    )
    result = plan(sig)
    assert the(result, TP).limit_price == D("110.5")
    assert the(result, SL).stop_price == D("95.125")


def test_legs_of_a_limit_entry_are_relative_to_the_limit_price() -> None:
    sig = signal(
        "buy",
        order_type=OrderType.LIMIT,
        limit_price=D(80),
        signal_price=D(100),
        take_profit=TakeProfit(percent=D(10)),
    )
    assert the(plan(sig), TP).limit_price == D("88.00")


def test_stop_loss_of_type_stop_limit_becomes_a_stop_limit_leg() -> None:
    sig = signal(
        "buy",
        signal_price=D(100),
        stop_loss=StopLoss(type=OrderType.STOP_LIMIT, stop_price=D(95), limit_price=D(94)),
    )
    sl = the(plan(sig), SL)
    assert (sl.order_type, sl.stop_price, sl.limit_price) == (OrderType.STOP_LIMIT, D(95), D(94))


def test_stop_loss_of_type_stop_limit_without_limit_price_is_denied() -> None:
    sig = signal("buy", signal_price=D(100), stop_loss=StopLoss(type=OrderType.STOP_LIMIT, percent=D(5)))
    result = plan(sig)
    assert steps(result) == [(ENTRY, BUY, D(1))]
    assert only_denial(result).code == "bracket_needs_price"


def test_stop_loss_of_type_trailing_stop_trails_by_percent_or_amount() -> None:
    sig = signal("buy", stop_loss=StopLoss(type=OrderType.TRAILING_STOP, percent=D(3)))
    sl = the(plan(sig), SL)
    assert (sl.order_type, sl.trail_percent, sl.trail_price) == (
        OrderType.TRAILING_STOP,
        D(3),
        None,
    )
    sig = signal("sell", stop_loss=StopLoss(type=OrderType.TRAILING_STOP, amount=D(2)))
    sl = the(plan(sig), SL)
    assert (sl.side, sl.trail_price, sl.trail_percent) == (BUY, D(2), None)


def test_relative_legs_without_an_entry_price_are_denied_but_the_entry_goes() -> None:
    sig = signal(
        "buy",
        quantity=D(5),
        take_profit=TakeProfit(percent=D(5)),
        stop_loss=StopLoss(stop_price=D(90)),
    )
    result = plan(sig)
    assert steps(result) == [(ENTRY, BUY, D(5)), (SL, SELL, D(5))]
    denial = only_denial(result)
    assert denial.code == "bracket_needs_price" and denial.order is None
    assert denial.message.startswith("take_profit")


def test_a_leg_on_the_wrong_side_of_the_entry_is_denied_but_the_entry_goes() -> None:
    sig = signal(
        "buy",
        signal_price=D(100),
        take_profit=TakeProfit(limit_price=D(120)),
        stop_loss=StopLoss(stop_price=D(101)),
    )
    result = plan(sig)
    assert steps(result) == [(ENTRY, BUY, D(1)), (TP, SELL, D(1))]
    denial = only_denial(result)
    assert denial.code == "invalid_bracket_price"
    assert denial.order is not None and denial.order.purpose is SL
    assert "must be below the entry price 100 of a buy entry" in denial.message


def test_a_denied_entry_gets_no_legs() -> None:
    sig = signal("buy", quantity=D(5), signal_price=D(100), take_profit=TakeProfit(percent=D(5)))
    result = plan(sig, position="10", config=settings(allow_add=False))
    assert result.orders == ()
    assert only_denial(result).code == "add_not_allowed"


def test_only_the_entry_of_a_reversal_gets_legs() -> None:
    sig = signal(
        "sell",
        quantity=D(20),
        signal_price=D(100),
        stop_loss=StopLoss(percent=D(1)),
    )
    result = plan(sig, position="10")
    assert steps(result) == [(EXIT, SELL, D(10)), (ENTRY, SELL, D(10)), (SL, BUY, D(10))]
    assert the(result, SL).stop_price == D("101.00")


# --- price rounding (Alpaca sub-penny rule) ------------------------------------------------


def test_computed_prices_at_or_above_one_dollar_round_to_cents() -> None:
    sig = signal(
        "buy",
        signal_price=D(10),
        take_profit=TakeProfit(percent=D("3.333")),
        stop_loss=StopLoss(percent=D("1.2345")),
    )
    result = plan(sig)
    assert the(result, TP).limit_price == D("10.33")  # 10.3333
    assert the(result, SL).stop_price == D("9.88")  # 9.87655, half up


def test_computed_prices_below_one_dollar_round_to_four_decimals() -> None:
    sig = signal(
        "buy",
        signal_price=D("0.5"),
        take_profit=TakeProfit(percent=D("3.333")),
        stop_loss=StopLoss(percent=D(1)),
    )
    result = plan(sig)
    assert the(result, TP).limit_price == D("0.5167")  # 0.516665
    assert the(result, SL).stop_price == D("0.4950")


# --- signals that cannot be priced or sized are denied whole -------------------------------


@pytest.mark.parametrize(
    ("sig", "position"),
    [
        (signal("exit"), "10"),
        (signal("add"), "10"),
        (signal("sell", sentiment=Sentiment.FLAT), "10"),
        (signal("sell", target_position=D(-5)), "10"),
        (signal("sell", quantity=D(20)), "10"),
    ],
    ids=["exit", "add", "flat-sentiment", "target", "reversal"],
)
def test_a_signal_whose_order_type_lacks_its_price_is_denied_whole(sig: Signal, position: str) -> None:
    config = settings(order_type=OrderType.STOP)
    result = plan(sig, position=position, config=config, open_orders=OPEN)
    denial = only_denial(result)
    assert denial.code == "invalid_order_prices" and denial.order is None
    assert result.orders == result.cancel_client_order_ids == ()
    assert result.intent is not None


def test_rejects_an_exit_sized_in_dollars_without_a_price() -> None:
    sig = signal("exit", quantity=D(500), quantity_type=QuantityType.DOLLAR_AMOUNT)
    result = plan(sig, position="10")
    assert only_denial(result).code == "no_price_for_sizing"
    assert result.orders == ()


def test_a_sell_without_sentiment_that_cannot_be_sized_is_denied_whole() -> None:
    # Without a size there is no telling a partial exit from a reversal.
    sig = signal("sell", quantity=D(500), quantity_type=QuantityType.DOLLAR_AMOUNT)
    result = plan(sig, position="10")
    assert only_denial(result).code == "no_price_for_sizing"
    assert result.orders == ()


def test_a_sell_without_sentiment_sized_in_dollars_compares_shares_to_the_position() -> None:
    sig = signal(
        "sell",
        quantity=D(500),
        quantity_type=QuantityType.DOLLAR_AMOUNT,
        signal_price=D(100),
    )
    assert steps(plan(sig, position="10")) == [(EXIT, SELL, D(5))]
    assert steps(plan(sig, position="3")) == [(EXIT, SELL, D(3)), (ENTRY, SELL, D(2))]


# --- more leg refusals ---------------------------------------------------------------------


def test_an_empty_take_profit_is_denied_but_the_entry_goes() -> None:
    result = plan(signal("buy", signal_price=D(100), take_profit=TakeProfit()))
    assert steps(result) == [(ENTRY, BUY, D(1))]
    denial = only_denial(result)
    assert denial.code == "bracket_needs_price"
    assert "has no absolute price, percent or amount" in denial.message


def test_a_relative_stop_loss_without_an_entry_price_is_denied() -> None:
    result = plan(signal("buy", stop_loss=StopLoss(amount=D(2))))
    assert steps(result) == [(ENTRY, BUY, D(1))]
    assert only_denial(result).code == "bracket_needs_price"


def test_a_computed_leg_price_that_is_not_positive_is_denied() -> None:
    sig = signal("buy", signal_price=D(100), stop_loss=StopLoss(amount=D(150)))
    denial = only_denial(plan(sig))
    assert denial.code == "invalid_bracket_price"
    assert "stop_loss price -50 is not positive" in denial.message


def test_a_take_profit_on_the_wrong_side_of_a_short_entry_is_denied() -> None:
    sig = signal("sell", signal_price=D(100), take_profit=TakeProfit(limit_price=D(105)))
    result = plan(sig)
    assert steps(result) == [(ENTRY, SELL, D(1))]
    denial = only_denial(result)
    assert denial.code == "invalid_bracket_price"
    assert "must be below the entry price 100 of a sell entry" in denial.message


def test_a_stop_loss_of_an_unsupported_type_is_denied() -> None:
    sig = signal("buy", stop_loss=StopLoss(type=OrderType.LIMIT, stop_price=D(90)))
    result = plan(sig)
    assert steps(result) == [(ENTRY, BUY, D(1))]
    assert only_denial(result).code == "invalid_bracket_price"


def test_a_trailing_stop_loss_needs_exactly_one_of_percent_and_amount() -> None:
    sig = signal("buy", stop_loss=StopLoss(type=OrderType.TRAILING_STOP, stop_price=D(90)))
    result = plan(sig)
    assert steps(result) == [(ENTRY, BUY, D(1))]
    assert only_denial(result).code == "bracket_needs_price"


def test_a_leg_at_the_entry_price_is_denied() -> None:
    sig = signal("buy", signal_price=D(100), take_profit=TakeProfit(limit_price=D(100)))
    assert only_denial(plan(sig)).code == "invalid_bracket_price"


def test_stale_signal_message_keeps_fractional_seconds() -> None:
    sig = signal("buy", signal_time=NOW - timedelta(seconds=60, milliseconds=500))
    denial = only_denial(plan(sig, config=settings(max_signal_age_seconds=60)))
    assert "60.5 s old" in denial.message


def test_a_naive_now_against_an_aware_signal_time_raises() -> None:
    sig = signal("buy", signal_time=NOW)
    with pytest.raises(TypeError):
        plan(sig, config=settings(max_signal_age_seconds=60), now=NOW.replace(tzinfo=None))


def test_symbol_allowlist_matches_any_spelling_of_a_crypto_pair() -> None:
    # Execution hands the engine the canonical BTC/USD; the user listed TradingView's BTCUSD.
    config = settings(allowed_symbols=("BTCUSD",))
    assert steps(plan(signal("buy", ticker="BTC/USD"), config=config)) == [(ENTRY, BUY, D(1))]
    assert only_denial(plan(signal("buy", ticker="ETH/USD"), config=config)).code == "symbol_not_allowed"
