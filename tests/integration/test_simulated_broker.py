"""Specification of the simulated (paper) broker, against the real Postgres.

The broker is an exchange with its own books (schema ``paper``): tests talk to it through the
broker port (reports, ``get_account``, ``get_positions``) and read its books only where the port
shows nothing (a flat position's realised P&L, ``triggered_at``). Each test opens its own user
and webhook config, so tests never share rows. Prices and money are Decimal; every expected
number is worked out in the test from the fill rules in ``viewzenix.brokers.simulated``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from builders import NOW, make_config
from wire import Wire

from viewzenix.brokers import paper_books as books
from viewzenix.brokers.base import (
    Broker,
    BrokerFill,
    BrokerName,
    BrokerOrder,
    BrokerUnavailable,
    DuplicateOrder,
    OrderNotCancelable,
    OrderNotFound,
    PriceDriven,
)
from viewzenix.brokers.simulated import SimulatedBroker
from viewzenix.db import Database
from viewzenix.domain.engine import OrderPurpose, OrderRequest
from viewzenix.domain.model import (
    OrderSide,
    OrderStatus,
    OrderType,
    PositionState,
    TimeInForce,
    TradingSettings,
)

pytestmark = pytest.mark.db

LATER = NOW + timedelta(minutes=5)
D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture()
def make_broker(db: Database) -> Callable[..., SimulatedBroker]:
    """Return a factory: a broker on a new committed config with these settings, clock NOW."""
    return lambda **settings: SimulatedBroker.for_config(db, make_config(db, **settings), clock=lambda: NOW)


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


def report(broker: SimulatedBroker, client_order_id: str) -> BrokerOrder:
    found = broker.get_order_by_client_order_id(client_order_id)
    assert found is not None
    return found


def statuses(broker: SimulatedBroker, *client_order_ids: str) -> list[OrderStatus]:
    return [report(broker, c).status for c in client_order_ids]


def paper_order(broker: SimulatedBroker, client_order_id: str) -> books.PaperOrder:
    """The exchange's own row (for what no report shows: triggered_at, parent_order_id)."""
    with broker.db.transaction() as conn:
        found = books.get_by_client_order_id(conn, broker.config_id, client_order_id)
    assert found is not None
    return found


def position(broker: SimulatedBroker, symbol: str = "AAPL") -> books.PaperPosition:
    """The exchange's position row, flat ones included (realised P&L, mark, opened_at)."""
    with broker.db.transaction() as conn:
        found = books.get_position(conn, broker.config_id, symbol)
    assert found is not None
    return found


def changes(orders: list[BrokerOrder]) -> list[tuple[str, OrderStatus]]:
    return [(o.client_order_id, o.status) for o in orders]


# --- the port ------------------------------------------------------------------------------


def test_simulated_broker_implements_the_broker_protocol(make_broker):
    broker = make_broker()

    assert isinstance(broker, Broker)
    assert broker.name is BrokerName.SIMULATED


def test_simulated_broker_is_price_driven(make_broker):
    assert isinstance(make_broker(), PriceDriven)


def test_an_unreachable_database_is_broker_unavailable():
    class Unreachable:
        @contextmanager
        def transaction(self, **kwargs: object) -> Iterator[None]:
            raise psycopg.OperationalError("connection refused")
            yield

    broker = SimulatedBroker(Unreachable(), config_id=uuid.uuid4(), settings=TradingSettings())  # type: ignore[arg-type]

    with pytest.raises(BrokerUnavailable, match="connection refused"):
        broker.submit_order(order("m1", BUY, "1"))
    with pytest.raises(BrokerUnavailable):
        broker.get_account()


# --- every call is its own transaction -----------------------------------------------------


