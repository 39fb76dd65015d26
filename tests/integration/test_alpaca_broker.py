"""Specification of the Alpaca adapter: signals executed against the FAKE Alpaca API over HTTP.

Our books are read from Postgres; Alpaca's are the fake's memory (``tests/fakes/alpaca_api.py``,
served on a loopback port and reached through alpaca-py's TradingClient, as in production). Each
test is one thing Alpaca does: accept then fill in parts, cancel, refuse for buying power, refuse
a client_order_id used before, rate-limit, time out after it accepted, hold bracket legs.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from alpaca.trading.requests import MarketOrderRequest
from builders import held, make_config, order_events, order_fills, orders_of, signal_row, store_signal
from fakes.alpaca_api import KEY_ID, SECRET_KEY, FakeAlpacaApi

from viewzenix.brokers.alpaca import AlpacaBroker, AlpacaCredentials, RequestBudget
from viewzenix.brokers.base import BrokerUnavailable
from viewzenix.domain.model import Action, OrderType, Signal, StopLoss, TakeProfit, TimeInForce
from viewzenix.services.execution import execute_signal
from viewzenix.services.order_sync import sync_open_orders

pytestmark = pytest.mark.db
D = Decimal
JOB = 7373


class Alpaca:
    """The fake's HTTP server plus the adapter factory execution uses; ``waits``: 429 sleeps."""

    def __init__(self, fake: FakeAlpacaApi) -> None:
        self.fake = fake
        self.waits: list[float] = []
        self.timeout = 5.0

    def broker(self, config: dict | None = None) -> AlpacaBroker:
        credentials = AlpacaCredentials(KEY_ID, SECRET_KEY, live=False, api_url=self.fake.url)
        return AlpacaBroker(
            credentials, timeout=self.timeout, sleep=self.waits.append, budget=RequestBudget(10_000)
        )

    def posts(self) -> int:
        return sum(1 for method, path in self.fake.requests if (method, path) == ("POST", "/v2/orders"))


@pytest.fixture()
def alpaca():
    fake = FakeAlpacaApi(auto_fill=False)
    fake.set_price("AAPL", "100")
    with fake.running():
        yield Alpaca(fake)


@pytest.fixture()
def config(db):
    return make_config(db, broker="alpaca", name="alpaca paper")


def run(
    db, alpaca: Alpaca, config, signal: Signal, signal_id: uuid.UUID | None = None
) -> tuple[uuid.UUID, str]:
    signal_id = signal_id or store_signal(db, config, signal, job_id=JOB)
    status = execute_signal(db, signal_id, job_id=JOB, brokers=alpaca.broker)
    return signal_id, status


def buy(qty: str = "10", **fields) -> Signal:
    return Signal(
        ticker=fields.pop("ticker", "AAPL"),
        action=Action.BUY,
        quantity=D(qty),
        signal_price=D("100"),
        **fields,
    )


def sync(db, alpaca: Alpaca, config) -> dict[str, int]:
    return sync_open_orders(db, config_id=config["id"], brokers=alpaca.broker)


def test_accepted_then_partially_filled_then_filled_records_each_fill_and_the_position(db, alpaca, config):
    signal_id, status = run(db, alpaca, config, buy("10"))
    [order] = orders_of(db, signal_id)
    assert (status, order["status"]) == ("executed", "submitted")  # Alpaca: accepted, not routed yet
    assert order["broker_order_id"] == alpaca.fake.order(order["client_order_id"]).id

    alpaca.fake.fill(order["client_order_id"], "4", "100")
    assert sync(db, alpaca, config)["fills"] == 1
    alpaca.fake.fill(order["client_order_id"], "6", "101")
    assert sync(db, alpaca, config)["fills"] == 1
    assert sync(db, alpaca, config)["changed"] == 0  # nothing new: nothing recorded twice

    [order] = orders_of(db, signal_id)
    assert (order["status"], order["filled_qty"], order["filled_avg_price"]) == (
        "filled",
        D("10"),
        D("100.6"),
    )
    fills = order_fills(db, order["id"])
    assert [(f["trade_id"], f["last_qty"], f["last_px"]) for f in fills] == [
        (f"{order['client_order_id']}-q4", D("4"), D("100")),
        (f"{order['client_order_id']}-q10", D("6"), D("101")),
    ]
    assert order_events(db, order["id"]) == [
        "OrderInitialized",
        "OrderSubmitted",
        "OrderAccepted",
        "OrderPartiallyFilled",
        "OrderFilled",
    ]
    assert held(db, config) == D("10")


