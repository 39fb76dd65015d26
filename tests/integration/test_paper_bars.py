"""Specification of the paper broker on market data: bars work resting orders, quotes price markets.

Through the broker port and ``process_bar``, against the real Postgres (schema ``paper``); each
test opens its own config. Bars are ``viewzenix.marketdata.Bar``; expected prices follow the
rules in ``SimulatedBroker.process_bar`` (inside the range at the price, a gap at the open, both
bracket legs in one bar: the stop loss unless ``bracket_conflict`` says otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from builders import NOW, make_config

from viewzenix.brokers import paper_books as books
from viewzenix.brokers.base import BarDriven, BrokerOrder
from viewzenix.brokers.simulated import SimulatedBroker
from viewzenix.domain.engine import OrderPurpose, OrderRequest
from viewzenix.domain.model import OrderSide, OrderStatus, OrderType, TimeInForce
from viewzenix.marketdata import Bar, MarketDataUnavailable
from viewzenix.marketdata.replay import Replay

pytestmark = pytest.mark.db

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def bar(minute: int, o: str, h: str, low: str, c: str, *, symbol: str = "AAPL", start: datetime = NOW) -> Bar:
    """A one-minute bar opening ``minute`` minutes after ``start``."""
    return Bar(
        symbol=symbol,
        interval="1",
        start=start + timedelta(minutes=minute),
        interval_seconds=60,
        open=D(o),
        high=D(h),
        low=D(low),
        close=D(c),
    )


def request(
    leg: str,
    side: OrderSide,
    qty: str,
    order_type: OrderType = OrderType.MARKET,
    *,
    price: str | None = "100",
    purpose: OrderPurpose = OrderPurpose.ENTRY,
    tif: TimeInForce = TimeInForce.GTC,
    parent: str | None = None,
    symbol: str = "AAPL",
    **prices: str,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=f"t-{leg}",
        symbol=symbol,
        side=side,
        qty=D(qty),
        order_type=order_type,
        time_in_force=tif,
        purpose=purpose,
        reference_price=None if price is None else D(price),
        parent_client_order_id=None if parent is None else f"t-{parent}",
        **{k: D(v) for k, v in prices.items()},
    )


@pytest.fixture()
def make_broker(db) -> Callable[..., SimulatedBroker]:
    def build(*, clock=lambda: NOW, market_data=None, **settings) -> SimulatedBroker:
        return SimulatedBroker.for_config(
            db, make_config(db, **settings), clock=clock, market_data=market_data
        )

    return build


def get(broker: SimulatedBroker, leg: str) -> BrokerOrder:
    found = broker.get_order_by_client_order_id(f"t-{leg}")
    assert found is not None
    return found


def bracket(broker: SimulatedBroker, *, stop: str = "95", target: str = "110") -> None:
    """A filled long entry of 10 at 100 with a stop loss and a take profit resting."""
    broker.submit_order(request("e", BUY, "10"))
    broker.submit_order(
        request(
            "tp",
            SELL,
            "10",
            OrderType.LIMIT,
            purpose=OrderPurpose.TAKE_PROFIT,
            parent="e",
            limit_price=target,
        )
    )
    broker.submit_order(
        request("sl", SELL, "10", OrderType.STOP, purpose=OrderPurpose.STOP_LOSS, parent="e", stop_price=stop)
    )
    assert (get(broker, "tp").status, get(broker, "sl").status) == (
        OrderStatus.ACCEPTED,
        OrderStatus.ACCEPTED,
    )


def fills(broker: SimulatedBroker) -> int:
    with broker.db.transaction() as conn:
        return conn.execute(
            "select count(*) as n from paper.fills where config_id = %s", (broker.config_id,)
        ).fetchone()["n"]


def test_the_paper_broker_is_bar_driven(make_broker):
    assert isinstance(make_broker(), BarDriven)


class TestBracketLegsOnBars:
    def test_the_stop_fills_at_the_stop_on_the_bar_that_crosses_it_without_another_alert(self, make_broker):
        broker = make_broker()
        bracket(broker)

        assert broker.process_bar(bar(1, "99", "101", "96", "97")) == []  # not crossed: nothing moves
        changed = broker.process_bar(bar(2, "97", "98", "94", "95.5"))

        assert [(o.client_order_id, o.status) for o in changed] == [
            ("t-tp", OrderStatus.CANCELED),
            ("t-sl", OrderStatus.FILLED),
        ]
        assert get(broker, "sl").filled_avg_price == D("95")
        assert get(broker, "sl").filled_at == NOW + timedelta(minutes=3)  # the bar's close
        assert get(broker, "tp").status_code == "oco"
        assert broker.get_positions() == []

    def test_a_gap_through_the_stop_fills_at_the_open(self, make_broker):
        broker = make_broker()
        bracket(broker)

        broker.process_bar(bar(1, "90", "92", "89", "91"))

        assert get(broker, "sl").filled_avg_price == D("90")

    def test_the_target_fills_at_its_limit_or_at_a_better_open(self, make_broker):
        broker = make_broker()
        bracket(broker)
        broker.process_bar(bar(1, "104", "111", "103", "109"))
        assert get(broker, "tp").filled_avg_price == D("110")

        gapped = make_broker()
        bracket(gapped)
        gapped.process_bar(bar(1, "112", "113", "111", "112"))
        assert get(gapped, "tp").filled_avg_price == D("112")

    def test_both_legs_in_one_bar_fill_the_stop_as_backtesting_py_assumes(self, make_broker):
        broker = make_broker()
        bracket(broker)

        broker.process_bar(bar(1, "100", "111", "94", "100"))

        assert (get(broker, "sl").status, get(broker, "tp").status) == (
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
        )
        assert broker.get_account().cash == D("100000") - D("1000") + D("950")

    def test_both_legs_in_one_bar_fill_the_target_when_configured(self, make_broker):
        broker = make_broker(bracket_conflict="target_first")
        bracket(broker)

        broker.process_bar(bar(1, "100", "111", "94", "100"))

        assert (get(broker, "sl").status, get(broker, "tp").status) == (
            OrderStatus.CANCELED,
            OrderStatus.FILLED,
        )


class TestRestingOrdersOnBars:
    def test_a_buy_limit_fills_at_the_limit_inside_the_range(self, make_broker):
        broker = make_broker()
        broker.submit_order(request("l", BUY, "5", OrderType.LIMIT, limit_price="98"))
        assert get(broker, "l").status is OrderStatus.ACCEPTED

        broker.process_bar(bar(1, "100", "101", "99", "100"))
        assert get(broker, "l").status is OrderStatus.ACCEPTED
        broker.process_bar(bar(2, "100", "100", "97", "99"))

        assert (get(broker, "l").status, get(broker, "l").filled_avg_price) == (OrderStatus.FILLED, D("98"))

    def test_a_buy_stop_gapping_up_fills_at_the_open_with_slippage(self, make_broker):
        broker = make_broker(slippage_bps="10")
        broker.submit_order(request("s", BUY, "5", OrderType.STOP, stop_price="102"))

        broker.process_bar(bar(1, "104", "105", "103", "104"))

        assert get(broker, "s").filled_avg_price == D("104") * D("1.001")

    def test_a_stop_limit_triggers_then_fills_within_its_limit(self, make_broker):
        broker = make_broker()
        broker.submit_order(request("sl", SELL, "5", OrderType.STOP_LIMIT, stop_price="95", limit_price="94"))

        broker.process_bar(bar(1, "93", "93.5", "92", "93"))  # gapped below the limit: triggered, no fill
        assert get(broker, "sl").status is OrderStatus.ACCEPTED
        broker.process_bar(bar(2, "93", "94.5", "92.5", "94"))  # comes back to the limit

        assert (get(broker, "sl").status, get(broker, "sl").filled_avg_price) == (OrderStatus.FILLED, D("94"))

    def test_a_trailing_stop_follows_the_highs_bar_by_bar_then_fills(self, make_broker):
        broker = make_broker()
        broker.submit_order(request("e", BUY, "10"))
        broker.submit_order(
            request("ts", SELL, "10", OrderType.TRAILING_STOP, purpose=OrderPurpose.EXIT, trail_price="2")
        )
        assert get(broker, "ts").stop_price == D("98")  # from the entry price 100

        broker.process_bar(bar(1, "100", "103", "99", "102"))
        assert get(broker, "ts").stop_price == D("101")
        broker.process_bar(bar(2, "102", "106", "101.5", "105"))
        assert get(broker, "ts").stop_price == D("104")
        broker.process_bar(bar(3, "105", "105.5", "103", "103.5"))

        assert (get(broker, "ts").status, get(broker, "ts").filled_avg_price) == (
            OrderStatus.FILLED,
            D("104"),
        )

    def test_a_bar_replayed_or_older_fills_nothing_twice(self, make_broker):
        broker = make_broker()
        bracket(broker)
        crossing = bar(1, "97", "98", "94", "95")
        broker.process_bar(crossing)
        assert fills(broker) == 2  # the entry and the stop
        # A stop placed after the bar: the same bar again (a retried job, a replay) must not fill it.
        broker.submit_order(request("late", SELL, "1", OrderType.STOP, price=None, stop_price="94.5"))

        assert broker.process_bar(crossing) == []
        assert broker.process_bar(bar(0, "97", "98", "94", "95")) == []
        assert fills(broker) == 2
        assert get(broker, "late").status is OrderStatus.ACCEPTED

    def test_each_bar_marks_the_position_at_its_close(self, make_broker):
        broker = make_broker()
        broker.submit_order(request("e", BUY, "10"))

        broker.process_bar(bar(1, "100", "106", "99", "105"))

        assert broker.get_account().equity == D("100000") + D("50")
        with broker.db.transaction() as conn:
            position = books.get_position(conn, broker.config_id, "AAPL")
        assert (position.last_price, position.last_price_at) == (D("105"), NOW + timedelta(minutes=2))


class TestMarketOrdersWithoutAPrice:
    def frame(self) -> pd.DataFrame:
        index = pd.DatetimeIndex([NOW - timedelta(minutes=2), NOW - timedelta(minutes=1)])
        return pd.DataFrame(
            {
                "Open": [100.0, 101.0],
                "High": [101.5, 102.0],
                "Low": [99.5, 100.5],
                "Close": [101.0, 101.5],
                "Bid": [100.9, 101.4],
                "Ask": [101.1, 101.6],
            },
            index=index,
        )

    def test_a_buy_fills_at_the_replayed_ask_and_a_sell_at_the_bid(self, make_broker):
        replay = Replay.from_frame(self.frame(), "AAPL")
        replay.run()
        broker = make_broker(market_data=replay)

        buy = broker.submit_order(request("b", BUY, "2", price=None))
        sell = broker.submit_order(request("s", SELL, "1", price=None))

        assert (buy.status, buy.filled_avg_price) == (OrderStatus.FILLED, D("101.6"))
        assert (sell.status, sell.filled_avg_price) == (OrderStatus.FILLED, D("101.4"))

    def test_without_a_quote_it_fills_at_the_last_bar_close_plus_slippage(self, make_broker):
        broker = make_broker(slippage_bps="20")
        broker.process_bar(bar(-3, "100", "101", "99", "100.5"))

        filled = broker.submit_order(request("b", BUY, "1", price=None))

        assert filled.filled_avg_price == D("100.5") * D("1.002")

    def test_a_source_that_does_not_answer_falls_back_to_the_last_bar(self, make_broker):
        class Down:
            name = "down"

            def latest_quote(self, symbol):
                raise MarketDataUnavailable("connection refused")

            latest_trade = latest_quote

        broker = make_broker(market_data=Down())
        broker.process_bar(bar(-3, "100", "101", "99", "100.5"))

        assert broker.submit_order(request("b", BUY, "1", price=None)).filled_avg_price == D("100.5")

    def test_a_price_older_than_max_quote_age_is_refused_stale_market_data(self, make_broker):
        broker = make_broker(max_quote_age_seconds=60)
        broker.process_bar(bar(-10, "100", "101", "99", "100.5"))  # closed 9 minutes before NOW

        refused = broker.submit_order(request("b", BUY, "1", price=None))

        assert (refused.status, refused.status_code) == (OrderStatus.REJECTED, "stale_market_data")
        assert "540s old" in refused.status_message


class TestBuyingPower:
    def test_a_cash_account_refuses_an_order_beyond_its_cash_with_the_amounts(self, make_broker):
        broker = make_broker(starting_cash="10000")

        refused = broker.submit_order(request("b", BUY, "101", price="100"))

        assert (refused.status, refused.status_code) == (OrderStatus.REJECTED, "insufficient_buying_power")
        assert "needs 10100.00, buying power is 10000.00" in refused.status_message
        assert broker.get_account().cash == D("10000")
        assert broker.submit_order(request("ok", BUY, "100", price="100")).status is OrderStatus.FILLED

    def test_a_margin_multiplier_lends_buying_power_and_counts_what_is_held(self, make_broker):
        broker = make_broker(starting_cash="10000", margin_multiplier="2")
        assert broker.submit_order(request("b1", BUY, "150", price="100")).status is OrderStatus.FILLED

        refused = broker.submit_order(request("b2", BUY, "51", price="100"))

        assert refused.status_code == "insufficient_buying_power"
        assert "buying power is 5000.00" in refused.status_message  # 10000 × 2 − 15000

    def test_closing_a_position_is_never_refused(self, make_broker):
        broker = make_broker(starting_cash="10000")
        broker.submit_order(request("b", BUY, "100", price="100"))

        assert broker.submit_order(request("s", SELL, "100", price="50")).status is OrderStatus.FILLED

    def test_a_short_sale_needs_buying_power_too(self, make_broker):
        broker = make_broker(starting_cash="1000")

        refused = broker.submit_order(request("s", SELL, "11", price="100"))

        assert refused.status_code == "insufficient_buying_power"

    # Alpaca ("Placing Orders", Buying Power): "your available buying power is reduced by existing
    # open buy long and sell short orders. Your sell long and buy to cover orders do not replenish
    # your available buying power until they are executed."

    def test_an_open_limit_buy_holds_buying_power_until_it_is_canceled(self, make_broker):
        broker = make_broker(starting_cash="1000")
        resting = broker.submit_order(request("l", BUY, "5", OrderType.LIMIT, price="110", limit_price="100"))
        assert resting.status is OrderStatus.ACCEPTED  # 110 does not reach the limit: it rests

        refused = broker.submit_order(
            request("m", BUY, "6", OrderType.LIMIT, price="110", limit_price="100", symbol="MSFT")
        )

        assert (refused.status, refused.status_code) == (OrderStatus.REJECTED, "insufficient_buying_power")
        assert "needs 600.00, buying power is 500.00" in refused.status_message  # 1000 − 5 × 100
        assert "held by open orders 500.00" in refused.status_message
        broker.cancel_order("t-l")
        again = request("m2", BUY, "6", OrderType.LIMIT, price="110", limit_price="100", symbol="MSFT")
        assert broker.submit_order(again).status is OrderStatus.ACCEPTED

    def test_a_buy_that_covers_a_short_holds_the_part_that_opens(self, make_broker):
        broker = make_broker(starting_cash="1000")
        assert broker.submit_order(request("s", SELL, "3", price="100")).status is OrderStatus.FILLED
        # Short 3: a buy of 8 covers 3 (that frees nothing until it fills) and opens 5 long; only
        # those 5 hold buying power (500).
        cover = broker.submit_order(request("c", BUY, "8", OrderType.LIMIT, price="110", limit_price="100"))
        assert cover.status is OrderStatus.ACCEPTED

        refused = broker.submit_order(
            request("m", BUY, "3", OrderType.LIMIT, price="110", limit_price="100", symbol="MSFT")
        )

        # equity 1000 (cash 1300 − 3 × 100 owed) − exposure 300 − held 500 = 200
        assert "needs 300.00, buying power is 200.00" in refused.status_message
        assert "held by open orders 500.00" in refused.status_message
        assert (
            broker.submit_order(
                request("m2", BUY, "2", OrderType.LIMIT, price="110", limit_price="100", symbol="MSFT")
            ).status
            is OrderStatus.ACCEPTED
        )

    def test_an_order_that_turns_a_long_short_needs_buying_power_for_the_short(self, make_broker):
        broker = make_broker(starting_cash="1000")
        assert broker.submit_order(request("b", BUY, "5", price="100")).status is OrderStatus.FILLED

        # Long 5: a sell of 16 closes 5 and opens 11 short: 1100 needed, 1000 − 500 held.
        refused = broker.submit_order(request("s", SELL, "16", price="100"))

        assert (refused.status, refused.status_code) == (OrderStatus.REJECTED, "insufficient_buying_power")
        assert "sell 11 AAPL at 100 needs 1100.00, buying power is 500.00" in refused.status_message
        assert broker.submit_order(request("s2", SELL, "10", price="100")).status is OrderStatus.FILLED

    def test_a_quantity_that_is_not_positive_is_rejected_and_recorded(self, make_broker):
        broker = make_broker(starting_cash="1000")

        refused = broker.submit_order(request("z", BUY, "-1", price="100"))

        assert (refused.status, refused.status_code) == (OrderStatus.REJECTED, "invalid_order")
        assert broker.get_order_by_client_order_id("t-z") == refused

    def test_an_open_sell_that_closes_a_long_holds_nothing(self, make_broker):
        broker = make_broker(starting_cash="1000")
        assert broker.submit_order(request("b", BUY, "5", price="100")).status is OrderStatus.FILLED
        exit_ = request(
            "x", SELL, "5", OrderType.LIMIT, price="100", limit_price="120", purpose=OrderPurpose.EXIT
        )
        assert broker.submit_order(exit_).status is OrderStatus.ACCEPTED  # rests: 100 < 120

        # 1000 − exposure 500: the resting sell neither holds nor frees any of it.
        buy = request("m", BUY, "5", price="100", symbol="MSFT")
        assert broker.submit_order(buy).status is OrderStatus.FILLED
        refused = broker.submit_order(request("m2", BUY, "1", price="100", symbol="MSFT"))
        assert "buying power is 0.00" in refused.status_message


class TestDayOrdersAtTheRealClose:
    # Thanksgiving 2026 (Thursday 26 November): NYSE closed. Friday 27: early close 13:00 New
    # York (18:00 UTC). exchange_calendars' XNYS.
    THANKSGIVING = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    BLACK_FRIDAY = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)

    def resting_day_order(self, make_broker, submitted_at: datetime, symbol: str = "AAPL") -> SimulatedBroker:
        broker = make_broker(clock=lambda: submitted_at)
        broker.submit_order(
            request("d", BUY, "1", OrderType.LIMIT, tif=TimeInForce.DAY, symbol=symbol, limit_price="90")
        )
        return broker

    def test_a_day_order_expires_at_the_13_00_early_close(self, make_broker):
        broker = self.resting_day_order(make_broker, self.BLACK_FRIDAY)

        broker.process_bar(
            bar(0, "100", "101", "99", "100", start=datetime(2026, 11, 27, 17, 59, tzinfo=UTC))
        )
        assert get(broker, "d").status is OrderStatus.ACCEPTED  # 12:59 New York: still open
        broker.process_bar(bar(0, "100", "101", "99", "100", start=datetime(2026, 11, 27, 18, 0, tzinfo=UTC)))

        assert (get(broker, "d").status, get(broker, "d").status_code) == (
            OrderStatus.EXPIRED,
            "day_order_expired",
        )

    def test_a_day_order_placed_on_a_holiday_lives_until_the_next_session_closes(self, make_broker):
        broker = self.resting_day_order(make_broker, self.THANKSGIVING)

        # 16:00 New York on Thanksgiving has no close: the order belongs to Friday's session.
        assert (
            broker.expire_day_orders(
                datetime(2026, 11, 26, 21, 0, tzinfo=UTC), datetime(2026, 11, 26, 21, 30, tzinfo=UTC)
            )
            == []
        )
        assert get(broker, "d").status is OrderStatus.ACCEPTED
        expired = broker.expire_day_orders(
            datetime(2026, 11, 27, 18, 0, tzinfo=UTC), datetime(2026, 11, 27, 18, 5, tzinfo=UTC)
        )

        assert [(o.client_order_id, o.status) for o in expired] == [("t-d", OrderStatus.EXPIRED)]

    def test_crypto_day_orders_never_expire(self, make_broker):
        broker = self.resting_day_order(make_broker, self.BLACK_FRIDAY, symbol="BTCUSD")

        broker.process_bar(
            bar(0, "100", "101", "99", "100", symbol="BTCUSD", start=datetime(2026, 12, 1, tzinfo=UTC))
        )

        assert get(broker, "d").status is OrderStatus.ACCEPTED