class TestOwnTransactions:
    def test_a_submit_is_committed_and_visible_from_another_connection_at_once(self, db, make_broker):
        broker = make_broker()

        broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))

        with db.transaction() as other:
            seen = other.execute(
                "select status from paper.orders where config_id = %s and client_order_id = %s",
                (broker.config_id, "test-l1"),
            ).fetchone()
        assert seen == {"status": "accepted"}

    def test_an_opening_market_order_sends_its_commit_with_its_fill(self, db, make_broker, monkeypatch):
        # Nothing can follow the fill of an order placed in this call without legs, in an account
        # the call locked for its buying power: the COMMIT goes in the fill's round trip.
        broker = make_broker()
        broker.submit_order(order("m0", BUY, "1"))  # the AAPL position row exists now
        wire = Wire(monkeypatch)

        filled = broker.submit_order(order("m1", BUY, "10"))

        assert [[sql.split()[0] for sql in trip] for trip in wire.trips] == [
            ["begin", "set", "select"],  # the symbol's position, locked
            ["insert", "select", "select"],  # the account: opened if new, locked, read
            ["insert"],  # the order
            ["with", "commit"],  # its fill (position, cash, fill row, order) and the COMMIT
        ]
        assert filled.status is OrderStatus.FILLED
        with db.transaction() as other:  # committed: another connection sees it at once
            seen = other.execute(
                "select o.status, a.cash from paper.orders o join paper.accounts a using (config_id)"
                " where o.config_id = %s and o.client_order_id = %s",
                (broker.config_id, "test-m1"),
            ).fetchone()
        assert seen == {"status": "filled", "cash": D("98900")}  # 100000 - 11 * 100

    def test_a_callers_rollback_does_not_undo_what_the_exchange_did(self, db, make_broker):
        broker = make_broker()

        with pytest.raises(RuntimeError), db.transaction():
            broker.submit_order(order("m1", BUY, "10"))
            raise RuntimeError("the caller fails after the broker answered")

        assert report(broker, "test-m1").status is OrderStatus.FILLED
        assert broker.get_account().cash == D("99000")

    def test_a_refused_submit_leaves_nothing_behind(self, db, make_broker):
        broker = make_broker()
        broker.submit_order(order("m1", BUY, "10"))

        with pytest.raises(DuplicateOrder):
            broker.submit_order(order("m1", SELL, "10", symbol="MSFT"))

        with db.transaction() as conn:
            assert books.get_position(conn, broker.config_id, "MSFT") is None
        assert broker.list_open_orders() == []

    def test_process_price_marks_the_position_even_without_a_fill(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("m1", BUY, "10"))

        assert broker.process_price("AAPL", D("104"), LATER) == []

        assert position(broker).last_price == D("104")
        assert broker.get_account().equity == D("100040")  # 99000 + 10 * 104


class TestConcurrency:
    def test_parallel_fills_in_different_symbols_of_one_account_all_reach_cash(self, make_broker):
        broker = make_broker(commission_fixed=D("1"))
        symbols = [f"S{i}" for i in range(8)]
        errors: list[BaseException] = []

        def buy(symbol: str) -> None:
            try:
                for n in range(3):
                    broker.submit_order(order(f"{symbol}-{n}", BUY, "1", price="10", symbol=symbol))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=buy, args=(s,)) for s in symbols]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        # 24 fills of 1 share at 10, each paying 1 of commission
        assert broker.get_account().cash == D("100000") - 24 * D("11")
        assert broker.get_positions() == [PositionState(s, D("3"), D("10")) for s in symbols]

    def test_two_opening_orders_at_once_cannot_both_spend_the_same_buying_power(
        self, make_broker, monkeypatch
    ):
        # Each buy alone fits (600 of 1,000); together they do not. A is held between its
        # buying-power check and its insert; B, sent meanwhile for another symbol, must wait for
        # A's call to end and then see A's fill, as Alpaca checks one account's orders in turn.
        broker = make_broker(starting_cash=D("1000"))
        assert broker.get_account().cash == D("1000")  # the account row exists, committed
        reached, release = threading.Event(), threading.Event()
        insert = books.insert_order

        def held_insert(conn, request, **kwargs):  # type: ignore[no-untyped-def]
            if request.symbol == "AAA":
                reached.set()
                assert release.wait(30)
            return insert(conn, request, **kwargs)

        monkeypatch.setattr(books, "insert_order", held_insert)
        results: dict[str, BrokerOrder] = {}

        def buy(symbol: str) -> None:
            results[symbol] = broker.submit_order(order(symbol, BUY, "6", price="100", symbol=symbol))

        first = threading.Thread(target=buy, args=("AAA",))
        first.start()
        assert reached.wait(30)
        second = threading.Thread(target=buy, args=("BBB",))
        second.start()
        second.join(0.5)
        waited = second.is_alive()  # still waiting for A's account lock
        release.set()
        first.join(30)
        second.join(30)

        assert waited
        assert results["AAA"].status is OrderStatus.FILLED
        assert (results["BBB"].status, results["BBB"].status_code) == (
            OrderStatus.REJECTED,
            "insufficient_buying_power",
        )
        assert broker.get_account().cash == D("400")

    def test_parallel_prices_for_one_symbol_fill_a_resting_order_once(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95", tif=TimeInForce.GTC))
        results: list[list[Any]] = []
        start = threading.Barrier(4)

        def price() -> None:
            start.wait()
            results.append(broker.process_price("AAPL", D("94"), LATER))

        threads = [threading.Thread(target=price) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(len(r) for r in results) == [0, 0, 0, 1]
        assert len(report(broker, "test-l1").fills) == 1
        assert broker.get_account().cash == D("99060")  # 100000 - 10 * 94


# --- market orders -------------------------------------------------------------------------


class TestMarketOrders:
    def test_buy_fills_at_once_at_the_reference_price_plus_slippage(self, make_broker):
        broker = make_broker(slippage_bps=D("10"))

        result = broker.submit_order(order("m1", BUY, "10"))

        assert result.status is OrderStatus.FILLED
        assert result.filled_qty == D("10")
        assert result.filled_avg_price == D("100.1")  # 100 * (1 + 10/10000)
        assert result.broker_order_id.startswith("sim-")

    def test_sell_fills_at_the_reference_price_minus_slippage(self, make_broker):
        broker = make_broker(slippage_bps=D("10"))

        result = broker.submit_order(order("m1", SELL, "10"))

        assert result.filled_avg_price == D("99.9")

    def test_fill_pays_commission_from_cash_and_marks_equity_at_the_market_price(self, make_broker):
        broker = make_broker(
            starting_cash=D("100000"),
            slippage_bps=D("10"),
            commission_rate=D("0.001"),
            commission_fixed=D("1"),
        )

        result = broker.submit_order(order("m1", BUY, "10"))

        # commission = 10 * 100.1 * 0.001 + 1 = 2.001; cash = 100000 - 1001 - 2.001
        account = broker.get_account()
        assert account.cash == D("98996.999")
        # equity = cash + 10 * 100 (the mark is the market price, not the slipped fill)
        assert account.equity == D("99996.999")
        assert result.fills == (BrokerFill("test-m1-1", D("10"), D("100.1"), D("2.001"), NOW),)

    def test_sell_credits_cash_less_commission(self, make_broker):
        broker = make_broker(commission_fixed=D("2"))

        broker.submit_order(order("m1", SELL, "10"))

        assert broker.get_account().cash == D("100998")  # 100000 + 1000 - 2

    def test_filled_order_records_its_life_cycle(self, make_broker):
        broker = make_broker()

        result = broker.submit_order(order("m1", BUY, "10"))

        assert (result.submitted_at, result.filled_at, result.canceled_at) == (NOW, NOW, None)
        assert (result.side, result.symbol, result.qty) == ("buy", "AAPL", D("10"))
        stored = paper_order(broker, "test-m1")
        assert (stored.status, stored.filled_avg_price, stored.triggered_at) == (
            OrderStatus.FILLED,
            D("100"),
            None,
        )
        assert report(broker, "test-m1") == result

    def test_an_order_missing_a_price_its_type_needs_is_rejected(self, make_broker):
        broker = make_broker()

        result = broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT))

        assert (result.status, result.status_code) == (OrderStatus.REJECTED, "invalid_order")
        assert "limit_price" in result.status_message

    def test_without_a_reference_price_is_rejected_no_market_price(self, make_broker):
        broker = make_broker()

        result = broker.submit_order(order("m1", BUY, "10", price=None))

        assert result.status is OrderStatus.REJECTED
        assert result.status_code == "no_market_price"
        assert "no price for this symbol" in result.status_message
        assert "price" in result.status_message
        assert (result.filled_qty, result.fills, result.filled_at) == (D("0"), (), None)
        assert broker.get_account().cash == D("100000")


