"""Specification of Alpaca's trade_updates stream in our books: listened to, recorded once, resumed.

The listener (``services.trade_updates``) connects over a real websocket to the FAKE stream
(``tests/fakes/alpaca_stream.py``), which sends on the events of the FAKE REST API
(``tests/fakes/alpaca_api.py``); our books are read from Postgres. The listener runs in a thread
of its own event loop, as in the stream process; the test follows what it does through its
observations (``connected``, ``caught_up``, ``recorded``, ``failed``, ``waiting``), waiting for
each with a generous bound — a bound against hanging, not a speed assertion.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from builders import held, make_config, order_events, order_fills, orders_of, store_signal
from fakes.alpaca_api import KEY_ID, SECRET_KEY, FakeAlpacaApi
from fakes.alpaca_stream import FakeAlpacaStream

from viewzenix import crypto
from viewzenix.brokers.alpaca import AlpacaBroker, AlpacaCredentials, RequestBudget
from viewzenix.domain.model import Action, OrderType, Signal, StopLoss, TakeProfit
from viewzenix.services.broker_credentials import store_alpaca_credentials
from viewzenix.services.execution import execute_signal
from viewzenix.services.order_sync import sync_open_orders
from viewzenix.services.trade_updates import TradeUpdatesListener, configs_to_stream, record_trade_update
from viewzenix.streams import StreamManager

pytestmark = pytest.mark.db
D = Decimal
JOB = 4242
BOUND = 15.0  # seconds: how long to wait for the listener before calling it stuck


class Alpaca:
    """The fake REST API and stream of one account, and the adapter factory execution uses."""

    def __init__(self, api: FakeAlpacaApi, stream: FakeAlpacaStream) -> None:
        self.api = api
        self.stream = stream

    def credentials(self, secret: str = SECRET_KEY) -> AlpacaCredentials:
        return AlpacaCredentials(KEY_ID, secret, live=False, api_url=self.api.url)

    def broker(self, config: dict | None = None) -> AlpacaBroker:
        return AlpacaBroker(
            self.credentials(), timeout=5.0, sleep=lambda s: None, budget=RequestBudget(10_000)
        )


@pytest.fixture(autouse=True)
def no_account_held_by_an_earlier_test(db):
    """One Alpaca account belongs to one config: the fake's keys must be free for this test's."""
    with db.transaction() as conn:
        conn.execute("delete from private.broker_credentials")


@pytest.fixture()
def alpaca():
    api = FakeAlpacaApi(auto_fill=False)
    api.set_price("AAPL", "100")
    stream = FakeAlpacaStream(api)
    with api.running(), stream.running():
        yield Alpaca(api, stream)


@pytest.fixture()
def config(db):
    return make_config(db, broker="alpaca", name="alpaca paper")


class Gate:
    """The listener's sleep between attempts: records the wait, returns once the test opens it."""

    def __init__(self, open_: bool = True) -> None:
        self.waits: list[float] = []
        self._open = threading.Event()
        if open_:
            self._open.set()

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.to_thread(self._open.wait, BOUND)


class Running:
    """A listener running on its own loop in a thread; ``expect`` waits for an observation."""

    def __init__(self, listener: TradeUpdatesListener, seen: queue.Queue) -> None:
        self.listener = listener
        self.seen = seen
        self.history: list[tuple[str, dict[str, Any]]] = []

    def expect(self, what: str, **detail: Any) -> dict[str, Any]:
        while True:
            try:
                got, got_detail = self.seen.get(timeout=BOUND)
            except queue.Empty:
                raise AssertionError(
                    f"the listener never reported {what} {detail}; saw {self.history}"
                ) from None
            self.history.append((got, got_detail))
            if got == what and all(got_detail.get(k) == v for k, v in detail.items()):
                return got_detail


