"""The daily loss limit's pure rule: P&L since the session's start, the session, what it denies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from viewzenix.domain.engine import OrderPurpose, plan_signal
from viewzenix.domain.loss_limit import (
    DENIAL_CODE,
    SymbolDay,
    decide,
    deny_entries,
    has_entries,
    session_bounds,
    session_pnl,
    symbol_pnl,
)
from viewzenix.domain.model import (
    AccountState,
    Action,
    OpenOrder,
    OrderSide,
    OrderType,
    PositionState,
    Signal,
    StopLoss,
    TakeProfit,
    TradingSettings,
)

D = Decimal
START = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)  # Friday's NYSE close
END = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # Monday's close
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 New York


# --- P&L arithmetic ----------------------------------------------------------------------------


def test_a_round_trip_within_the_session_is_its_realised_pnl_less_commissions():
    # bought 10 @ 100 (commission 1), sold 10 @ 95 (commission 1): -50 - 2
    day = SymbolDay("AAPL", qty=D(0), filled_qty=D(0), cash_flow=D(-1000 - 1 + 950 - 1))
    assert symbol_pnl(day) == D(-52)


def test_an_open_position_bought_today_counts_its_unrealised_pnl_at_the_mark():
    # bought 10 @ 100 today, marked at 97: -30 unrealised
    day = SymbolDay(
        "AAPL", qty=D(10), mark=D(97), avg_entry_price=D(100), filled_qty=D(10), cash_flow=D(-1000)
    )
    assert symbol_pnl(day) == D(-30)


def test_a_short_position_loses_when_the_price_rises():
    day = SymbolDay(
        "AAPL", qty=D(-5), mark=D(110), avg_entry_price=D(100), filled_qty=D(-5), cash_flow=D(500)
    )
    assert symbol_pnl(day) == D(-50)


def test_a_position_carried_from_before_the_session_counts_only_the_move_since_the_start_price():
    # 10 held since yesterday (entry 80), 105 at the session's start, 100 now: -50 today (not +200)
    day = SymbolDay("AAPL", qty=D(10), mark=D(100), avg_entry_price=D(80), start_price=D(105))
    assert symbol_pnl(day) == D(-50)


def test_a_carried_position_without_a_start_price_is_valued_from_its_entry():
    day = SymbolDay("AAPL", qty=D(10), mark=D(100), avg_entry_price=D(110))
    assert symbol_pnl(day) == D(-100)


def test_a_position_without_a_mark_has_no_unrealised_pnl():
    day = SymbolDay(
        "AAPL", qty=D(10), mark=None, avg_entry_price=D(100), filled_qty=D(10), cash_flow=D(-1001)
    )
    assert symbol_pnl(day) == D(-1)


def test_a_carried_position_sold_today_counts_from_the_start_price():
    # 10 held (start price 100), sold 10 @ 90 today: -100
    day = SymbolDay(
        "AAPL", qty=D(0), avg_entry_price=D(0), filled_qty=D(-10), cash_flow=D(900), start_price=D(100)
    )
    assert symbol_pnl(day) == D(-100)


def test_crypto_fee_in_coins_lowers_the_pnl():
    # bought 1 BTC @ 50,000, fee 0.0025 BTC taken from the coins: 0.9975 held, marked 50,000
    day = SymbolDay("BTC/USD", qty=D("0.9975"), mark=D(50000), filled_qty=D("0.9975"), cash_flow=D(-50000))
    assert symbol_pnl(day) == D("-125.0000")


def test_the_session_pnl_sums_every_symbol():
    days = [
        SymbolDay("AAPL", qty=D(0), cash_flow=D(-40)),
        SymbolDay("MSFT", qty=D(1), mark=D(90), filled_qty=D(1), cash_flow=D(-100)),
    ]
    assert session_pnl(days) == D(-50)
    assert session_pnl([]) == D(0)


# --- the decision --------------------------------------------------------------------------------


def test_a_loss_equal_to_the_limit_reaches_it_a_smaller_one_does_not():
    common = {"already_breached": False, "session_start": START, "session_end": END}
    assert decide(limit=D(100), pnl=D(-100), **common).breached
    assert decide(limit=D(100), pnl=D("-100.01"), **common).breached
    assert not decide(limit=D(100), pnl=D("-99.99"), **common).breached
    assert not decide(limit=D(100), pnl=D(500), **common).breached


def test_a_recorded_breach_holds_for_the_session_even_if_prices_recover():
    decision = decide(limit=D(100), pnl=D(20), already_breached=True, session_start=START, session_end=END)
    assert decision.breached


# --- the session boundary ------------------------------------------------------------------------


def test_an_equity_session_runs_from_the_previous_close_to_the_next():
    assert session_bounds(NOW, "AAPL") == (START, END)
    # after Monday's close, Tuesday's session has begun
    evening = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    assert session_bounds(evening, "AAPL") == (END, datetime(2026, 11, 24, 21, 0, tzinfo=UTC))
    # one second before the close still belongs to Monday's session
    assert session_bounds(datetime(2026, 11, 23, 20, 59, 59, tzinfo=UTC), "AAPL") == (START, END)


def test_an_early_close_and_a_holiday_move_the_boundary():
    # Thanksgiving (Thu 26 Nov 2026) is closed; Friday closes at 13:00 New York (18:00 UTC)
    thanksgiving = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    start, end = session_bounds(thanksgiving, "AAPL")
    assert start == datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def test_crypto_sessions_are_utc_days():
    start, end = session_bounds(datetime(2026, 11, 22, 23, 59, tzinfo=UTC), "BTCUSD")
    assert (start, end) == (datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))
    assert session_bounds(datetime(2026, 11, 23, 0, 0, tzinfo=UTC), "BTC/USD")[0] == datetime(
        2026, 11, 23, tzinfo=UTC
    )


# --- what a breach denies ------------------------------------------------------------------------


def _plan(action: str, qty: str, open_orders=(), **fields):
    return plan_signal(
        signal=Signal(ticker="AAPL", action=Action(action), quantity=D(qty), signal_price=D(100), **fields),
        signal_id=uuid.UUID(int=1),
        position=PositionState("AAPL", qty=D(0) if action == "buy" else D(5), avg_entry_price=D(100)),
        account=AccountState(cash=D(100000), equity=D(100000)),
        open_orders=list(open_orders),
        settings=TradingSettings(),
        now=NOW,
    )


BREACHED = decide(limit=D(100), pnl=D(-150), already_breached=False, session_start=START, session_end=END)
FINE = decide(limit=D(100), pnl=D(-50), already_breached=False, session_start=START, session_end=END)


def test_a_breach_denies_the_entry_and_drops_its_bracket_legs():
    plan = _plan(
        "buy", "10", take_profit=TakeProfit(limit_price=D(110)), stop_loss=StopLoss(stop_price=D(90))
    )
    assert has_entries(plan) and len(plan.orders) == 3
    limited = deny_entries(plan, BREACHED)
    assert limited.orders == ()
    [denial] = limited.denials
    assert denial.code == DENIAL_CODE and denial.order.purpose is OrderPurpose.ENTRY
    assert "daily loss limit 100.00 reached" in denial.message and "-150.00" in denial.message
    assert "2026-11-23 21:00 UTC" in denial.message


def test_exits_always_pass():
    plan = _plan("exit", "5")
    assert not has_entries(plan)
    assert deny_entries(plan, BREACHED) == plan


def test_a_reversal_keeps_its_exit_and_loses_its_entry():
    plan = _plan("sell", "10")  # long 5 → short: exit 5, enter 5 short
    assert {o.purpose for o in plan.orders} == {OrderPurpose.EXIT, OrderPurpose.ENTRY}
    limited = deny_entries(plan, BREACHED)
    assert [o.purpose for o in limited.orders] == [OrderPurpose.EXIT]
    assert [d.code for d in limited.denials] == [DENIAL_CODE]


def test_a_denied_entry_cancels_nothing_and_an_exit_kept_keeps_its_cancels():
    resting = OpenOrder(
        order_id="o1",
        client_order_id="resting-limit",
        symbol="AAPL",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        qty=D(3),
        purpose=OrderPurpose.ENTRY,
    )
    entry = _plan("buy", "10", open_orders=[resting])
    assert entry.cancel_client_order_ids == ("resting-limit",)  # the engine makes room for the entry
    assert deny_entries(entry, BREACHED).cancel_client_order_ids == ()
    reversal = _plan("sell", "10", open_orders=[resting])
    assert deny_entries(reversal, BREACHED).cancel_client_order_ids == ("resting-limit",)


def test_under_the_limit_nothing_changes():
    plan = _plan("buy", "10")
    assert deny_entries(plan, FINE) is plan