# --- the paper account and positions -------------------------------------------------------


class TestPaperAccountAndPositions:
    def test_account_opens_with_the_configs_starting_cash_on_first_use(self, make_broker):
        broker = make_broker(starting_cash=D("2500"))

        account = broker.get_account()

        assert (account.cash, account.equity) == (D("2500"), D("2500"))

    def test_position_opens_with_signed_qty_average_price_and_opened_at(self, make_broker):
        broker = make_broker()

        broker.submit_order(order("m1", SELL, "3", price="50"))

        held = position(broker)
        assert (held.qty, held.avg_entry_price, held.last_price) == (D("-3"), D("50"), D("50"))
        assert held.opened_at == NOW
        assert broker.get_positions() == [PositionState("AAPL", D("-3"), D("50"))]

    def test_adding_to_a_long_averages_the_entry_price(self, make_broker):
        broker = make_broker()

        broker.submit_order(order("m1", BUY, "10", price="100"))
        broker.submit_order(order("m2", BUY, "10", price="110"))

        assert broker.get_positions() == [PositionState("AAPL", D("20"), D("105"))]

    def test_selling_part_of_a_long_realises_pnl_on_the_part_sold(self, make_broker):
        broker = make_broker()

        broker.submit_order(order("m1", BUY, "10", price="100"))
        broker.submit_order(order("m2", SELL, "4", price="110"))

        held = position(broker)
        assert (held.qty, held.avg_entry_price, held.realized_pnl) == (D("6"), D("100"), D("40"))

    def test_covering_a_short_realises_the_mirrored_pnl_and_keeps_the_flat_row(self, make_broker):
        broker = make_broker()

        broker.submit_order(order("m1", SELL, "10", price="100"))
        broker.submit_order(order("m2", BUY, "10", price="90"))

        held = position(broker)
        assert (held.qty, held.avg_entry_price, held.realized_pnl) == (D("0"), D("0"), D("100"))
        assert held.opened_at is None
        assert broker.get_positions() == []
        account = broker.get_account()
        assert (account.cash, account.equity) == (D("100100"), D("100100"))

    def test_a_losing_short_realises_a_loss(self, make_broker):
        broker = make_broker()

        broker.submit_order(order("m1", SELL, "10", price="100"))
        broker.submit_order(order("m2", BUY, "10", price="104"))

        assert position(broker).realized_pnl == D("-40")

    def test_selling_through_zero_flips_to_a_short_opened_at_the_fill_price(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("m1", BUY, "10", price="100"))
        broker.clock = lambda: LATER

        broker.submit_order(order("m2", SELL, "15", price="110"))

        held = position(broker)
        assert (held.qty, held.avg_entry_price, held.realized_pnl) == (D("-5"), D("110"), D("100"))
        assert held.opened_at == LATER

    def test_equity_counts_shorts_with_their_sign_at_the_latest_price(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("m1", SELL, "10", price="100"))

        broker.process_price("AAPL", D("105"), LATER)

        account = broker.get_account()
        assert account.cash == D("101000")
        assert account.equity == D("99950")  # 101000 + (-10 * 105)