def test_a_cancel_signal_cancels_the_resting_order_at_alpaca(db, alpaca, config):
    limit_buy = buy("5", order_type=OrderType.LIMIT, limit_price=D("90"))
    entry_signal, _ = run(db, alpaca, config, limit_buy)
    [entry] = orders_of(db, entry_signal)

    cancel_signal, status = run(db, alpaca, config, Signal(ticker="AAPL", action=Action.CANCEL))

    assert status == "executed"
    assert alpaca.fake.order(entry["client_order_id"]).status == "canceled"
    [entry] = orders_of(db, entry_signal)
    assert (entry["status"], entry["status_code"]) == ("canceled", "canceled_by_signal")
    assert f"canceled by signal {cancel_signal}" == entry["status_message"]


def test_buying_power_refusal_is_recorded_rejected_with_alpacas_message(db, alpaca, config):
    signal_id, status = run(db, alpaca, config, buy("5000"))  # $500,000 > $100,000 cash

    [order] = orders_of(db, signal_id)
    assert status == "rejected"
    assert (order["status"], order["status_code"]) == ("rejected", "insufficient_buying_power")
    assert order["status_message"] == "Alpaca: insufficient buying power"
    assert "insufficient buying power" in signal_row(db, signal_id)["outcome_message"]
    assert alpaca.fake.orders_of() == []


def test_a_client_order_id_alpaca_already_has_is_looked_up_and_recorded_never_sent_twice(db, alpaca, config):
    alpaca.fake.auto_fill = True
    signal_id = store_signal(db, config, buy("10"), job_id=JOB)
    cid = f"vzx-{signal_id.hex}-en"
    # An earlier POST placed it and its answer was lost (e.g. a proxy's 504 after Alpaca accepted).
    alpaca.broker().client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=10, side="buy", time_in_force="day", client_order_id=cid)
    )

    _, status = run(db, alpaca, config, buy("10"), signal_id=signal_id)

    [order] = orders_of(db, signal_id)
    assert status == "executed"
    assert (order["status"], order["filled_qty"]) == ("filled", D("10"))
    assert len(alpaca.fake.orders_of()) == 1
    assert alpaca.posts() == 2  # ours was refused "client_order_id must be unique", then looked up
    assert held(db, config) == D("10")


def test_429_waits_what_alpaca_says_then_retries_and_places_one_order(db, alpaca, config):
    alpaca.fake.fail_next(429, "rate limit exceeded", method="POST", headers={"Retry-After": "2"})

    signal_id, status = run(db, alpaca, config, buy("10"))

    assert status == "executed"
    assert alpaca.waits == [2.0]
    assert alpaca.posts() == 2
    assert len(alpaca.fake.orders_of()) == 1
    assert orders_of(db, signal_id)[0]["status"] == "submitted"


def test_timeout_after_alpaca_accepted_fails_the_job_and_the_retry_records_the_order_once(db, alpaca, config):
    alpaca.fake.auto_fill = True
    alpaca.timeout = 0.5
    release = alpaca.fake.hold_next_post()
    signal_id = store_signal(db, config, buy("10"), job_id=JOB)

    with pytest.raises(BrokerUnavailable):
        run(db, alpaca, config, buy("10"), signal_id=signal_id)
    release.set()
    assert signal_row(db, signal_id)["status"] == "failed"
    assert orders_of(db, signal_id)[0]["status"] == "pending_new"
    assert len(alpaca.fake.orders_of()) == 1  # Alpaca had placed it

    _, status = run(db, alpaca, config, buy("10"), signal_id=signal_id)  # procrastinate's retry

    [order] = orders_of(db, signal_id)
    assert status == "executed"
    assert (order["status"], order["filled_qty"]) == ("filled", D("10"))
    assert alpaca.posts() == 1 and len(alpaca.fake.orders_of()) == 1
    assert held(db, config) == D("10")


def test_a_504_is_not_resent_by_alpaca_py_and_the_retry_finds_the_order(db, alpaca, config):
    alpaca.fake.auto_fill = True
    alpaca.fake.fail_next(504, method="POST", after_apply=True, raw="<html>504 Gateway Time-out</html>")
    signal_id = store_signal(db, config, buy("10"), job_id=JOB)

    with pytest.raises(BrokerUnavailable, match="504"):
        run(db, alpaca, config, buy("10"), signal_id=signal_id)
    assert alpaca.posts() == 1  # alpaca-py's default would have POSTed again
    _, status = run(db, alpaca, config, buy("10"), signal_id=signal_id)

    assert status == "executed"
    assert alpaca.posts() == 1 and len(alpaca.fake.orders_of()) == 1
    assert orders_of(db, signal_id)[0]["status"] == "filled"


