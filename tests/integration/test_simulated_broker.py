"""Specification of the simulated (paper) broker, against the real Postgres.

Each test opens its own user and webhook config, so tests never share rows. Prices and money
are Decimal; every expected number is worked out in the test from the fill rules in
``viewzenix.brokers.simulated``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from viewzenix.brokers.base import (
    Broker,
    DuplicateOrder,
    OrderNotCancelable,
    OrderNotFound,
)
from viewzenix.brokers.simulated import SimulatedBroker
from viewzenix.db import Connection, Database
from viewzenix.domain.engine import OrderPurpose, OrderRequest
from viewzenix.domain.model import (
    OrderSide,
    OrderStatus,
    OrderType,
    PositionState,
    TimeInForce,
)
from viewzenix.repositories import accounts as accounts_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import positions as positions_repo
from viewzenix.repositories import webhook_configs as configs_repo

pytestmark = pytest.mark.db

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York
LATER = NOW + timedelta(minutes=5)
D = Decimal


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture()
def conn(db: Database) -> Iterator[Connection]:
    """One transaction per test (committed; every test has its own config)."""
    with db.transaction() as connection:
        yield connection


def make_config(conn: Connection, **settings: Any) -> dict[str, Any]:
    user_id = uuid.uuid4()
    configs_repo.ensure_user(conn, user_id, f"{user_id.hex[:10]}@example.test")
    return configs_repo.insert(
        conn,
        user_id=user_id,
        token_hash=os.urandom(32),
        token_hint="test",
        values={"name": "paper", **settings},
    )


def make_broker(conn: Connection, **settings: Any) -> SimulatedBroker:
    return SimulatedBroker.for_config(conn, make_config(conn, **settings), clock=lambda: NOW)


def order(
    leg: str,
    side: OrderSide,
    qty: str,
    order_type: OrderType = OrderType.MARKET,
    *,
    price: str | None = "100",
    purpose: OrderPurpose = OrderPurpose.ENTRY,
    tif: TimeInForce = TimeInForce.DAY,
    symbol: str = "AAPL",
    **prices: Any,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=f"test-{leg}",
        symbol=symbol,
        side=side,
        qty=D(qty),
        order_type=order_type,
        time_in_force=tif,
        purpose=purpose,
        reference_price=None if price is None else D(price),
        **{k: D(v) if isinstance(v, str) and k != "parent_client_order_id" else v for k, v in prices.items()},
    )


BUY, SELL = OrderSide.BUY, OrderSide.SELL


def row(broker: SimulatedBroker, client_order_id: str) -> dict[str, Any]:
    found = orders_repo.get_by_client_order_id(broker.conn, broker.config_id, client_order_id)
    assert found is not None
    return found


def events(broker: SimulatedBroker, client_order_id: str) -> list[str]:
    return [e["event_type"] for e in orders_repo.events_for(broker.conn, row(broker, client_order_id)["id"])]


def position(broker: SimulatedBroker, symbol: str = "AAPL") -> positions_repo.PositionRecord:
    return positions_repo.lock(broker.conn, config_id=broker.config_id, user_id=broker.user_id, symbol=symbol)


# --- the port ------------------------------------------------------------------------------


def test_simulated_broker_implements_the_broker_protocol(conn):
    assert isinstance(make_broker(conn), Broker)


# --- market orders -------------------------------------------------------------------------


class TestMarketOrders:
    def test_buy_fills_at_once_at_the_reference_price_plus_slippage(self, conn):
        broker = make_broker(conn, slippage_bps=D("10"))

        result = broker.submit_order(order("m1", BUY, "10"))

        assert result.status is OrderStatus.FILLED
        assert result.filled_qty == D("10")
        assert result.filled_avg_price == D("100.1")  # 100 * (1 + 10/10000)
        assert result.broker_order_id.startswith("sim-")

    def test_sell_fills_at_the_reference_price_minus_slippage(self, conn):
        broker = make_broker(conn, slippage_bps=D("10"))

        result = broker.submit_order(order("m1", SELL, "10"))

        assert result.filled_avg_price == D("99.9")

    def test_fill_pays_commission_from_cash_and_marks_equity_at_the_market_price(self, conn):
        broker = make_broker(
            conn,
            starting_cash=D("100000"),
            slippage_bps=D("10"),
            commission_rate=D("0.001"),
            commission_fixed=D("1"),
        )

        broker.submit_order(order("m1", BUY, "10"))

        # commission = 10 * 100.1 * 0.001 + 1 = 2.001; cash = 100000 - 1001 - 2.001
        account = broker.get_account()
        assert account.cash == D("98996.999")
        # equity = cash + 10 * 100 (the mark is the market price, not the slipped fill)
        assert account.equity == D("99996.999")
        fill = orders_repo.fills_for(conn, row(broker, "test-m1")["id"])[0]
        assert (fill["trade_id"], fill["last_qty"], fill["last_px"], fill["commission"]) == (
            "test-m1-1",
            D("10"),
            D("100.1"),
            D("2.001"),
        )

    def test_sell_credits_cash_less_commission(self, conn):
        broker = make_broker(conn, commission_fixed=D("2"))

        broker.submit_order(order("m1", SELL, "10"))

        assert broker.get_account().cash == D("100998")  # 100000 + 1000 - 2

    def test_filled_order_records_its_life_cycle(self, conn):
        broker = make_broker(conn)

        broker.submit_order(order("m1", BUY, "10"))

        stored = row(broker, "test-m1")
        assert stored["status"] == "filled"
        assert (stored["submitted_at"], stored["filled_at"]) == (NOW, NOW)
        assert stored["filled_avg_price"] == D("100")
        assert stored["broker"] == "simulated"
        assert events(broker, "test-m1") == ["OrderSubmitted", "OrderAccepted", "OrderFilled"]

    def test_an_order_missing_a_price_its_type_needs_is_rejected(self, conn):
        broker = make_broker(conn)

        result = broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT))

        assert (result.status, result.status_code) == (OrderStatus.REJECTED, "invalid_order")
        assert "limit_price" in result.status_message

    def test_without_a_reference_price_is_rejected_no_market_price(self, conn):
        broker = make_broker(conn)

        result = broker.submit_order(order("m1", BUY, "10", price=None))

        assert result.status is OrderStatus.REJECTED
        assert result.status_code == "no_market_price"
        assert "no market data" in result.status_message
        assert "price" in result.status_message
        assert events(broker, "test-m1") == ["OrderSubmitted", "OrderRejected"]
        assert orders_repo.fills_for(conn, row(broker, "test-m1")["id"]) == []
        assert broker.get_account().cash == D("100000")


# --- the paper account and positions -------------------------------------------------------


class TestPaperAccountAndPositions:
    def test_account_opens_with_the_configs_starting_cash_on_first_use(self, conn):
        broker = make_broker(conn, starting_cash=D("2500"))

        account = broker.get_account()

        assert (account.cash, account.equity) == (D("2500"), D("2500"))

    def test_position_opens_with_signed_qty_average_price_and_opened_at(self, conn):
        broker = make_broker(conn)

        broker.submit_order(order("m1", SELL, "3", price="50"))

        held = position(broker)
        assert (held.qty, held.avg_entry_price, held.last_price) == (D("-3"), D("50"), D("50"))
        assert held.opened_at == NOW
        assert broker.get_positions() == [PositionState("AAPL", D("-3"), D("50"))]

    def test_adding_to_a_long_averages_the_entry_price(self, conn):
        broker = make_broker(conn)

        broker.submit_order(order("m1", BUY, "10", price="100"))
        broker.submit_order(order("m2", BUY, "10", price="110"))

        held = position(broker)
        assert (held.qty, held.avg_entry_price) == (D("20"), D("105"))

    def test_selling_part_of_a_long_realises_pnl_on_the_part_sold(self, conn):
        broker = make_broker(conn)

        broker.submit_order(order("m1", BUY, "10", price="100"))
        broker.submit_order(order("m2", SELL, "4", price="110"))

        held = position(broker)
        assert (held.qty, held.avg_entry_price, held.realized_pnl) == (D("6"), D("100"), D("40"))

    def test_covering_a_short_realises_the_mirrored_pnl_and_keeps_the_flat_row(self, conn):
        broker = make_broker(conn)

        broker.submit_order(order("m1", SELL, "10", price="100"))
        broker.submit_order(order("m2", BUY, "10", price="90"))

        held = position(broker)
        assert (held.qty, held.avg_entry_price, held.realized_pnl) == (D("0"), D("0"), D("100"))
        assert held.opened_at is None
        assert broker.get_positions() == []
        account = broker.get_account()
        assert (account.cash, account.equity) == (D("100100"), D("100100"))

    def test_a_losing_short_realises_a_loss(self, conn):
        broker = make_broker(conn)

        broker.submit_order(order("m1", SELL, "10", price="100"))
        broker.submit_order(order("m2", BUY, "10", price="104"))

        assert position(broker).realized_pnl == D("-40")

    def test_selling_through_zero_flips_to_a_short_opened_at_the_fill_price(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("m1", BUY, "10", price="100"))
        broker.clock = lambda: LATER

        broker.submit_order(order("m2", SELL, "15", price="110"))

        held = position(broker)
        assert (held.qty, held.avg_entry_price, held.realized_pnl) == (D("-5"), D("110"), D("100"))
        assert held.opened_at == LATER

    def test_equity_counts_shorts_with_their_sign_at_the_latest_price(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("m1", SELL, "10", price="100"))

        broker.process_price("AAPL", D("105"), LATER)

        account = broker.get_account()
        assert account.cash == D("101000")
        assert account.equity == D("99950")  # 101000 + (-10 * 105)


# --- limit, stop, stop_limit and trailing_stop orders ---------------------------------------


class TestRestingOrders:
    def test_marketable_buy_limit_fills_at_the_price_not_the_limit(self, conn):
        broker = make_broker(conn)

        result = broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="105"))

        assert (result.status, result.filled_avg_price) == (OrderStatus.FILLED, D("100"))

    def test_slipped_limit_fill_is_capped_at_the_limit(self, conn):
        broker = make_broker(conn, slippage_bps=D("100"))

        result = broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="100.5"))

        assert result.filled_avg_price == D("100.5")  # 100 * 1.01 = 101, capped at 100.5

    def test_buy_limit_below_the_price_rests_until_a_later_price_crosses_it(self, conn):
        broker = make_broker(conn)

        resting = broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))
        assert resting.status is OrderStatus.ACCEPTED
        assert broker.process_price("AAPL", D("96"), LATER) == []

        changed = broker.process_price("AAPL", D("94"), LATER)

        assert [(o.client_order_id, o.status, o.filled_avg_price) for o in changed] == [
            ("test-l1", OrderStatus.FILLED, D("94"))
        ]
        assert row(broker, "test-l1")["filled_at"] == LATER
        assert events(broker, "test-l1") == ["OrderSubmitted", "OrderAccepted", "OrderFilled"]
        assert position(broker).qty == D("10")

    def test_sell_limit_rests_until_the_price_rises_to_it(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("l1", SELL, "5", OrderType.LIMIT, limit_price="110"))

        assert broker.process_price("AAPL", D("109.99"), LATER) == []
        [filled] = broker.process_price("AAPL", D("110"), LATER)

        assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, D("110"))

    def test_a_price_for_another_symbol_leaves_resting_orders_alone(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))

        assert broker.process_price("MSFT", D("1"), LATER) == []
        assert row(broker, "test-l1")["status"] == "accepted"

    def test_day_order_expires_when_a_price_arrives_on_a_later_new_york_date(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("day", BUY, "10", OrderType.LIMIT, limit_price="95"))
        broker.submit_order(order("gtc", BUY, "10", OrderType.LIMIT, limit_price="90", tif=TimeInForce.GTC))

        broker.process_price("AAPL", D("99"), NOW + timedelta(days=1))

        assert row(broker, "test-day")["status"] == "expired"
        assert events(broker, "test-day")[-1] == "OrderExpired"
        assert row(broker, "test-gtc")["status"] == "accepted"

    def test_ioc_limit_that_cannot_fill_at_once_is_canceled(self, conn):
        broker = make_broker(conn)

        result = broker.submit_order(
            order("ioc", BUY, "10", OrderType.LIMIT, limit_price="95", tif=TimeInForce.IOC)
        )

        assert (result.status, result.status_code) == (OrderStatus.CANCELED, "not_marketable")

    def test_limit_without_a_reference_price_is_checked_against_the_last_price(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("m1", BUY, "1", price="100"))

        result = broker.submit_order(order("l1", SELL, "1", OrderType.LIMIT, price=None, limit_price="99"))

        assert (result.status, result.filled_avg_price) == (OrderStatus.FILLED, D("100"))

    def test_sell_stop_triggers_when_the_price_falls_to_it_and_fills_at_that_price(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("m1", BUY, "10"))
        broker.submit_order(order("s1", SELL, "10", OrderType.STOP, stop_price="95"))

        assert broker.process_price("AAPL", D("95.01"), LATER) == []
        [filled] = broker.process_price("AAPL", D("93"), LATER)  # gapped through the stop

        assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, D("93"))
        assert position(broker).realized_pnl == D("-70")

    def test_buy_stop_above_the_price_rests_then_triggers_with_slippage(self, conn):
        broker = make_broker(conn, slippage_bps=D("50"))
        resting = broker.submit_order(order("s1", BUY, "10", OrderType.STOP, stop_price="105"))
        assert resting.status is OrderStatus.ACCEPTED

        [filled] = broker.process_price("AAPL", D("106"), LATER)

        assert filled.filled_avg_price == D("106.53")  # 106 * 1.005

    def test_stop_limit_triggers_then_waits_for_its_limit(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("sl", BUY, "10", OrderType.STOP_LIMIT, stop_price="105", limit_price="106"))

        assert broker.process_price("AAPL", D("107"), LATER) == []  # triggered above the limit
        assert events(broker, "test-sl")[-1] == "OrderTriggered"
        [filled] = broker.process_price("AAPL", D("104.5"), LATER)  # below the stop: a limit now

        assert filled.filled_avg_price == D("104.5")

    def test_trailing_stop_follows_the_high_and_fills_on_the_pullback(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("m1", BUY, "10"))
        broker.submit_order(
            order("ts", SELL, "10", OrderType.TRAILING_STOP, tif=TimeInForce.GTC, trail_price="5")
        )
        assert row(broker, "test-ts")["stop_price"] == D("95")

        broker.process_price("AAPL", D("110"), LATER)
        assert row(broker, "test-ts")["stop_price"] == D("105")
        broker.process_price("AAPL", D("108"), LATER)
        assert row(broker, "test-ts")["stop_price"] == D("105")  # never moves back
        [filled] = broker.process_price("AAPL", D("104"), LATER)

        assert filled.filled_avg_price == D("104")
        assert position(broker).realized_pnl == D("40")

    def test_trailing_stop_by_percent(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("ts", BUY, "1", OrderType.TRAILING_STOP, price="200", trail_percent="10"))
        assert row(broker, "test-ts")["stop_price"] == D("220")

        broker.process_price("AAPL", D("150"), LATER)

        assert row(broker, "test-ts")["stop_price"] == D("165")


# --- take-profit / stop-loss legs ----------------------------------------------------------


def bracket(broker: SimulatedBroker, entry: OrderRequest) -> None:
    broker.submit_order(entry)
    broker.submit_order(
        order(
            "tp",
            SELL,
            entry.qty.to_eng_string(),
            OrderType.LIMIT,
            price=None,
            purpose=OrderPurpose.TAKE_PROFIT,
            tif=TimeInForce.GTC,
            limit_price="110",
            parent_client_order_id=entry.client_order_id,
        )
    )
    broker.submit_order(
        order(
            "sl",
            SELL,
            entry.qty.to_eng_string(),
            OrderType.STOP,
            price=None,
            purpose=OrderPurpose.STOP_LOSS,
            tif=TimeInForce.GTC,
            stop_price="90",
            parent_client_order_id=entry.client_order_id,
        )
    )


class TestBracketLegs:
    def test_legs_wait_pending_until_the_parent_fills_then_rest(self, conn):
        broker = make_broker(conn)
        bracket(broker, order("en", BUY, "10", OrderType.LIMIT, limit_price="95"))
        assert [row(broker, c)["status"] for c in ("test-tp", "test-sl")] == ["held", "held"]

        broker.process_price("AAPL", D("94"), LATER)

        assert row(broker, "test-en")["status"] == "filled"
        assert [row(broker, c)["status"] for c in ("test-tp", "test-sl")] == [
            "accepted",
            "accepted",
        ]
        assert row(broker, "test-tp")["parent_order_id"] == row(broker, "test-en")["id"]
        assert events(broker, "test-sl") == ["OrderSubmitted", "OrderAccepted"]

    def test_legs_of_a_filled_parent_rest_at_once(self, conn):
        broker = make_broker(conn)

        bracket(broker, order("en", BUY, "10"))

        assert [row(broker, c)["status"] for c in ("test-tp", "test-sl")] == [
            "accepted",
            "accepted",
        ]

    def test_take_profit_fill_cancels_the_stop_loss_oco(self, conn):
        broker = make_broker(conn)
        bracket(broker, order("en", BUY, "10"))

        broker.process_price("AAPL", D("111"), LATER)

        assert row(broker, "test-tp")["status"] == "filled"
        stop = row(broker, "test-sl")
        assert (stop["status"], stop["status_code"], stop["canceled_at"]) == (
            "canceled",
            "oco",
            LATER,
        )
        held = position(broker)
        assert (held.qty, held.realized_pnl) == (D("0"), D("110"))  # (111 - 100) * 10

    def test_stop_loss_fill_cancels_the_take_profit_oco(self, conn):
        broker = make_broker(conn)
        bracket(broker, order("en", BUY, "10"))

        broker.process_price("AAPL", D("89"), LATER)

        assert row(broker, "test-sl")["status"] == "filled"
        assert row(broker, "test-tp")["status"] == "canceled"
        assert position(broker).realized_pnl == D("-110")

    def test_canceling_the_parent_cancels_its_waiting_legs(self, conn):
        broker = make_broker(conn)
        bracket(broker, order("en", BUY, "10", OrderType.LIMIT, limit_price="95"))

        broker.cancel_order("test-en")

        assert [row(broker, c)["status"] for c in ("test-en", "test-tp", "test-sl")] == [
            "canceled",
            "canceled",
            "canceled",
        ]
        assert row(broker, "test-tp")["status_code"] == "parent_not_filled"


# --- client_order_id, cancel, look-up ------------------------------------------------------


class TestClientOrderIds:
    def test_second_submit_with_the_same_client_order_id_is_refused_and_fills_once(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("m1", BUY, "10"))

        with pytest.raises(DuplicateOrder, match="client_order_id must be unique") as refused:
            broker.submit_order(order("m1", BUY, "10"))

        assert refused.value.client_order_id == "test-m1"
        # The transaction is still usable, and nothing was filled twice.
        assert len(orders_repo.fills_for(conn, row(broker, "test-m1")["id"])) == 1
        assert position(broker).qty == D("10")
        assert broker.get_account().cash == D("99000")

    def test_the_same_client_order_id_in_another_config_is_a_different_order(self, conn):
        first, second = make_broker(conn), make_broker(conn)

        first.submit_order(order("m1", BUY, "10"))
        result = second.submit_order(order("m1", BUY, "10"))

        assert result.status is OrderStatus.FILLED


class TestCancelAndLookUp:
    def test_cancel_a_resting_order(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))

        result = broker.cancel_order("test-l1")

        assert result.status is OrderStatus.CANCELED
        assert row(broker, "test-l1")["canceled_at"] == NOW
        assert events(broker, "test-l1")[-1] == "OrderCanceled"
        assert broker.process_price("AAPL", D("90"), LATER) == []

    def test_canceling_twice_returns_the_canceled_order(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))
        broker.cancel_order("test-l1")

        assert broker.cancel_order("test-l1").status is OrderStatus.CANCELED
        assert events(broker, "test-l1").count("OrderCanceled") == 1

    def test_a_filled_order_is_not_cancelable(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("m1", BUY, "10"))

        with pytest.raises(OrderNotCancelable):
            broker.cancel_order("test-m1")

    def test_an_unknown_order_is_not_found(self, conn):
        broker = make_broker(conn)

        with pytest.raises(OrderNotFound):
            broker.cancel_order("nope")
        assert broker.get_order("nope") is None

    def test_get_order_reports_the_order(self, conn):
        broker = make_broker(conn)
        broker.submit_order(order("m1", BUY, "10"))

        found = broker.get_order("test-m1")

        assert (found.status, found.filled_qty, found.filled_avg_price) == (
            OrderStatus.FILLED,
            D("10"),
            D("100"),
        )

    def test_open_orders_lists_pending_and_resting_orders_for_the_engine(self, conn):
        broker = make_broker(conn)
        bracket(broker, order("en", BUY, "10", OrderType.LIMIT, limit_price="95"))

        listed = broker.open_orders("AAPL")

        assert [(o.client_order_id, o.purpose) for o in listed] == [
            ("test-en", "entry"),
            ("test-tp", "take_profit"),
            ("test-sl", "stop_loss"),
        ]


# --- isolation -----------------------------------------------------------------------------


def test_two_configs_keep_separate_accounts_and_positions(conn):
    first = make_broker(conn, starting_cash=D("1000"))
    second = make_broker(conn, starting_cash=D("5000"))

    first.submit_order(order("m1", BUY, "5", price="10"))
    second.submit_order(order("m1", SELL, "2", price="10"))

    assert first.get_account().cash == D("950")
    assert second.get_account().cash == D("5020")
    assert first.get_positions() == [PositionState("AAPL", D("5"), D("10"))]
    assert second.get_positions() == [PositionState("AAPL", D("-2"), D("10"))]


# --- read models for the REST API (caller's connection, RLS) -------------------------------


class TestReadModels:
    @pytest.fixture()
    def traded(self, db: Database) -> dict[str, Any]:
        """A committed config with a filled long, a resting limit and a flat symbol."""
        with db.transaction() as conn:
            broker = make_broker(conn, commission_fixed=D("1"))
            broker.submit_order(order("m1", BUY, "10", price="100"))
            broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="90"))
            broker.submit_order(order("m2", BUY, "1", price="50", symbol="MSFT"))
            broker.submit_order(order("m3", SELL, "1", price="60", symbol="MSFT"))
            broker.process_price("AAPL", D("104"), LATER)
            return {"config_id": broker.config_id, "user_id": broker.user_id}

    def claims(self, user_id: uuid.UUID) -> dict[str, Any]:
        return {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}

    def test_orders_list_page_is_newest_first_with_filters_and_total(self, db, traded):
        with db.transaction(claims=self.claims(traded["user_id"])) as conn:
            rows, total = orders_repo.list_page(
                conn,
                config_id=traded["config_id"],
                status=None,
                symbol=None,
                signal_id=None,
                limit=2,
                offset=0,
            )
            assert total == 4
            assert [r["client_order_id"] for r in rows] == ["test-m3", "test-m2"]
            assert "total_count" not in rows[0]
            rows, total = orders_repo.list_page(
                conn,
                config_id=None,
                status="accepted",
                symbol="AAPL",
                signal_id=None,
                limit=10,
                offset=0,
            )
            assert (total, [r["client_order_id"] for r in rows]) == (1, ["test-l1"])
            assert orders_repo.list_page(
                conn,
                config_id=None,
                status=None,
                symbol="TSLA",
                signal_id=None,
                limit=10,
                offset=0,
            ) == ([], 0)

    def test_order_detail_events_and_fills(self, db, traded):
        with db.transaction(claims=self.claims(traded["user_id"])) as conn:
            [filled] = orders_repo.list_page(
                conn,
                config_id=None,
                status="filled",
                symbol="AAPL",
                signal_id=None,
                limit=10,
                offset=0,
            )[0]
            assert orders_repo.get(conn, filled["id"])["client_order_id"] == "test-m1"
            assert [e["event_type"] for e in orders_repo.events_for(conn, filled["id"])] == [
                "OrderSubmitted",
                "OrderAccepted",
                "OrderFilled",
            ]
            [fill] = orders_repo.fills_for(conn, filled["id"])
            assert (fill["last_qty"], fill["last_px"], fill["commission"]) == (
                D("10"),
                D("100"),
                D("1"),
            )

    def test_positions_list_for_adds_side_market_value_and_unrealized_pnl(self, db, traded):
        with db.transaction(claims=self.claims(traded["user_id"])) as conn:
            [aapl] = positions_repo.list_for(conn, config_id=traded["config_id"])
            assert (aapl["symbol"], aapl["side"], aapl["qty"]) == ("AAPL", "long", D("10"))
            assert (aapl["market_value"], aapl["unrealized_pnl"]) == (D("1040"), D("40"))
            everything = positions_repo.list_for(conn, include_flat=True)
            assert [(p["symbol"], p["side"], p["realized_pnl"]) for p in everything] == [
                ("AAPL", "long", D("0")),
                ("MSFT", "flat", D("10")),
            ]

    def test_account_summary(self, db, traded):
        with db.transaction(claims=self.claims(traded["user_id"])) as conn:
            summary = accounts_repo.summary(conn, traded["config_id"])
        # cash = 100000 - 1001 (AAPL) - 51 (MSFT buy) + 59 (MSFT sell) = 99007
        assert summary["cash"] == D("99007")
        assert summary["positions_value"] == D("1040")
        assert summary["equity"] == D("100047")
        assert (summary["realized_pnl"], summary["unrealized_pnl"]) == (D("10"), D("40"))
        assert summary["starting_cash"] == D("100000")
        assert summary["updated_at"] is not None

    def test_summary_before_the_first_trade_shows_the_starting_cash(self, db):
        with db.transaction() as conn:
            config = make_config(conn, starting_cash=D("777"))
        with db.transaction(claims=self.claims(config["user_id"])) as conn:
            summary = accounts_repo.summary(conn, config["id"])
        assert (summary["cash"], summary["equity"], summary["updated_at"]) == (
            D("777"),
            D("777"),
            None,
        )

    def test_another_users_rows_are_invisible(self, db, traded):
        stranger = uuid.uuid4()
        with db.transaction(claims=self.claims(stranger)) as conn:
            assert accounts_repo.summary(conn, traded["config_id"]) is None
            assert positions_repo.list_for(conn, config_id=traded["config_id"]) == []
            assert orders_repo.list_page(
                conn,
                config_id=traded["config_id"],
                status=None,
                symbol=None,
                signal_id=None,
                limit=10,
                offset=0,
            ) == ([], 0)