# --- limit, stop, stop_limit and trailing_stop orders ---------------------------------------


class TestRestingOrders:
    def test_marketable_buy_limit_fills_at_the_price_not_the_limit(self, make_broker):
        broker = make_broker()

        result = broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="105"))

        assert (result.status, result.filled_avg_price) == (OrderStatus.FILLED, D("100"))

    def test_slipped_limit_fill_is_capped_at_the_limit(self, make_broker):
        broker = make_broker(slippage_bps=D("100"))

        result = broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="100.5"))

        assert result.filled_avg_price == D("100.5")  # 100 * 1.01 = 101, capped at 100.5

    def test_buy_limit_below_the_price_rests_until_a_later_price_crosses_it(self, make_broker):
        broker = make_broker()

        resting = broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))
        assert resting.status is OrderStatus.ACCEPTED
        assert broker.process_price("AAPL", D("96"), LATER) == []

        changed = broker.process_price("AAPL", D("94"), LATER)

        assert [(o.client_order_id, o.status, o.filled_avg_price) for o in changed] == [
            ("test-l1", OrderStatus.FILLED, D("94"))
        ]
        [filled] = changed
        assert (filled.submitted_at, filled.filled_at) == (NOW, LATER)
        assert filled.fills == (BrokerFill("test-l1-1", D("10"), D("94"), D("0"), LATER),)
        assert broker.get_positions() == [PositionState("AAPL", D("10"), D("94"))]

    def test_sell_limit_rests_until_the_price_rises_to_it(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("l1", SELL, "5", OrderType.LIMIT, limit_price="110"))

        assert broker.process_price("AAPL", D("109.99"), LATER) == []
        [filled] = broker.process_price("AAPL", D("110"), LATER)

        assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, D("110"))

    def test_a_price_for_another_symbol_leaves_resting_orders_alone(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))

        assert broker.process_price("MSFT", D("1"), LATER) == []
        assert report(broker, "test-l1").status is OrderStatus.ACCEPTED

    def test_day_order_expires_when_a_price_arrives_on_a_later_new_york_date(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("day", BUY, "10", OrderType.LIMIT, limit_price="95"))
        broker.submit_order(order("gtc", BUY, "10", OrderType.LIMIT, limit_price="90", tif=TimeInForce.GTC))

        changed = broker.process_price("AAPL", D("99"), NOW + timedelta(days=1))

        assert changes(changed) == [("test-day", OrderStatus.EXPIRED)]
        assert changed[0].status_code == "day_order_expired"
        assert report(broker, "test-gtc").status is OrderStatus.ACCEPTED

    def test_ioc_limit_that_cannot_fill_at_once_is_canceled(self, make_broker):
        broker = make_broker()

        result = broker.submit_order(
            order("ioc", BUY, "10", OrderType.LIMIT, limit_price="95", tif=TimeInForce.IOC)
        )

        assert (result.status, result.status_code) == (OrderStatus.CANCELED, "not_marketable")
        assert result.canceled_at == NOW

    def test_limit_without_a_reference_price_is_checked_against_the_last_price(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("m1", BUY, "1", price="100"))

        result = broker.submit_order(order("l1", SELL, "1", OrderType.LIMIT, price=None, limit_price="99"))

        assert (result.status, result.filled_avg_price) == (OrderStatus.FILLED, D("100"))

    def test_sell_stop_triggers_when_the_price_falls_to_it_and_fills_at_that_price(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("m1", BUY, "10"))
        broker.submit_order(order("s1", SELL, "10", OrderType.STOP, stop_price="95"))

        assert broker.process_price("AAPL", D("95.01"), LATER) == []
        [filled] = broker.process_price("AAPL", D("93"), LATER)  # gapped through the stop

        assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, D("93"))
        assert position(broker).realized_pnl == D("-70")

    def test_buy_stop_above_the_price_rests_then_triggers_with_slippage(self, make_broker):
        broker = make_broker(slippage_bps=D("50"))
        resting = broker.submit_order(order("s1", BUY, "10", OrderType.STOP, stop_price="105"))
        assert resting.status is OrderStatus.ACCEPTED

        [filled] = broker.process_price("AAPL", D("106"), LATER)

        assert filled.filled_avg_price == D("106.53")  # 106 * 1.005

    def test_stop_limit_triggers_then_waits_for_its_limit(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("sl", BUY, "10", OrderType.STOP_LIMIT, stop_price="105", limit_price="106"))
        assert paper_order(broker, "test-sl").triggered_at is None

        assert broker.process_price("AAPL", D("107"), LATER) == []  # triggered above the limit
        stored = paper_order(broker, "test-sl")
        assert (stored.status, stored.triggered_at) == (OrderStatus.ACCEPTED, LATER)
        [filled] = broker.process_price("AAPL", D("104.5"), LATER + timedelta(minutes=1))

        assert filled.filled_avg_price == D("104.5")  # below the stop: a limit now
        assert paper_order(broker, "test-sl").triggered_at == LATER  # the first trigger stays

    def test_trailing_stop_follows_the_high_and_fills_on_the_pullback(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("m1", BUY, "10"))
        placed = broker.submit_order(
            order("ts", SELL, "10", OrderType.TRAILING_STOP, tif=TimeInForce.GTC, trail_price="5")
        )
        assert placed.stop_price == D("95")

        [moved] = broker.process_price("AAPL", D("110"), LATER)
        assert (moved.status, moved.stop_price) == (OrderStatus.ACCEPTED, D("105"))
        assert broker.process_price("AAPL", D("108"), LATER) == []  # never moves back
        assert report(broker, "test-ts").stop_price == D("105")
        [filled] = broker.process_price("AAPL", D("104"), LATER)

        assert filled.filled_avg_price == D("104")
        assert position(broker).realized_pnl == D("40")

    def test_trailing_stop_by_percent(self, make_broker):
        broker = make_broker()
        placed = broker.submit_order(
            order("ts", BUY, "1", OrderType.TRAILING_STOP, price="200", trail_percent="10")
        )
        assert placed.stop_price == D("220")

        broker.process_price("AAPL", D("150"), LATER)

        assert report(broker, "test-ts").stop_price == D("165")


