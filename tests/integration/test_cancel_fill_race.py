"""An order a signal cancels that fills meanwhile: the signal's plan was made from a position that
has moved, so none of its orders is sent (a flatten replacing a resting exit must not sell twice)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from builders import held, make_config, orders_of, signal_row, store_signal
from fake_broker import NOW, FakeBroker

from viewzenix.brokers.base import BrokerFill
from viewzenix.domain.model import Action, OrderStatus, OrderType, Signal
from viewzenix.services.execution import execute_signal

pytestmark = pytest.mark.db
D = Decimal


def run(db, config, broker, signal):
    signal_id = store_signal(db, config, signal)
    return signal_id, execute_signal(db, signal_id, clock=lambda: NOW, brokers=lambda config: broker)


def fill_as_it_is_canceled(broker: FakeBroker) -> None:
    """The resting order fills at the broker just before our cancel reaches it (Alpaca answers
    422 "order is not cancelable"; the fake raises OrderNotCancelable for a filled order)."""
    real_cancel = broker.cancel_order

    def cancel(client_order_id):
        order = broker.orders[client_order_id]
        fill = BrokerFill(
            trade_id="fake-trade-race", qty=order.qty, price=D(110), commission=D(0), filled_at=NOW
        )
        broker.orders[client_order_id] = replace(
            order,
            status=OrderStatus.FILLED,
            filled_qty=order.qty,
            filled_avg_price=D(110),
            filled_at=NOW,
            fills=(fill,),
        )
        return real_cancel(client_order_id)

    broker.cancel_order = cancel  # type: ignore[method-assign]


def test_a_market_exit_is_not_sent_when_the_resting_exit_it_replaces_filled_meanwhile(db):
    config = make_config(db, name="race")
    broker = FakeBroker()
    run(db, config, broker, Signal(ticker="AAPL", action=Action.BUY, quantity=D(10), signal_price=D(100)))
    _, status = run(
        db,
        config,
        broker,
        Signal(ticker="AAPL", action=Action.EXIT, order_type=OrderType.LIMIT, limit_price=D(110)),
    )
    assert status == "executed" and held(db, config) == D(10)  # the limit exit rests
    submits = broker.submits()

    fill_as_it_is_canceled(broker)
    signal_id, status = run(
        db, config, broker, Signal(ticker="AAPL", action=Action.EXIT, signal_price=D(105))
    )

    assert broker.submits() == submits  # the market exit was not sent: it would have sold 10 more
    assert held(db, config) == D(0)  # the resting exit's fill, from the cancel's answer
    [order] = orders_of(db, signal_id)
    assert (order["status"], order["status_code"]) == ("canceled", "position_changed")
    row = signal_row(db, signal_id)
    assert status == "failed" and row["status"] == "failed"
    assert "position changed" in row["outcome_message"]


def test_a_cancel_that_canceled_sends_the_plan(db):
    config = make_config(db, name="no-race")
    broker = FakeBroker()
    run(db, config, broker, Signal(ticker="AAPL", action=Action.BUY, quantity=D(10), signal_price=D(100)))
    run(
        db,
        config,
        broker,
        Signal(ticker="AAPL", action=Action.EXIT, order_type=OrderType.LIMIT, limit_price=D(110)),
    )
    signal_id, status = run(
        db, config, broker, Signal(ticker="AAPL", action=Action.EXIT, signal_price=D(105))
    )
    assert status == "executed" and held(db, config) == D(0)
    [order] = orders_of(db, signal_id)
    assert (order["status"], order["filled_qty"]) == ("filled", D(10))