def test_an_order_shape_alpaca_cannot_take_is_denied_with_the_reason_and_never_sent(db, alpaca, config):
    crypto_day = buy("0.5", ticker="BTC/USD", time_in_force=TimeInForce.DAY)
    fractional_limit = buy("0.5", order_type=OrderType.LIMIT, limit_price=D("99"))

    crypto_signal, crypto_status = run(db, alpaca, config, crypto_day)
    fraction_signal, fraction_status = run(db, alpaca, config, fractional_limit)

    [crypto_order] = orders_of(db, crypto_signal)
    [fraction_order] = orders_of(db, fraction_signal)
    assert (crypto_status, fraction_status) == ("denied", "denied")
    assert (crypto_order["status"], crypto_order["status_code"]) == ("denied", "crypto_time_in_force")
    assert "gtc or ioc only" in crypto_order["status_message"]
    assert (fraction_order["status"], fraction_order["status_code"]) == ("denied", "fractional_order")
    assert alpaca.posts() == 0


def test_crypto_with_gtc_and_a_fractional_qty_trades(db, alpaca, config):
    alpaca.fake.auto_fill = True
    alpaca.fake.set_price("BTC/USD", "65000")

    signal_id, status = run(db, alpaca, config, buy("0.01", ticker="BTC/USD", time_in_force=TimeInForce.GTC))

    [order] = orders_of(db, signal_id)
    assert (status, order["status"], order["filled_qty"]) == ("executed", "filled", D("0.01"))
    assert held(db, config, "BTC/USD") == D("0.01")
    assert alpaca.broker().get_positions()[0].symbol == "BTC/USD"  # Alpaca says BTCUSD


def test_an_entry_with_take_profit_and_stop_loss_is_one_bracket_and_its_legs_follow_alpaca(
    db, alpaca, config
):
    alpaca.fake.auto_fill = True
    signal = buy("10", take_profit=TakeProfit(limit_price=D("110")), stop_loss=StopLoss(stop_price=D("95")))

    signal_id, status = run(db, alpaca, config, signal)

    entry, take_profit, stop_loss = orders_of(db, signal_id)
    assert status == "executed"
    [alpaca_entry] = alpaca.fake.orders_of()
    assert alpaca.posts() == 1 and alpaca_entry.order_class == "bracket"
    assert (entry["purpose"], entry["status"]) == ("entry", "filled")
    assert (take_profit["purpose"], take_profit["status"]) == ("take_profit", "accepted")
    assert (stop_loss["purpose"], stop_loss["status"]) == ("stop_loss", "accepted")
    assert {take_profit["broker_order_id"], stop_loss["broker_order_id"]} == {
        leg.id for leg in alpaca_entry.legs
    }

    alpaca.fake.fill(take_profit["broker_order_id"], price="110")  # Alpaca's leg ids are its own
    sync(db, alpaca, config)

    _, take_profit, stop_loss = orders_of(db, signal_id)
    assert (take_profit["status"], take_profit["filled_avg_price"]) == ("filled", D("110"))
    assert stop_loss["status"] == "canceled"  # OCO at Alpaca
    assert held(db, config) == D("0")


def test_a_trailing_stop_loss_leg_is_denied_and_the_entry_goes_with_its_take_profit(db, alpaca, config):
    alpaca.fake.auto_fill = True
    signal = buy(
        "10",
        take_profit=TakeProfit(limit_price=D("110")),
        stop_loss=StopLoss(type=OrderType.TRAILING_STOP, percent=D("2")),
    )

    signal_id, status = run(db, alpaca, config, signal)

    entry, take_profit, stop_loss = orders_of(db, signal_id)
    assert status == "executed"
    assert alpaca.fake.orders_of()[0].order_class == "oto"
    assert (entry["status"], take_profit["status"]) == ("filled", "accepted")
    assert (stop_loss["status"], stop_loss["status_code"]) == ("denied", "bracket_trailing_stop")