# --- take-profit / stop-loss legs ----------------------------------------------------------


def bracket(broker: SimulatedBroker, entry: OrderRequest, take_profit: str = "110") -> None:
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
            limit_price=take_profit,
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
    def test_legs_are_held_until_the_parent_fills_then_rest(self, make_broker):
        broker = make_broker()
        bracket(broker, order("en", BUY, "10", OrderType.LIMIT, limit_price="95"))
        assert statuses(broker, "test-tp", "test-sl") == [OrderStatus.HELD, OrderStatus.HELD]

        broker.process_price("AAPL", D("94"), LATER)

        assert statuses(broker, "test-en", "test-tp", "test-sl") == [
            OrderStatus.FILLED,
            OrderStatus.ACCEPTED,
            OrderStatus.ACCEPTED,
        ]
        assert report(broker, "test-tp").parent_client_order_id == "test-en"
        assert paper_order(broker, "test-tp").parent_order_id == paper_order(broker, "test-en").id
        assert report(broker, "test-sl").status_code is None

    def test_legs_of_a_filled_parent_rest_at_once(self, make_broker):
        broker = make_broker()

        bracket(broker, order("en", BUY, "10"))

        assert statuses(broker, "test-tp", "test-sl") == [OrderStatus.ACCEPTED, OrderStatus.ACCEPTED]

    def test_take_profit_fill_cancels_the_stop_loss_oco(self, make_broker):
        broker = make_broker()
        bracket(broker, order("en", BUY, "10"))

        broker.process_price("AAPL", D("111"), LATER)

        assert report(broker, "test-tp").status is OrderStatus.FILLED
        stop = report(broker, "test-sl")
        assert (stop.status, stop.status_code, stop.canceled_at) == (OrderStatus.CANCELED, "oco", LATER)
        held = position(broker)
        assert (held.qty, held.realized_pnl) == (D("0"), D("110"))  # (111 - 100) * 10

    def test_stop_loss_fill_cancels_the_take_profit_oco(self, make_broker):
        broker = make_broker()
        bracket(broker, order("en", BUY, "10"))

        broker.process_price("AAPL", D("89"), LATER)

        assert statuses(broker, "test-sl", "test-tp") == [OrderStatus.FILLED, OrderStatus.CANCELED]
        assert position(broker).realized_pnl == D("-110")

    def test_canceling_the_parent_cancels_its_waiting_legs(self, make_broker):
        broker = make_broker()
        bracket(broker, order("en", BUY, "10", OrderType.LIMIT, limit_price="95"))

        broker.cancel_order("test-en")

        assert statuses(broker, "test-en", "test-tp", "test-sl") == [OrderStatus.CANCELED] * 3
        assert report(broker, "test-tp").status_code == "parent_not_filled"

    def test_an_expiring_parent_cancels_its_waiting_legs(self, make_broker):
        broker = make_broker()
        bracket(broker, order("en", BUY, "10", OrderType.LIMIT, limit_price="95"))

        changed = broker.process_price("AAPL", D("99"), NOW + timedelta(days=1))

        assert changes(changed) == [
            ("test-en", OrderStatus.EXPIRED),
            ("test-tp", OrderStatus.CANCELED),
            ("test-sl", OrderStatus.CANCELED),
        ]

    def test_a_leg_of_an_unknown_parent_is_rejected(self, make_broker):
        broker = make_broker()

        result = broker.submit_order(
            order("tp", SELL, "1", OrderType.LIMIT, limit_price="110", parent_client_order_id="test-nope")
        )

        assert (result.status, result.status_code) == (OrderStatus.REJECTED, "parent_not_found")

    def test_a_leg_for_another_symbol_than_its_parent_is_rejected(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("en", BUY, "1", OrderType.LIMIT, limit_price="95"))

        result = broker.submit_order(
            order(
                "tp",
                SELL,
                "1",
                OrderType.LIMIT,
                symbol="MSFT",
                limit_price="110",
                parent_client_order_id="test-en",
            )
        )

        assert (result.status, result.status_code) == (OrderStatus.REJECTED, "invalid_order")
        assert "AAPL" in result.status_message

    def test_a_leg_of_a_canceled_parent_is_canceled(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("en", BUY, "1", OrderType.LIMIT, limit_price="95"))
        broker.cancel_order("test-en")

        result = broker.submit_order(
            order("tp", SELL, "1", OrderType.LIMIT, limit_price="110", parent_client_order_id="test-en")
        )

        assert (result.status, result.status_code) == (OrderStatus.CANCELED, "parent_not_filled")
        assert result.parent_client_order_id == "test-en"


