"""Reconciliation against the paper broker's own books (schema ``paper``), corrupted in every way.

The paper broker keeps its books apart from ours, like an exchange: here a test changes one side
or the other with SQL, as a lost message, a manual order at the broker or a bug would.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from builders import NOW, make_config, trade

from viewzenix.brokers.simulated import SimulatedBroker
from viewzenix.db import Database
from viewzenix.domain.engine import OrderPurpose, OrderRequest
from viewzenix.domain.model import Action, OrderSide, OrderType, Signal, TimeInForce
from viewzenix.repositories import positions as positions_repo
from viewzenix.services.reconciliation import reconcile

pytestmark = pytest.mark.db
D = Decimal


def buy(db: Database, config: dict[str, Any], ticker: str, **fields: Any) -> dict[str, Any]:
    """A buy of 10 ``ticker`` (signal price 100) run with the paper broker; return its one order."""
    signal = Signal(ticker=ticker, action=Action.BUY, quantity=D(10), signal_price=D(100), **fields)
    return trade(db, config, signal, expect="executed")


def run(db: Database, config: dict[str, Any], *, repair: bool = False) -> dict[str, Any]:
    [result] = reconcile(db, config_id=config["id"], repair=repair, clock=lambda: NOW)
    return result


def test_paper_books_corrupted_every_way_are_found_repaired_and_stay_repaired(db):
    config = make_config(db)
    orders = {t: buy(db, config, t) for t in ("AAPL", "MSFT", "TSLA")}
    orders["AMZN"] = buy(db, config, "AMZN", order_type=OrderType.LIMIT, limit_price=D(90))  # rests
    assert run(db, config)["drifts"] == []

    # missing on our side: an order placed at the broker directly (e.g. in its own app)
    broker = SimulatedBroker.for_config(db, config, clock=lambda: NOW)
    broker.submit_order(
        OrderRequest(
            client_order_id="manual-1",
            symbol="NVDA",
            side=OrderSide.BUY,
            qty=D(2),
            order_type=OrderType.MARKET,
            time_in_force=TimeInForce.DAY,
            purpose=OrderPurpose.ENTRY,
            reference_price=D(50),
        )
    )
    with db.transaction() as conn:
        # missing at the broker: the exchange lost our resting AMZN order
        conn.execute(
            "delete from paper.orders where config_id = %s and client_order_id = %s",
            (config["id"], orders["AMZN"]["client_order_id"]),
        )
        # status differs: the exchange says MSFT was canceled unfilled
        conn.execute(
            "delete from paper.fills where order_id = (select id from paper.orders "
            "where config_id = %s and client_order_id = %s)",
            (config["id"], orders["MSFT"]["client_order_id"]),
        )
        conn.execute(
            "update paper.orders set status = 'canceled', filled_qty = 0, filled_avg_price = null "
            "where config_id = %s and client_order_id = %s",
            (config["id"], orders["MSFT"]["client_order_id"]),
        )
        conn.execute(
            "update paper.positions set qty = 0 where config_id = %s and symbol = 'MSFT'", (config["id"],)
        )
        # filled quantity differs, and position differs, on our side
        conn.execute("update public.orders set filled_qty = 4 where id = %s", (orders["TSLA"]["id"],))
        conn.execute(
            "update public.positions set qty = 7 where config_id = %s and symbol = 'TSLA'", (config["id"],)
        )

    found = run(db, config)

    assert found["counts"] == {
        "missing_on_our_side": 1,
        "missing_at_broker": 1,
        "status_differs": 1,
        "filled_qty_differs": 2,
        "position_differs": 3,  # MSFT 10 vs 0, NVDA 0 vs 2, TSLA 7 vs 10
        "cash_differs": 1,  # the broker paid for NVDA; we did not
    }
    assert (found["orders_compared"], found["orders_in_drift"], found["drift_rate"]) == (5, 4, D("80.00"))

    repaired = run(db, config, repair=True)
    after = run(db, config)
    again = run(db, config, repair=True)

    assert repaired["repaired"] >= 5
    assert after["drifts"] == [] and after["drift_rate"] == 0
    assert again["drifts"] == [] and again["repaired"] == 0
    with db.transaction() as conn:
        ours = {p.symbol: p.qty for p in positions_repo.open_for(conn, config["id"])}
    assert ours == {"AAPL": D(10), "NVDA": D(2), "TSLA": D(10)}


def paper_cash(db: Database, config: dict[str, Any]) -> Decimal:
    with db.transaction() as conn:
        row = conn.execute("select cash from paper.accounts where config_id = %s", (config["id"],)).fetchone()
    return row["cash"]


def test_cash_in_step_with_the_paper_broker_is_no_drift(db):
    config = make_config(db)
    buy(db, config, "AAPL")

    result = run(db, config)

    assert paper_cash(db, config) == D(100000) - 10 * D(100)
    assert result["counts"]["cash_differs"] == 0 and result["drifts"] == []


@pytest.mark.parametrize(
    ("moved", "drift"),
    [("0.01", False), ("-0.01", False), ("0.02", True), ("-250.75", True)],
)
def test_paper_cash_moved_behind_our_back_is_a_cash_drift_never_repaired(db, moved, drift):
    config = make_config(db)
    buy(db, config, "AAPL")
    with db.transaction() as conn:  # a deposit, a fee or a dividend we never see
        conn.execute(
            "update paper.accounts set cash = cash + %s where config_id = %s", (D(moved), config["id"])
        )
    theirs = paper_cash(db, config)

    found = run(db, config, repair=True)
    after = run(db, config)

    cash = {"kind": "cash_differs", "key": "cash", "ours": "99000", "theirs": str(theirs)}
    expected = [cash] if drift else []
    assert found["drifts"] == expected and after["drifts"] == expected
    assert found["counts"]["cash_differs"] == after["counts"]["cash_differs"] == len(expected)
    assert (found["orders_in_drift"], found["positions_in_drift"], found["drift_rate"]) == (0, 0, 0)
    assert paper_cash(db, config) == theirs  # the broker's books are never written by a repair


def test_a_crypto_round_trip_pays_alpacas_fee_in_the_asset_received_and_both_books_agree(db):
    config = make_config(db)  # crypto_fee_rate: Alpaca's base-tier taker fee, 0.25 %
    fee = D("0.0025")

    bought = trade(
        db, config, Signal(ticker="BTC/USD", action=Action.BUY, quantity=D(1), signal_price=D(60000))
    )
    broker = SimulatedBroker.for_config(db, config, clock=lambda: NOW)
    after_buy = run(db, config)
    with db.transaction() as conn:
        ours = {p.symbol: p.qty for p in positions_repo.open_for(conn, config["id"])}
        [fill] = conn.execute("select * from public.fills where order_id = %s", (bought["id"],)).fetchall()
        our_cash = conn.execute("select cash from public.accounts where config_id = %s", (config["id"],))

    assert bought["filled_qty"] == D(1)  # the order filled whole; the fee came out of the coins
    assert ours == {"BTC/USD": D(1) * (1 - fee)} == {p.symbol: p.qty for p in broker.get_positions()}
    assert (fill["last_qty"], fill["fee_qty"]) == (D(1), fee)
    assert our_cash.fetchone()["cash"] == broker.get_account().cash == D(40000)
    assert after_buy["drifts"] == []

    sold = trade(
        db, config, Signal(ticker="BTC/USD", action=Action.SELL, quantity=D("0.9975"), signal_price=D(60000))
    )
    after_sell = run(db, config)
    with db.transaction() as conn:
        our_cash = conn.execute("select cash from public.accounts where config_id = %s", (config["id"],))

    assert sold["filled_qty"] == D("0.9975")
    proceeds = D("0.9975") * 60000 * (1 - fee)  # the sell's fee is in the USD received
    assert our_cash.fetchone()["cash"] == broker.get_account().cash == D(40000) + proceeds
    assert broker.get_positions() == [] and after_sell["drifts"] == []