@contextmanager
def listening(
    db, alpaca: Alpaca, config, *, secret: str = SECRET_KEY, gate: Gate | None = None
) -> Iterator[Running]:
    seen: queue.Queue = queue.Queue()
    listener = TradeUpdatesListener(
        db,
        config,
        credentials=lambda: alpaca.credentials(secret),
        url_for=lambda credentials: alpaca.stream.url,
        catch_up=lambda config_id: sync_open_orders(db, config_id=config_id, brokers=alpaca.broker),
        sleep=gate or Gate(),
        observe=lambda what, detail: seen.put((what, detail)),
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(listener.run(),), daemon=True)
    thread.start()
    try:
        yield Running(listener, seen)
    finally:
        loop.call_soon_threadsafe(listener.stop)
        if gate is not None:
            gate.open()
        thread.join(timeout=BOUND)
        assert not thread.is_alive(), "the listener did not stop"
        loop.close()


def submit(db, alpaca: Alpaca, config, signal: Signal) -> dict[str, Any]:
    signal_id = store_signal(db, config, signal, job_id=JOB)
    execute_signal(db, signal_id, job_id=JOB, brokers=alpaca.broker)
    return orders_of(db, signal_id)


def buy(qty: str = "10", **fields: Any) -> Signal:
    return Signal(ticker="AAPL", action=Action.BUY, quantity=D(qty), signal_price=D("100"), **fields)


def fills_of(db, order) -> list[tuple[str, Decimal, Decimal]]:
    return [(f["trade_id"], f["last_qty"], f["last_px"]) for f in order_fills(db, order["id"])]


def fresh(db, order) -> dict[str, Any]:
    [row] = [o for o in orders_of(db, order["signal_id"]) if o["id"] == order["id"]]
    return row


# --- the stream keeps orders in step --------------------------------------------------------


def test_partial_fill_then_fill_from_the_stream_are_recorded_once_each_with_the_events_price(
    db, alpaca, config
):
    [order] = submit(db, alpaca, config, buy("10"))
    coid = order["client_order_id"]
    with listening(db, alpaca, config) as running:
        running.expect("caught_up")
        alpaca.api.fill(coid, "4", "100.25")
        assert running.expect("recorded", event="partial_fill")["fills"] == 1
        assert fresh(db, order)["status"] == "partially_filled"
        alpaca.api.fill(coid, "6", "101.10")
        assert running.expect("recorded", event="fill")["fills"] == 1

    order = fresh(db, order)
    assert (order["status"], order["filled_qty"], order["filled_avg_price"]) == (
        "filled",
        D("10"),
        D("100.76"),
    )
    assert fills_of(db, order) == [(f"{coid}-q4", D("4"), D("100.25")), (f"{coid}-q10", D("6"), D("101.10"))]
    assert order_events(db, order["id"])[-2:] == ["OrderPartiallyFilled", "OrderFilled"]
    assert held(db, config) == D("10")
    # The poll then finds nothing new: the same fills are never recorded twice.
    assert sync_open_orders(db, config_id=config["id"], brokers=alpaca.broker)["orders"] == 0
    assert len(order_fills(db, order["id"])) == 2


def test_the_stream_records_each_executions_own_price_not_one_implied_by_a_rounded_average(
    db, alpaca, config
):
    [order] = submit(db, alpaca, config, buy("3"))
    coid = order["client_order_id"]
    alpaca.api.fill(coid, "1", "100")
    alpaca.api.fill(coid, "2", "100.01")
    first, second = alpaca.api.events[-2:]
    # An average given to 4 places (100.00666… → 100.0067) implies 100.01005 for the second fill.
    second = {**second, "order": {**second["order"], "filled_avg_price": "100.0067"}}

    for event in (first, second):
        record_trade_update(db, config, event)

    assert fills_of(db, fresh(db, order)) == [
        (f"{coid}-q1", D("1"), D("100")),
        (f"{coid}-q3", D("2"), D("100.01")),
    ]
    assert fresh(db, order)["filled_avg_price"] == D("100.0067")