class TestProcessPriceReports:
    def test_process_price_reports_the_fill_and_the_legs_it_activated(self, make_broker):
        broker = make_broker()
        bracket(broker, order("en", BUY, "10", OrderType.LIMIT, limit_price="95"))

        changed = broker.process_price("AAPL", D("94"), LATER)

        assert changes(changed) == [
            ("test-en", OrderStatus.FILLED),
            ("test-tp", OrderStatus.ACCEPTED),
            ("test-sl", OrderStatus.ACCEPTED),
        ]
        assert [o.parent_client_order_id for o in changed] == [None, "test-en", "test-en"]

    def test_process_price_reports_a_leg_fill_and_the_oco_sibling_it_canceled(self, make_broker):
        broker = make_broker()
        bracket(broker, order("en", BUY, "10"))

        changed = broker.process_price("AAPL", D("111"), LATER)

        assert changes(changed) == [("test-tp", OrderStatus.FILLED), ("test-sl", OrderStatus.CANCELED)]
        assert changed[1].status_code == "oco"

    def test_one_price_can_fill_the_parent_then_a_leg_and_cancel_the_other(self, make_broker):
        broker = make_broker()
        bracket(broker, order("en", BUY, "10", OrderType.STOP, price=None, stop_price="105"), "105")

        changed = broker.process_price("AAPL", D("106"), LATER)

        assert changes(changed) == [
            ("test-en", OrderStatus.FILLED),
            ("test-tp", OrderStatus.FILLED),
            ("test-sl", OrderStatus.CANCELED),
        ]
        assert [o.filled_avg_price for o in changed] == [D("106"), D("106"), None]
        assert broker.get_positions() == []

    def test_reports_carry_every_fill_of_the_order(self, make_broker):
        broker = make_broker(commission_fixed=D("1"))
        broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))

        [filled] = broker.process_price("AAPL", D("94"), LATER)

        expected = (BrokerFill("test-l1-1", D("10"), D("94"), D("1"), LATER),)
        assert filled.fills == expected
        assert report(broker, "test-l1").fills == expected
        with broker.db.transaction() as conn:
            assert [f.trade_id for f in books.fills_for(conn, [paper_order(broker, "test-l1").id])] == [
                "test-l1-1"
            ]


# --- client_order_id, cancel, look-up ------------------------------------------------------


