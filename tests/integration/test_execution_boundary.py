"""Specification of the execution boundary under retries, against a FakeBroker and real Postgres.

Our books (orders, fills, positions) are read from Postgres; the broker's are the FakeBroker's
memory. Each scenario is a way real brokers misbehave: accept then time out, refuse, fill
partially, be down, or the worker dies between submitting and recording.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

import psycopg
import pytest
from builders import held, make_config, order_events, order_fills, orders_of, signal_row, store_signal
from fake_broker import NOW, Crash, FakeBroker

from viewzenix.brokers.base import BrokerUnavailable
from viewzenix.db import Database
from viewzenix.domain.model import Action, Signal
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import signals as signals_repo
from viewzenix.services.execution import execute_signal

pytestmark = pytest.mark.db
D = Decimal
JOB = 4242


def buy(qty: str = "10", price: str = "100") -> Signal:
    return Signal(ticker="AAPL", action=Action.BUY, quantity=D(qty), signal_price=D(price))


def execute(db: Database, signal_id: uuid.UUID, broker: FakeBroker) -> str:
    return execute_signal(db, signal_id, job_id=JOB, clock=lambda: NOW, brokers=lambda config: broker)


def go_down_on_submit(broker: FakeBroker) -> Callable[[], None]:
    """Make ``broker`` go down just as an order is submitted: calls before work; that submit is
    refused (the order is not placed) and every call after it raises BrokerUnavailable.

    Return the function that brings the broker back up, its submits working again.
    """
    real_submit = broker.submit_order

    def down_on_submit(request):
        broker.down = True
        return real_submit(request)

    def back_up() -> None:
        broker.down = False
        broker.submit_order = real_submit  # type: ignore[method-assign]

    broker.submit_order = down_on_submit  # type: ignore[method-assign]
    return back_up


@pytest.fixture()
def config(db):
    return make_config(db, name="fake")


class TestTheHappyPath:
    def test_a_filled_order_is_recorded_with_its_fill_position_and_events(self, db, config):
        broker = FakeBroker()
        signal_id = store_signal(db, config, buy(), job_id=JOB)

        assert execute(db, signal_id, broker) == "executed"

        [order] = orders_of(db, signal_id)
        assert (order["status"], order["filled_qty"], order["filled_avg_price"]) == ("filled", D(10), D(100))
        assert order["broker_order_id"] == "fake-1"
        assert [f["trade_id"] for f in order_fills(db, order["id"])] == ["fake-trade-1"]
        assert held(db, config) == D(10)
        assert order_events(db, order["id"]) == [
            "OrderInitialized",
            "OrderSubmitted",
            "OrderAccepted",
            "OrderFilled",
        ]
        assert broker.submits() == 1

    def test_no_database_transaction_is_open_during_any_broker_call(self, db, database_url, config):
        open_transactions: list[tuple[str, int]] = []
        with psycopg.connect(database_url, autocommit=True) as watcher:

            def probe(method: str) -> None:
                count = watcher.execute(
                    "select count(*) from pg_stat_activity where datname = current_database() "
                    "and state like 'idle in transaction%%' and pid <> pg_backend_pid()"
                ).fetchone()[0]
                open_transactions.append((method, count))

            broker = FakeBroker()
            broker.probe = probe
            execute(db, store_signal(db, config, buy(), job_id=JOB), broker)
            execute(
                db,
                store_signal(db, config, buy().__class__(ticker="AAPL", action=Action.EXIT), job_id=JOB),
                broker,
            )

        assert open_transactions, "the broker was never called"
        assert all(count == 0 for _, count in open_transactions), open_transactions


class TestRetries:
    def test_timeout_after_accept_is_recorded_once_after_the_retry(self, db, config):
        broker = FakeBroker()
        broker.timeout_after_accept = True
        signal_id = store_signal(db, config, buy(), job_id=JOB)

        with pytest.raises(BrokerUnavailable):
            execute(db, signal_id, broker)
        [pending] = orders_of(db, signal_id)
        assert pending["status"] == "pending_new"
        assert signal_row(db, signal_id)["status"] == "failed"
        assert held(db, config) == D(0)

        assert execute(db, signal_id, broker) == "executed"  # procrastinate's retry, same job

        [order] = orders_of(db, signal_id)
        assert order["status"] == "filled"
        assert broker.submits() == 1  # looked up by client_order_id, never sent twice
        assert ("get_order_by_client_order_id", order["client_order_id"]) in broker.calls
        assert len(order_fills(db, order["id"])) == 1
        assert held(db, config) == D(10)

    def test_a_crash_between_submit_and_record_leaves_one_order_recorded_once(self, db, config):
        broker = FakeBroker()
        broker.crash_after_submit = True
        signal_id = store_signal(db, config, buy(), job_id=JOB)

        with pytest.raises(Crash):
            execute(db, signal_id, broker)
        assert signal_row(db, signal_id)["status"] == "submitting"  # nothing ran after the crash
        [pending] = orders_of(db, signal_id)
        assert pending["status"] == "pending_new"
        assert len(broker.orders) == 1

        assert execute(db, signal_id, broker) == "executed"  # the recovered job

        [order] = orders_of(db, signal_id)
        assert order["status"] == "filled"
        assert broker.submits() == 1
        assert len(broker.orders) == 1
        assert len(order_fills(db, order["id"])) == 1
        assert held(db, config) == D(10)

    def test_a_duplicate_client_order_id_refusal_records_the_brokers_order(self, db, config):
        broker = FakeBroker()
        broker.duplicate_on_submit = True  # as a retried POST that got through before
        signal_id = store_signal(db, config, buy(), job_id=JOB)

        assert execute(db, signal_id, broker) == "executed"

        [order] = orders_of(db, signal_id)
        assert (order["status"], order["broker_order_id"]) == ("filled", "fake-1")
        assert held(db, config) == D(10)

    def test_a_second_run_of_a_finished_signal_calls_no_broker(self, db, config):
        broker = FakeBroker()
        signal_id = store_signal(db, config, buy(), job_id=JOB)
        execute(db, signal_id, broker)
        calls = len(broker.calls)

        assert execute(db, signal_id, broker) == "executed"

        assert len(broker.calls) == calls
        assert len(orders_of(db, signal_id)) == 1


class TestBrokerAnswers:
    def test_a_refused_order_is_rejected_with_the_brokers_reason_and_so_is_the_signal(self, db, config):
        broker = FakeBroker()
        broker.refuse = ("insufficient_buying_power", "insufficient buying power")
        signal_id = store_signal(db, config, buy(), job_id=JOB)

        assert execute(db, signal_id, broker) == "rejected"

        [order] = orders_of(db, signal_id)
        assert (order["status"], order["status_code"]) == ("rejected", "insufficient_buying_power")
        assert order_events(db, order["id"])[-1] == "OrderRejected"
        assert held(db, config) == D(0)
        assert "insufficient buying power" in signal_row(db, signal_id)["outcome_message"]

    def test_a_partial_fill_moves_the_position_by_the_filled_quantity_only(self, db, config):
        broker = FakeBroker()
        broker.partial_fill = D("0.4")
        signal_id = store_signal(db, config, buy(), job_id=JOB)

        assert execute(db, signal_id, broker) == "executed"

        [order] = orders_of(db, signal_id)
        assert (order["status"], order["filled_qty"]) == ("partially_filled", D(4))
        assert order_events(db, order["id"])[-1] == "OrderPartiallyFilled"
        assert held(db, config) == D(4)

    def test_a_later_report_of_the_rest_of_a_partial_fill_completes_it_once(self, db, config):
        broker = FakeBroker()
        broker.partial_fill = D("0.4")
        signal_id = store_signal(db, config, buy(), job_id=JOB)
        execute(db, signal_id, broker)
        [order] = orders_of(db, signal_id)
        from dataclasses import replace

        from viewzenix.brokers.base import BrokerFill
        from viewzenix.domain.model import OrderStatus
        from viewzenix.services import ledger

        first = broker.orders[order["client_order_id"]]
        rest = BrokerFill(trade_id="fake-trade-rest", qty=D(6), price=D(101), commission=D(0), filled_at=NOW)
        done = replace(
            first,
            status=OrderStatus.FILLED,
            filled_qty=D(10),
            filled_avg_price=D("100.6"),
            fills=(*first.fills, rest),
        )
        book = ledger.Book.for_config(config)
        for _ in range(2):  # the same report twice (a stream and a poll): recorded once
            with db.transaction() as conn:
                ledger.record_report(conn, book, done, NOW)

        [order] = orders_of(db, signal_id)
        assert (order["status"], order["filled_qty"], order["filled_avg_price"]) == (
            "filled",
            D(10),
            D("100.6"),
        )
        assert [f["last_qty"] for f in order_fills(db, order["id"])] == [D(4), D(6)]
        assert held(db, config) == D(10)

    def test_a_broker_that_is_down_fails_the_signal_and_the_retry_places_one_order(self, db, config):
        broker = FakeBroker()
        broker.down = True
        signal_id = store_signal(db, config, buy(), job_id=JOB)

        with pytest.raises(BrokerUnavailable):
            execute(db, signal_id, broker)
        assert signal_row(db, signal_id)["status"] == "failed"
        assert orders_of(db, signal_id) == []

        broker.down = False
        assert execute(db, signal_id, broker) == "executed"
        assert broker.submits() == 1
        assert held(db, config) == D(10)

    def test_a_broker_down_between_plan_and_submit_keeps_the_order_pending_then_sends_it_once(
        self, db, config
    ):
        broker = FakeBroker()
        back_up = go_down_on_submit(broker)
        signal_id = store_signal(db, config, buy(), job_id=JOB)

        with pytest.raises(BrokerUnavailable):
            execute(db, signal_id, broker)
        [pending] = orders_of(db, signal_id)
        assert pending["status"] == "pending_new"
        assert broker.orders == {}

        back_up()
        assert execute(db, signal_id, broker) == "executed"
        assert broker.submits() == 2  # one refused at the door while down, one placed
        assert len(broker.orders) == 1
        assert held(db, config) == D(10)


class TestLaterSignals:
    def test_an_order_never_sent_by_a_failed_signal_is_closed_by_the_next_signal(self, db, config):
        broker = FakeBroker()
        back_up = go_down_on_submit(broker)
        failed_id = store_signal(db, config, buy(), job_id=JOB)
        with pytest.raises(BrokerUnavailable):
            execute(db, failed_id, broker)  # every retry failed the same way: the job ended
        back_up()

        next_id = store_signal(db, config, buy("5"), job_id=JOB)
        assert execute(db, next_id, broker) == "executed"

        [never] = orders_of(db, failed_id)
        assert (never["status"], never["status_code"]) == ("canceled", "never_submitted")
        assert broker.submits(never["client_order_id"]) == 1  # the refused attempt, nothing more
        assert held(db, config) == D(5)
        # a late run of the failed signal sends nothing and does not call it executed
        assert execute(db, failed_id, broker) == "failed"
        assert broker.submits(never["client_order_id"]) == 1


class TestBrackets:
    def test_legs_of_a_rejected_entry_are_not_sent_and_the_signal_is_rejected(self, db, config):
        from viewzenix.domain.model import StopLoss, TakeProfit

        broker = FakeBroker()
        broker.refuse = ("insufficient_buying_power", "insufficient buying power")
        bracket = buy().__class__(
            ticker="AAPL",
            action=Action.BUY,
            quantity=D(10),
            signal_price=D(100),
            take_profit=TakeProfit(limit_price=D(110)),
            stop_loss=StopLoss(stop_price=D(95)),
        )
        signal_id = store_signal(db, config, bracket, job_id=JOB)

        assert execute(db, signal_id, broker) == "rejected"

        entry, take_profit, stop_loss = orders_of(db, signal_id)
        assert entry["status"] == "rejected"
        assert (take_profit["status"], take_profit["status_code"]) == ("canceled", "parent_not_filled")
        assert (stop_loss["status"], stop_loss["status_code"]) == ("canceled", "parent_not_filled")
        assert broker.submits() == 1  # only the entry


class TestCancels:
    def test_a_cancel_only_signal_that_died_after_recording_resumes_and_ends_executed(self, db, config):
        from viewzenix.domain.model import OrderType

        broker = FakeBroker()
        resting = Signal(
            ticker="AAPL",
            action=Action.BUY,
            quantity=D(10),
            signal_price=D(100),
            order_type=OrderType.LIMIT,
            limit_price=D(90),
        )
        execute(db, store_signal(db, config, resting, job_id=JOB), broker)
        cancel_id = store_signal(db, config, Signal(ticker="AAPL", action=Action.CANCEL), job_id=JOB)
        real_cancel = broker.cancel_order

        def crash_after_cancel(client_order_id):
            real_cancel(client_order_id)
            raise Crash("killed after the broker canceled, before recording")

        broker.cancel_order = crash_after_cancel  # type: ignore[method-assign]
        with pytest.raises(Crash):
            execute(db, cancel_id, broker)
        broker.cancel_order = real_cancel  # type: ignore[method-assign]

        assert execute(db, cancel_id, broker) == "executed"

        with db.transaction() as conn:
            [canceled] = orders_repo.cancels_by(conn, cancel_id)
            message = signals_repo.get(conn, cancel_id)["outcome_message"]
        assert (canceled["status"], canceled["status_code"]) == ("canceled", "canceled_by_signal")
        assert "canceled 1 open order(s)" in message


def test_the_refused_signal_purge_keeps_a_signal_the_broker_rejected(db, config):
    """``purge_refused_signals`` is for alerts refused at intake: a signal that ran, whose order the
    broker rejected (status ``rejected`` too), is trade history and stays with its order."""
    from viewzenix.services.intake import purge_refused_signals

    broker = FakeBroker()
    broker.refuse = ("insufficient_buying_power", "insufficient buying power")
    signal_id = store_signal(db, config, buy(), job_id=JOB)
    assert execute(db, signal_id, broker) == "rejected"
    with db.transaction() as conn:
        conn.execute(
            "update public.signals set received_at = now() - interval '40 days' where id = %s", (signal_id,)
        )

    purge_refused_signals(db, 30)

    assert signal_row(db, signal_id) is not None
    [order] = orders_of(db, signal_id)
    assert order["status"] == "rejected"