def test_a_fill_the_poll_recorded_first_is_not_recorded_again_when_the_stream_event_comes(db, alpaca, config):
    [order] = submit(db, alpaca, config, buy("10"))
    coid = order["client_order_id"]
    alpaca.api.fill(coid, "4", "100")  # nobody listens: the event is only in the fake's log
    assert sync_open_orders(db, config_id=config["id"], brokers=alpaca.broker)["fills"] == 1

    late = alpaca.api.events[-1]
    assert late["event"] == "partial_fill"
    recorded = record_trade_update(db, config, late)

    assert recorded is not None and recorded.new_fills == ()
    assert fills_of(db, fresh(db, order)) == [(f"{coid}-q4", D("4"), D("100"))]
    assert held(db, config) == D("4")


def test_a_late_stream_fill_the_poll_counted_with_a_later_one_is_not_counted_again(db, alpaca, config):
    [order] = submit(db, alpaca, config, buy("20"))
    coid = order["client_order_id"]
    alpaca.api.fill(coid, "5", "100")
    first = alpaca.api.events[-1]
    alpaca.api.fill(coid, "5", "102")
    second = alpaca.api.events[-1]
    # The poll sees 10 of 20 filled: one fill of 10 at the average.
    assert sync_open_orders(db, config_id=config["id"], brokers=alpaca.broker)["fills"] == 1

    for late in (first, second):
        assert record_trade_update(db, config, late).new_fills == ()

    assert fills_of(db, fresh(db, order)) == [(f"{coid}-q10", D("10"), D("101"))]
    assert held(db, config) == D("10")


def test_a_stream_fill_after_a_missed_one_records_the_gap_as_the_poll_would(db, alpaca, config):
    [order] = submit(db, alpaca, config, buy("20"))
    coid = order["client_order_id"]
    alpaca.api.fill(coid, "5", "100")  # missed: neither stream nor poll saw it
    alpaca.api.fill(coid, "5", "102")

    recorded = record_trade_update(db, config, alpaca.api.events[-1])

    assert len(recorded.new_fills) == 1
    assert fills_of(db, fresh(db, order)) == [(f"{coid}-q10", D("10"), D("101"))]
    assert held(db, config) == D("10")


def test_cancel_expire_and_reject_events_close_the_orders(db, alpaca, config):
    limit = {"order_type": OrderType.LIMIT, "limit_price": D("90")}
    # three symbols: a buy signal cancels the open orders of its own symbol first, and Alpaca
    # never expires or rejects an order it has canceled (the ledger refuses that report)
    [canceled] = submit(db, alpaca, config, buy("1", **limit))
    [expired] = submit(db, alpaca, config, replace(buy("2", **limit), ticker="MSFT"))
    [rejected] = submit(db, alpaca, config, replace(buy("3", **limit), ticker="TSLA"))
    with listening(db, alpaca, config) as running:
        running.expect("caught_up")
        alpaca.api.cancel(canceled["client_order_id"])
        running.expect("recorded", event="canceled")
        alpaca.api.expire(expired["client_order_id"])
        running.expect("recorded", event="expired")
        alpaca.api.reject(rejected["client_order_id"])
        running.expect("recorded", event="rejected")

    assert [fresh(db, o)["status"] for o in (canceled, expired, rejected)] == [
        "canceled",
        "expired",
        "rejected",
    ]
    assert order_events(db, canceled["id"])[-1] == "OrderCanceled"


def test_a_bracket_legs_events_are_recorded_under_our_leg_ids(db, alpaca, config):
    alpaca.api.auto_fill = True
    signal = buy("10", take_profit=TakeProfit(limit_price=D("110")), stop_loss=StopLoss(stop_price=D("95")))
    entry, take_profit, stop_loss = submit(db, alpaca, config, signal)
    assert entry["status"] == "filled"
    with listening(db, alpaca, config) as running:
        running.expect("caught_up")
        alpaca.api.fill(take_profit["broker_order_id"], price="110")  # Alpaca's leg ids are its own
        running.expect("recorded", event="fill")
        running.expect("recorded", event="canceled")  # its sibling, OCO

    take_profit, stop_loss = fresh(db, take_profit), fresh(db, stop_loss)
    assert (take_profit["status"], take_profit["filled_avg_price"]) == ("filled", D("110"))
    assert fills_of(db, take_profit) == [(f"{take_profit['client_order_id']}-q10", D("10"), D("110"))]
    assert stop_loss["status"] == "canceled"
    assert held(db, config) == D("0")