class TestClientOrderIds:
    def test_second_submit_with_the_same_client_order_id_is_refused_and_fills_once(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("m1", BUY, "10"))

        with pytest.raises(DuplicateOrder, match="client_order_id must be unique") as refused:
            broker.submit_order(order("m1", BUY, "10"))

        assert refused.value.client_order_id == "test-m1"
        assert len(report(broker, "test-m1").fills) == 1
        assert broker.get_positions() == [PositionState("AAPL", D("10"), D("100"))]
        assert broker.get_account().cash == D("99000")

    def test_a_client_order_id_is_refused_even_after_its_order_was_canceled(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))
        broker.cancel_order("test-l1")

        with pytest.raises(DuplicateOrder):
            broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))

        assert report(broker, "test-l1").status is OrderStatus.CANCELED

    def test_the_same_client_order_id_in_another_config_is_a_different_order(self, make_broker):
        first, second = make_broker(), make_broker()

        first.submit_order(order("m1", BUY, "10"))
        result = second.submit_order(order("m1", BUY, "10"))

        assert result.status is OrderStatus.FILLED


class TestCancelAndLookUp:
    def test_cancel_a_resting_order(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))

        result = broker.cancel_order("test-l1")

        assert (result.status, result.status_code, result.canceled_at) == (
            OrderStatus.CANCELED,
            "canceled",
            NOW,
        )
        assert broker.process_price("AAPL", D("90"), LATER) == []
        assert broker.list_open_orders() == []

    def test_canceling_twice_returns_the_canceled_order_unchanged(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("l1", BUY, "10", OrderType.LIMIT, limit_price="95"))
        first = broker.cancel_order("test-l1")
        broker.clock = lambda: LATER

        assert broker.cancel_order("test-l1") == first

    def test_a_filled_order_is_not_cancelable(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("m1", BUY, "10"))

        with pytest.raises(OrderNotCancelable) as refused:
            broker.cancel_order("test-m1")

        assert refused.value.client_order_id == "test-m1"

    def test_an_unknown_order_is_not_found(self, make_broker):
        broker = make_broker()

        with pytest.raises(OrderNotFound):
            broker.cancel_order("nope")
        assert broker.get_order_by_client_order_id("nope") is None

    def test_get_order_by_client_order_id_reports_the_order(self, make_broker):
        broker = make_broker()
        broker.submit_order(order("m1", BUY, "10"))

        found = broker.get_order_by_client_order_id("test-m1")

        assert (found.status, found.filled_qty, found.filled_avg_price) == (
            OrderStatus.FILLED,
            D("10"),
            D("100"),
        )

    def test_list_open_orders_lists_held_and_resting_orders_oldest_first(self, make_broker):
        broker = make_broker()
        bracket(broker, order("en", BUY, "10", OrderType.LIMIT, limit_price="95"))
        broker.submit_order(order("m1", BUY, "1", symbol="MSFT"))  # filled: not open
        broker.submit_order(order("l2", BUY, "1", OrderType.LIMIT, limit_price="50", symbol="MSFT"))

        listed = broker.list_open_orders("AAPL")

        assert [(o.client_order_id, o.status, o.parent_client_order_id) for o in listed] == [
            ("test-en", OrderStatus.ACCEPTED, None),
            ("test-tp", OrderStatus.HELD, "test-en"),
            ("test-sl", OrderStatus.HELD, "test-en"),
        ]
        assert [o.client_order_id for o in broker.list_open_orders()] == [
            "test-en",
            "test-tp",
            "test-sl",
            "test-l2",
        ]


# --- isolation -----------------------------------------------------------------------------


def test_two_configs_keep_separate_accounts_and_positions(make_broker):
    first = make_broker(starting_cash=D("1000"))
    second = make_broker(starting_cash=D("5000"))

    first.submit_order(order("m1", BUY, "5", price="10"))
    second.submit_order(order("m1", SELL, "2", price="10"))

    assert first.get_account().cash == D("950")
    assert second.get_account().cash == D("5020")
    assert first.get_positions() == [PositionState("AAPL", D("5"), D("10"))]
    assert second.get_positions() == [PositionState("AAPL", D("-2"), D("10"))]


