"""Specification of reconciliation: our books against the broker's, drift found and repaired.

Against a FakeBroker (the broker's books in memory) here; tests/integration/
test_reconciliation_paper.py does the same against the paper broker's Postgres books.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from builders import add_signal, make_config, trade
from fake_broker import NOW, FakeBroker

from viewzenix.brokers.base import BrokerFill, BrokerOrder
from viewzenix.db import Database
from viewzenix.domain.model import Action, OrderStatus, Signal
from viewzenix.repositories import orders as orders_repo
from viewzenix.services.reconciliation import reconcile

pytestmark = pytest.mark.db
D = Decimal


def buy(ticker: str, qty: str = "10", **fields: Any) -> Signal:
    return Signal(ticker=ticker, action=Action.BUY, quantity=D(qty), signal_price=D("100"), **fields)


def run(db: Database, config: dict[str, Any], broker: FakeBroker, *, repair: bool = False) -> dict[str, Any]:
    [result] = reconcile(
        db, config_id=config["id"], repair=repair, brokers=lambda c: broker, clock=lambda: NOW
    )
    return result


@pytest.fixture()
def traded(db):
    """A config with three filled buys (AAPL, MSFT, TSLA) and a resting limit buy (AMZN)."""
    from viewzenix.domain.model import OrderType

    config = make_config(db, name="fake")
    broker = FakeBroker()
    orders = {t: trade(db, config, buy(t), brokers=lambda c: broker) for t in ("AAPL", "MSFT", "TSLA")}
    resting = buy("AMZN", order_type=OrderType.LIMIT, limit_price=D(90))
    orders["AMZN"] = trade(db, config, resting, brokers=lambda c: broker)
    assert orders["AMZN"]["status"] == "accepted"
    return config, broker, orders


def test_books_that_agree_have_no_drift(db, traded):
    config, broker, _ = traded

    result = run(db, config, broker)

    assert (result["orders_compared"], result["orders_in_drift"], result["drift_rate"]) == (4, 0, 0)
    assert result["positions_compared"] == 3
    assert result["drifts"] == []
    assert result["error"] is None


def corrupt_every_way(
    db: Database, config: dict[str, Any], broker: FakeBroker, orders: dict[str, Any]
) -> None:
    # 1. missing on our side: an order placed at the broker that we never recorded
    fill = BrokerFill(trade_id="outside-1", qty=D(5), price=D(50), commission=D(0), filled_at=NOW)
    broker.orders["outside-order"] = BrokerOrder(
        client_order_id="outside-order",
        broker_order_id="fake-outside",
        status=OrderStatus.FILLED,
        symbol="NVDA",
        side="buy",
        qty=D(5),
        filled_qty=D(5),
        filled_avg_price=D(50),
        submitted_at=NOW,
        filled_at=NOW,
        fills=(fill,),
    )
    # 2. missing at the broker: the broker lost our resting AMZN order
    del broker.orders[orders["AMZN"]["client_order_id"]]
    # 3. status differs: the broker canceled the MSFT order we think filled (0 filled there)
    msft = broker.orders[orders["MSFT"]["client_order_id"]]
    broker.orders[msft.client_order_id] = replace(
        msft, status=OrderStatus.CANCELED, filled_qty=D(0), filled_avg_price=None, fills=()
    )
    # 4. filled quantity differs on our side only, and 5. our TSLA position is off
    with db.transaction() as conn:
        conn.execute("update public.orders set filled_qty = 7 where id = %s", (orders["TSLA"]["id"],))
        conn.execute(
            "update public.positions set qty = 12 where config_id = %s and symbol = 'TSLA'", (config["id"],)
        )


def test_each_kind_of_drift_is_found_and_counted(db, traded):
    config, broker, orders = traded
    corrupt_every_way(db, config, broker, orders)

    result = run(db, config, broker)

    assert result["counts"] == {
        "missing_on_our_side": 1,
        "missing_at_broker": 1,
        "status_differs": 1,
        "filled_qty_differs": 2,  # MSFT (10 vs 0) and TSLA (7 vs 10)
        "position_differs": 3,  # MSFT (10 vs 0), TSLA (12 vs 10), NVDA (0 vs 5)
        "cash_differs": 1,  # the broker refunded MSFT and paid NVDA; we did neither
    }
    assert (result["orders_compared"], result["orders_in_drift"]) == (5, 4)
    assert result["drift_rate"] == D("80.00")
    assert result["repaired"] == 0
    kinds = {(d["kind"], d["key"]) for d in result["drifts"]}
    assert ("missing_at_broker", orders["AMZN"]["client_order_id"]) in kinds
    assert ("position_differs", "TSLA") in kinds


def test_repair_brings_the_drift_to_zero_and_a_second_repair_changes_nothing(db, traded):
    config, broker, orders = traded
    corrupt_every_way(db, config, broker, orders)

    repaired = run(db, config, broker, repair=True)
    after = run(db, config, broker)
    again = run(db, config, broker, repair=True)

    assert repaired["repaired"] > 0
    # Cash is never repaired: the broker refunded MSFT's 10 x 100 when it dropped the fill, our
    # forced state does not unwind the payment; a person must look (NVDA's 250 was adopted).
    cash = [{"kind": "cash_differs", "key": "cash", "ours": "96750", "theirs": "97750"}]
    assert after["drifts"] == cash and after["drift_rate"] == 0
    assert again["drifts"] == cash and again["repaired"] == 0
    assert repaired["counts"]["repair_deferred"] == 0 and repaired["counts"]["repair_refused"] == 0
    with db.transaction() as conn:
        amzn = orders_repo.get(conn, orders["AMZN"]["id"])
        msft = orders_repo.get(conn, orders["MSFT"]["id"])
        nvda = orders_repo.get_by_client_order_id(conn, config["id"], "outside-order")
        msft_events = [e["event_type"] for e in orders_repo.events_for(conn, msft["id"])]
    assert (amzn["status"], amzn["status_code"]) == ("canceled", "missing_at_broker")
    assert (msft["status"], msft["filled_qty"]) == ("canceled", D(0))
    assert "OrderRepaired" in msft_events
    assert (nvda["status"], nvda["filled_qty"]) == ("filled", D(5))


def test_a_filled_order_the_broker_lacks_is_reported_and_never_rewritten(db, traded):
    config, broker, orders = traded
    del broker.orders[orders["AAPL"]["client_order_id"]]  # the broker lost a filled order

    repaired = run(db, config, broker, repair=True)

    assert repaired["counts"]["missing_at_broker"] == 1
    assert repaired["counts"]["repair_refused"] == 1
    with db.transaction() as conn:
        aapl = orders_repo.get(conn, orders["AAPL"]["id"])
    assert (aapl["status"], aapl["filled_qty"]) == ("filled", D(10))
    assert any(d["kind"] == "missing_at_broker" for d in run(db, config, broker)["drifts"])


def test_a_symbol_with_a_signal_in_flight_is_not_repaired_this_time(db, traded):
    config, broker, _ = traded
    with db.transaction() as conn:
        conn.execute(
            "update public.positions set qty = 3 where config_id = %s and symbol = 'TSLA'", (config["id"],)
        )
        add_signal(conn, config, buy("TSLA"))  # an alert for TSLA waiting for the worker

    repaired = run(db, config, broker, repair=True)

    assert repaired["counts"]["position_differs"] == 1
    assert (repaired["repaired"], repaired["counts"]["repair_deferred"]) == (0, 1)
    with db.transaction() as conn:
        qty = conn.execute(
            "select qty from public.positions where config_id = %s and symbol = 'TSLA'", (config["id"],)
        ).fetchone()["qty"]
    assert qty == D(3)


def test_a_recent_pending_new_order_is_not_called_missing(db):
    config = make_config(db, name="fake")
    broker = FakeBroker()
    with db.transaction() as conn:
        conn.execute(
            "insert into public.orders (user_id, config_id, client_order_id, broker, symbol, side, "
            "order_type, time_in_force, purpose, qty, status, created_at) values "
            "(%s, %s, 'in-flight', 'simulated', 'AAPL', 'buy', 'market', 'day', 'entry', 1, "
            "'pending_new', %s)",
            (config["user_id"], config["id"], NOW),
        )

    result = run(db, config, broker)

    assert result["drifts"] == []
    assert result["orders_compared"] == 0


def test_a_broker_that_cannot_be_reached_is_recorded_as_an_error(db, traded):
    config, broker, _ = traded
    broker.down = True

    result = run(db, config, broker)

    assert "BrokerUnavailable" in result["error"]


def test_an_old_pending_new_order_whose_job_is_still_retrying_is_not_closed(db, database_url):
    from builders import enqueue_signal

    config = make_config(db, name="fake")
    broker = FakeBroker()
    signal_id = enqueue_signal(db, database_url, config, buy("AAPL"))  # its job waits to retry
    with db.transaction() as conn:
        conn.execute(
            "insert into public.orders (user_id, config_id, signal_id, client_order_id, broker, symbol, "
            "side, order_type, time_in_force, purpose, qty, status, created_at) values "
            "(%s, %s, %s, 'retrying', 'simulated', 'AAPL', 'buy', 'market', 'day', 'entry', 1, "
            "'pending_new', %s)",
            (config["user_id"], config["id"], signal_id, NOW - timedelta(hours=1)),
        )

    repaired = run(db, config, broker, repair=True)

    assert repaired["counts"]["missing_at_broker"] == 1
    assert (repaired["repaired"], repaired["counts"]["repair_deferred"]) == (0, 1)
    with db.transaction() as conn:
        order = orders_repo.get_by_client_order_id(conn, config["id"], "retrying")
        conn.execute(
            "delete from procrastinate_jobs where id = (select job_id from signals where id = %s)",
            (signal_id,),
        )
    assert order["status"] == "pending_new"