def test_an_order_that_is_not_ours_is_skipped(db, alpaca, config):
    from alpaca.trading.requests import MarketOrderRequest

    with listening(db, alpaca, config) as running:
        running.expect("caught_up")
        alpaca.broker().client.submit_order(
            MarketOrderRequest(
                symbol="AAPL", qty=1, side="buy", time_in_force="day", client_order_id="by-hand"
            )
        )
        assert running.expect("recorded")["ours"] is False


# --- disconnect and resume --------------------------------------------------------------------


def test_after_a_disconnect_the_listener_reconnects_and_the_catch_up_records_the_fill_it_missed(
    db, alpaca, config
):
    [order] = submit(db, alpaca, config, buy("10"))
    coid = order["client_order_id"]
    gate = Gate()
    with listening(db, alpaca, config, gate=gate) as running:
        running.expect("caught_up")
        alpaca.api.fill(coid, "4", "100")
        running.expect("recorded", event="partial_fill")

        gate.close()  # hold the reconnect until the missed fill has happened
        alpaca.stream.disconnect()
        assert running.expect("failed")["reason"] == "disconnected"
        running.expect("waiting")
        alpaca.api.fill(coid, "6", "101")  # while nobody listens: lost on the stream
        assert alpaca.stream.listening == 0
        gate.open()

        running.expect("connected")
        caught_up = running.expect("caught_up")["counts"]
        assert (caught_up["fills"], caught_up["changed"]) == (1, 1)
        alpaca.api.set_price("AAPL", "100")
        [later] = submit(db, alpaca, config, buy("1"))  # the new connection carries what follows
        alpaca.api.fill(later["client_order_id"], "1", "99")
        running.expect("recorded", event="fill")

    order = fresh(db, order)
    assert (order["status"], order["filled_qty"], order["filled_avg_price"]) == (
        "filled",
        D("10"),
        D("100.6"),
    )
    assert fills_of(db, order) == [(f"{coid}-q4", D("4"), D("100")), (f"{coid}-q10", D("6"), D("101"))]
    assert fresh(db, later)["status"] == "filled"
    assert held(db, config) == D("11")
    assert alpaca.stream.connections == 2
    assert len(gate.waits) == 1


def test_fills_before_the_listener_started_are_caught_up_at_its_first_connect(db, alpaca, config):
    [order] = submit(db, alpaca, config, buy("10"))
    alpaca.api.fill(order["client_order_id"], "10", "100")  # a restart: nobody listened

    with listening(db, alpaca, config) as running:
        assert running.expect("caught_up")["counts"]["fills"] == 1

    assert fresh(db, order)["status"] == "filled"
    assert held(db, config) == D("10")


def test_refused_keys_are_logged_and_retried_with_growing_waits_and_never_stop_the_listener(
    db, alpaca, config, caplog
):
    gate = Gate()
    with listening(db, alpaca, config, secret="wrong-secret", gate=gate) as running:
        for _ in range(4):
            assert running.expect("failed")["reason"] == "auth"
            running.expect("waiting")

    assert alpaca.stream.refused_auth >= 4
    assert gate.waits[0] <= 1.0 and gate.waits[3] > 1.0  # 1, 2, 4, 8 s with jitter in [d/2, d]
    messages = [r for r in caplog.records if getattr(r, "action", None) == "stream_auth"]
    assert messages and "refused the API keys (unauthorized)" in messages[0].getMessage()