def test_reconciliation_compares_with_alpaca_and_repairs_a_fill_we_missed(db, alpaca, config):
    from viewzenix.services.reconciliation import reconcile

    alpaca.fake.set_price("AAPL", "100")
    signal_id, _ = run(db, alpaca, config, buy("10"))
    [order] = orders_of(db, signal_id)
    alpaca.fake.fill(order["client_order_id"], "10", "100")  # filled at Alpaca; no sync ran

    [report] = reconcile(db, config_id=config["id"], brokers=alpaca.broker)
    [repaired] = reconcile(db, config_id=config["id"], brokers=alpaca.broker, repair=True)
    [after] = reconcile(db, config_id=config["id"], brokers=alpaca.broker)

    assert report["broker"] == "alpaca"
    assert report["counts"]["status_differs"] == 1 and report["counts"]["position_differs"] == 1
    assert repaired["repaired"] >= 1
    assert (after["orders_in_drift"], after["positions_in_drift"]) == (0, 0)
    assert held(db, config) == D("10")
    # Alpaca's cash (GET /v2/account) paid the fill before we knew: reported, then in step
    cash = [d for d in report["drifts"] if d["kind"] == "cash_differs"]
    assert cash == [{"kind": "cash_differs", "key": "cash", "ours": "100000", "theirs": "99000"}]
    assert after["counts"]["cash_differs"] == 0 and after["drifts"] == []


def test_a_deposit_at_alpaca_is_a_cash_drift_that_repair_leaves_to_a_person(db, alpaca, config):
    from viewzenix.services.reconciliation import reconcile

    [before] = reconcile(db, config_id=config["id"], brokers=alpaca.broker)
    run(db, alpaca, config, buy("10"))  # rests at Alpaca; our account opens with Alpaca's cash
    alpaca.fake.cash += D("2500.50")  # a deposit (or dividend) our books never see

    [repaired] = reconcile(db, config_id=config["id"], brokers=alpaca.broker, repair=True)
    [after] = reconcile(db, config_id=config["id"], brokers=alpaca.broker)

    expected = [{"kind": "cash_differs", "key": "cash", "ours": "100000", "theirs": "102500.5"}]
    assert repaired["drifts"] == expected and repaired["repaired"] == 0
    assert after["drifts"] == expected and after["counts"]["cash_differs"] == 1
    assert before["drifts"] == []  # no books of ours before the first trade: nothing to compare


# --- issue 15: canonical crypto symbols, decimals on the wire ------------------------------


def test_tradingviews_btcusd_is_sent_to_alpaca_as_the_crypto_pair_btc_usd(db, alpaca, config):
    from viewzenix.domain.model import TimeInForce

    alpaca.fake.set_price("BTC/USD", "60000")

    signal_id, status = run(db, alpaca, config, buy("0.5", ticker="BTCUSD", time_in_force=TimeInForce.GTC))

    assert status == "executed"
    [order] = orders_of(db, signal_id)
    assert order["symbol"] == "BTC/USD"
    assert [o.symbol for o in alpaca.fake.orders_of()] == ["BTC/USD"]


def test_quantities_and_prices_go_to_alpaca_as_plain_decimal_strings(db, alpaca, config):
    import json

    from viewzenix.domain.model import OrderType, TimeInForce

    alpaca.fake.set_price("BTC/USD", "60000")
    limit = {"order_type": OrderType.LIMIT, "limit_price": D("59000.12")}

    run(db, alpaca, config, buy("0.00005", ticker="BTC/USD", time_in_force=TimeInForce.GTC, **limit))

    [body] = alpaca.fake.posted
    sent = json.loads(body)
    assert (sent["qty"], sent["limit_price"]) == ("0.00005", "59000.12")  # not 5e-05, not a float


def test_listing_orders_never_skips_orders_sharing_the_pages_last_timestamp(db, alpaca, config, monkeypatch):
    from datetime import UTC, datetime

    from viewzenix.brokers import alpaca as alpaca_module

    monkeypatch.setattr(alpaca_module, "PAGE_SIZE", 2)
    moments = iter(
        [datetime(2026, 11, 23, 15, 0, 0, tzinfo=UTC)] + [datetime(2026, 11, 23, 15, 0, 1, tzinfo=UTC)] * 9
    )
    alpaca.fake.clock = lambda: next(moments)
    broker = alpaca.broker()
    from viewzenix.domain.engine import OrderPurpose, OrderRequest
    from viewzenix.domain.model import OrderSide, OrderType, TimeInForce

    for n in range(3):  # the 2nd and 3rd share a timestamp; a page holds 2
        broker.submit_order(
            OrderRequest(
                client_order_id=f"tie-{n}",
                symbol="AAPL",
                side=OrderSide.BUY,
                qty=D(1),
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.DAY,
                purpose=OrderPurpose.ENTRY,
                limit_price=D(90),
            )
        )

    assert sorted(r.client_order_id for r in broker.list_orders()) == ["tie-0", "tie-1", "tie-2"]