def test_the_paper_books_are_closed_to_the_api_roles(db, make_broker):
    broker = make_broker()
    broker.submit_order(order("m1", BUY, "1"))
    claims = {"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated"}

    for table in ("accounts", "orders", "fills", "positions"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction(claims=claims) as conn:
            conn.execute(f"select * from paper.{table}")


def test_a_fill_on_an_account_without_a_row_opens_it_and_pays_the_cash(make_broker, db):
    # A fill's position, cash, fill and order writes go out together; when the cash update finds
    # no account row (here: removed after the position was opened), the account is opened with
    # its starting cash and the fill's cash is added then: nothing is lost.
    broker = make_broker(starting_cash=D("100000"))
    broker.submit_order(order("open", BUY, "10"))
    with db.transaction() as conn:
        conn.execute("delete from paper.accounts where config_id = %s", (broker.config_id,))

    report = broker.submit_order(order("close", SELL, "10", purpose=OrderPurpose.EXIT))

    assert report.status is OrderStatus.FILLED
    assert broker.get_account().cash == D("100000") + D("10") * report.filled_avg_price
    assert broker.get_positions() == []


def _price_while_a_limit_is_placed_under_the_lock(db, broker, leg: str) -> BrokerOrder:  # type: ignore[no-untyped-def]
    """Hold MSFT's position lock (creating the row if missing) and place a resting buy limit at 101
    in a transaction not yet committed; meanwhile a price of 100 arrives and must wait for the
    lock. Return the one report the price changed, once our transaction has committed."""
    limit = order(leg, BUY, "10", OrderType.LIMIT, price=None, limit_price="101", symbol="MSFT")
    results: list[list[BrokerOrder]] = []
    with db.transaction() as conn:
        books.lock_position(conn, broker.config_id, "MSFT")
        books.insert_order(
            conn,
            limit,
            config_id=broker.config_id,
            broker_order_id=f"sim-{leg}",
            parent_order_id=None,
            status=OrderStatus.ACCEPTED,
            submitted_at=NOW,
        )
        pricing = threading.Thread(
            target=lambda: results.append(broker.process_price("MSFT", D("100"), LATER))
        )
        pricing.start()
        pricing.join(0.5)
        assert pricing.is_alive()  # waiting for our lock
    pricing.join(10)
    [worked] = results[0]
    return worked


def test_a_price_waiting_for_a_first_orders_transaction_works_that_order(make_broker, db):
    # The symbol has no position row yet; another transaction creates it and places a resting
    # buy limit, and has not committed. The price's mark finds no row and waits for the lock:
    # once it holds it, the order (committed meanwhile) must be read and worked.
    broker = make_broker(starting_cash=D("100000"))
    worked = _price_while_a_limit_is_placed_under_the_lock(db, broker, "first-limit")
    assert (worked.client_order_id, worked.status, worked.filled_avg_price) == (
        "test-first-limit",
        OrderStatus.FILLED,
        D("100"),
    )


def test_a_price_waiting_for_an_order_placed_under_the_positions_lock_works_that_order(make_broker, db):
    # The usual case: the symbol's position row exists, so the price is its mark alone when
    # nothing rests. Another transaction holds the row's lock and places a resting buy limit: the
    # mark waits, and the open-orders check that follows it (a snapshot taken once the mark holds
    # the lock) must see the order and take the full path that works it.
    broker = make_broker(starting_cash=D("100000"))
    broker.process_price("MSFT", D("105"), NOW)  # creates the row: nothing rests yet
    worked = _price_while_a_limit_is_placed_under_the_lock(db, broker, "waiting-limit")
    assert (worked.client_order_id, worked.status, worked.filled_avg_price) == (
        "test-waiting-limit",
        OrderStatus.FILLED,
        D("100"),
    )


def test_a_price_with_nothing_resting_is_the_mark_alone_committed_without_waiting_for_the_flush(
    make_broker, db, monkeypatch
):
    broker = make_broker(starting_cash=D("100000"))
    broker.process_price("MSFT", D("105"), NOW)  # the symbol's first price: creates the row
    asked: list[bool] = []
    transactions: list[str] = []
    mark_alone, transaction = books.mark_alone, type(broker)._transaction

    def spying_mark(*args, unflushed, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(unflushed)
        return mark_alone(*args, unflushed=unflushed, **kwargs)

    def spying_transaction(self):  # type: ignore[no-untyped-def]
        transactions.append("opened")
        return transaction(self)

    monkeypatch.setattr(books, "mark_alone", spying_mark)
    monkeypatch.setattr(type(broker), "_transaction", spying_transaction)
    assert broker.process_price("MSFT", D("106"), LATER) == []
    assert (asked, transactions) == ([True], [])  # the mark alone, unflushed; no transaction
    with db.transaction() as conn:
        position = books.get_position(conn, broker.config_id, "MSFT")
    assert position is not None and (position.last_price, position.last_price_at) == (D("106"), LATER)
    # The setting its commit uses: off for the paper exchange, the server's when asked to wait.
    for unflushed, expected in ((True, "off"), (False, "on")):
        with db.statement() as conn:
            row = conn.execute(
                books.MARK_ALONE,
                {
                    "config_id": broker.config_id,
                    "symbol": "MSFT",
                    "last_price": D("107"),
                    "at": LATER,
                    "unflushed": unflushed,
                },
            ).fetchone()
        assert row["commit_mode"] == expected