def test_keys_fixed_after_a_refusal_connect_and_catch_up(db, alpaca, config):
    [order] = submit(db, alpaca, config, buy("10"))
    alpaca.api.fill(order["client_order_id"], "10", "100")
    secrets = iter(["wrong-secret", SECRET_KEY])
    seen: queue.Queue = queue.Queue()
    listener = TradeUpdatesListener(
        db,
        config,
        credentials=lambda: alpaca.credentials(next(secrets)),
        url_for=lambda credentials: alpaca.stream.url,
        catch_up=lambda config_id: sync_open_orders(db, config_id=config_id, brokers=alpaca.broker),
        sleep=Gate(),
        observe=lambda what, detail: seen.put((what, detail)),
    )

    async def run_until_caught_up() -> None:
        task = asyncio.create_task(listener.run())
        while True:
            what, detail = await asyncio.to_thread(seen.get, True, BOUND)
            if what == "caught_up":
                listener.stop()
                await task
                return detail

    detail = asyncio.run(run_until_caught_up())

    assert detail["counts"]["fills"] == 1
    assert listener.attempts == 0  # a listening connection resets the backoff
    assert fresh(db, order)["status"] == "filled"


# --- which configs are listened to ------------------------------------------------------------


@pytest.fixture()
def cipher():
    crypto.configure(crypto.cipher_from_setting(crypto.generate_key()))
    yield
    crypto.configure(None)


def test_configs_with_keys_and_open_orders_are_listened_to_and_others_are_not(db, alpaca, config, cipher):
    other = make_config(db, broker="alpaca", name="alpaca without keys")
    paper = make_config(db, name="paper broker")
    ours = {config["id"], other["id"], paper["id"]}

    def streamed() -> list:
        return [c["id"] for c in configs_to_stream(db) if c["id"] in ours]  # other tests' rows aside

    submit(db, alpaca, other, buy("1"))
    submit(db, alpaca, paper, buy("1"))
    assert streamed() == []  # no orders yet; the other has no keys; the paper broker is ours

    store_alpaca_credentials(db, config["id"], key_id=KEY_ID, secret_key=SECRET_KEY, api_url=alpaca.api.url)
    assert streamed() == []  # keys, but nothing to hear of
    submit(db, alpaca, config, buy("1", order_type=OrderType.LIMIT, limit_price=D("90")))

    assert streamed() == [config["id"]]


def test_the_stream_manager_listens_to_each_config_that_needs_it_and_stops_when_done(
    db, alpaca, config, cipher
):
    store_alpaca_credentials(db, config["id"], key_id=KEY_ID, secret_key=SECRET_KEY, api_url=alpaca.api.url)
    [order] = submit(db, alpaca, config, buy("10"))
    seen: queue.Queue = queue.Queue()

    def listener_for(db_, config_):
        return TradeUpdatesListener(
            db_,
            config_,
            url_for=lambda credentials: alpaca.stream.url,  # the stored keys, the fake's address
            observe=lambda what, detail: seen.put((what, detail)),
        )

    async def scenario() -> list[str]:
        manager = StreamManager(
            db,
            listener_for=listener_for,
            refresh_seconds=3600,
            configs=lambda db_: [c for c in configs_to_stream(db_) if c["id"] == config["id"]],
        )
        await manager.refresh()
        assert list(manager.listeners) == [config["id"]]
        seen_kinds = []
        while "caught_up" not in seen_kinds:
            seen_kinds.append((await asyncio.to_thread(seen.get, True, BOUND))[0])
        await asyncio.to_thread(alpaca.api.fill, order["client_order_id"], "10", "100")
        while "recorded" not in seen_kinds:
            seen_kinds.append((await asyncio.to_thread(seen.get, True, BOUND))[0])
        await manager.refresh()  # still recent activity: kept
        assert list(manager.listeners) == [config["id"]]
        with db.transaction() as conn:  # long ago (past the updated_at trigger)
            conn.execute("set local session_replication_role = replica")
            conn.execute(
                "update public.orders set updated_at = now() - interval '1 day' where config_id = %s",
                (config["id"],),
            )
        await manager.refresh()
        assert manager.listeners == {}
        return seen_kinds

    kinds = asyncio.run(scenario())

    assert kinds[:2] == ["connected", "caught_up"]
    assert fresh(db, order)["status"] == "filled"
    assert alpaca.stream.listening == 0
