"""Specification of signal execution: a stored signal becomes orders, fills and positions.

``execute_signal`` runs against the real Postgres, with the real engine and the simulated
broker. Each test opens its own user and webhook config and stores ``accepted`` signals the way
intake does (``signal`` = ``signal_to_dict``).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from builders import (
    NOW,
    clock,
    enqueue_signal,
    make_config,
    order_events,
    order_fills,
    orders_of,
    position_of,
    run_signal,
    signal_row,
    store_signal,
    summary,
)

from viewzenix.domain.model import (
    Action,
    OrderType,
    Sentiment,
    Signal,
    StopLoss,
    TakeProfit,
)
from viewzenix.domain.parsing import signal_to_dict
from viewzenix.domain.serialization import signal_from_dict
from viewzenix.repositories import orders as orders_repo
from viewzenix.services.execution import execute_signal

pytestmark = pytest.mark.db

D = Decimal


# --- helpers -------------------------------------------------------------------------------


def buy(qty: str, price: str | None = "100", **fields: Any) -> Signal:
    return Signal(
        ticker="AAPL",
        action=Action.BUY,
        quantity=D(qty),
        signal_price=None if price is None else D(price),
        **fields,
    )


def sell(qty: str, price: str | None = "100", **fields: Any) -> Signal:
    return replace(buy(qty, price, **fields), action=Action.SELL)


def brief(rows: list[dict[str, Any]]) -> list[tuple[str, str, Decimal, str]]:
    return [(r["purpose"], r["side"], r["qty"], r["status"]) for r in rows]


# --- entering and exiting ------------------------------------------------------------------


class TestEnterAndExit:
    def test_buy_while_flat_enters_long_with_a_filled_market_order(self, db):
        config = make_config(db, commission_rate=D("0.001"))

        signal_id = store_signal(db, config, buy("10", "100"))
        status = execute_signal(db, signal_id, clock=clock)

        assert status == "executed"
        stored = signal_row(db, signal_id)
        assert stored["status"] == "executed"
        assert stored["processed_at"] is not None
        assert stored["outcome_message"].startswith("enter: entry buy 10 AAPL market filled @ 100")
        [order] = orders_of(db, signal_id)
        assert (order["intent"], order["client_order_id"]) == ("enter", f"vzx-{signal_id.hex}-en")
        assert (order["filled_qty"], order["filled_avg_price"]) == (D("10"), D("100"))
        assert position_of(db, config)["qty"] == D("10")
        assert summary(db, config)["cash"] == D("98999")  # 100000 - 1000 - 1

    def test_exit_while_flat_is_ignored(self, db):
        config = make_config(db)

        signal_id = store_signal(db, config, Signal(ticker="AAPL", action=Action.EXIT))
        status = execute_signal(db, signal_id, clock=clock)

        assert status == "ignored"
        stored = signal_row(db, signal_id)
        assert stored["status"] == "ignored"
        assert "nothing to exit" in stored["outcome_message"]
        assert orders_of(db, signal_id) == []

    def test_exit_closes_a_long_and_realises_pnl(self, db):
        config = make_config(db)
        run_signal(db, config, buy("10", "100"))

        signal_id = run_signal(db, config, Signal(ticker="AAPL", action=Action.EXIT, signal_price=D("112")))

        assert brief(orders_of(db, signal_id)) == [("exit", "sell", D("10"), "filled")]
        position = position_of(db, config)
        assert (position["qty"], position["realized_pnl"]) == (D("0"), D("120"))

    def test_short_then_cover_realises_the_short_pnl(self, db):
        config = make_config(db)
        run_signal(db, config, sell("10", "100", sentiment=Sentiment.SHORT))
        assert position_of(db, config)["qty"] == D("-10")

        run_signal(db, config, buy("10", "90", sentiment=Sentiment.FLAT))

        position = position_of(db, config)
        assert (position["qty"], position["realized_pnl"]) == (D("0"), D("100"))
        assert summary(db, config)["equity"] == D("100100")

    def test_reversal_long_to_short_in_one_signal_exits_then_enters_with_pnl(self, db):
        config = make_config(db, commission_rate=D("0.002"))
        run_signal(db, config, buy("10", "100", sentiment=Sentiment.LONG))

        # TradingView's contracts on a reversal include the closing ones: 20 = exit 10 + enter 10.
        signal_id = run_signal(db, config, sell("20", "110", sentiment=Sentiment.SHORT))

        assert brief(orders_of(db, signal_id)) == [
            ("exit", "sell", D("10"), "filled"),
            ("entry", "sell", D("10"), "filled"),
        ]
        assert {o["intent"] for o in orders_of(db, signal_id)} == {"reverse"}
        position = position_of(db, config)
        assert (position["qty"], position["avg_entry_price"]) == (D("-10"), D("110"))
        assert position["realized_pnl"] == D("100")  # (110 - 100) * 10
        # cash: 100000 - 1000 - 2 (buy) + 1100 - 2.2 (exit) + 1100 - 2.2 (short entry)
        account = summary(db, config)
        assert account["cash"] == D("101193.6")
        assert account["equity"] == D("100093.6")  # cash - 10 * 110


# --- orders that rest ----------------------------------------------------------------------


class TestRestingOrders:
    def test_a_later_signals_price_fills_a_resting_limit_before_planning(self, db):
        config = make_config(db)
        entry_id = run_signal(db, config, buy("10", "100", order_type=OrderType.LIMIT, limit_price=D("95")))
        assert brief(orders_of(db, entry_id)) == [("entry", "buy", D("10"), "accepted")]

        exit_id = run_signal(db, config, Signal(ticker="AAPL", action=Action.EXIT, signal_price=D("94")))

        assert orders_of(db, entry_id)[0]["status"] == "filled"
        assert orders_of(db, entry_id)[0]["filled_avg_price"] == D("94")
        assert brief(orders_of(db, exit_id)) == [("exit", "sell", D("10"), "filled")]
        assert f"vzx-{entry_id.hex}-en" in signal_row(db, exit_id)["outcome_message"]

    def test_bracket_entry_places_legs_and_a_later_price_hits_the_stop_loss(self, db):
        config = make_config(db)
        entry_id = run_signal(
            db,
            config,
            buy(
                "10",
                "100",
                take_profit=TakeProfit(limit_price=D("110")),
                stop_loss=StopLoss(stop_price=D("95")),
            ),
        )
        assert brief(orders_of(db, entry_id)) == [
            ("entry", "buy", D("10"), "filled"),
            ("take_profit", "sell", D("10"), "accepted"),
            ("stop_loss", "sell", D("10"), "accepted"),
        ]

        later_id = run_signal(db, config, Signal(ticker="AAPL", action=Action.EXIT, signal_price=D("94")))

        assert [o["status"] for o in orders_of(db, entry_id)] == ["filled", "canceled", "filled"]
        assert signal_row(db, later_id)["status"] == "ignored"  # the stop already closed it
        assert position_of(db, config)["realized_pnl"] == D("-60")

    def test_exit_cancels_the_open_legs_of_the_position(self, db):
        config = make_config(db)
        entry_id = run_signal(db, config, buy("10", "100", take_profit=TakeProfit(limit_price=D("120"))))

        run_signal(db, config, Signal(ticker="AAPL", action=Action.EXIT, signal_price=D("101")))

        take_profit = orders_of(db, entry_id)[1]
        assert (take_profit["status"], take_profit["status_code"]) == (
            "canceled",
            "canceled_by_signal",
        )


# --- refusals ------------------------------------------------------------------------------


class TestRefusals:
    def test_denial_is_stored_as_a_denied_order_with_its_reason(self, db):
        config = make_config(db, max_position_qty=D("5"))

        signal_id = run_signal(db, config, buy("10", "100"))

        [order] = orders_of(db, signal_id)
        assert (order["status"], order["status_code"]) == ("denied", "max_position_qty")
        assert "max_position_qty 5" in order["status_message"]
        assert order["submitted_at"] is None
        assert order_events(db, order["id"]) == ["OrderDenied"]
        stored = signal_row(db, signal_id)
        assert stored["status"] == "denied"
        assert "denied max_position_qty" in stored["outcome_message"]
        assert summary(db, config)["cash"] == D("100000")

    def test_denial_without_an_order_only_sets_the_signal_outcome(self, db):
        config = make_config(db, max_signal_age_seconds=60)

        signal_id = run_signal(db, config, buy("10", "100", signal_time=NOW - timedelta(hours=1)))

        assert orders_of(db, signal_id) == []
        stored = signal_row(db, signal_id)
        assert stored["status"] == "denied"
        assert "stale_signal" in stored["outcome_message"]

    def test_a_stale_signals_price_does_not_fill_resting_orders(self, db):
        config = make_config(db, max_signal_age_seconds=60)
        entry_id = run_signal(db, config, buy("10", "100", order_type=OrderType.LIMIT, limit_price=D("95")))

        run_signal(
            db,
            config,
            Signal(
                ticker="AAPL", action=Action.EXIT, signal_price=D("50"), signal_time=NOW - timedelta(hours=6)
            ),
        )

        assert orders_of(db, entry_id)[0]["status"] == "accepted"
        assert position_of(db, config)["last_price"] != D("50")

    def test_market_order_without_a_price_is_rejected_by_the_simulated_broker(self, db):
        config = make_config(db)

        signal_id = run_signal(db, config, buy("10", price=None))

        [order] = orders_of(db, signal_id)
        assert (order["status"], order["status_code"]) == ("rejected", "no_market_price")
        stored = signal_row(db, signal_id)
        assert stored["status"] == "rejected"  # the broker refused every order it was sent
        assert "no_market_price" in stored["outcome_message"]

    def test_alpaca_config_without_keys_fails_with_a_clear_message(self, db):
        config = make_config(db, broker="alpaca")

        signal_id = store_signal(db, config, buy("10"))
        status = execute_signal(db, signal_id, clock=clock)

        assert status == "failed"
        stored = signal_row(db, signal_id)
        assert stored["status"] == "failed"
        assert "has no Alpaca API keys" in stored["outcome_message"]
        assert f"/api/webhook-configs/{config['id']}/alpaca-credentials" in stored["outcome_message"]
        assert orders_of(db, signal_id) == []


# --- retries and idempotency ---------------------------------------------------------------


class TestOutcomeMessage:
    def test_the_outcome_tells_each_order_as_recorded_when_the_paper_exchange_refuses_an_entry(self, db):
        # The paper exchange rejects the bracket's entry (buying power); its legs are then closed
        # unsent (parent_not_filled). The outcome is made from the rows this run recorded, so a
        # step that changes an order without returning its row must make it read them again.
        config = make_config(db, starting_cash=D("500"))
        bracket = buy("10", take_profit=TakeProfit(limit_price=D(110)), stop_loss=StopLoss(stop_price=D(95)))
        signal_id = run_signal(db, config, bracket, expect="rejected")

        entry, take_profit, stop_loss = orders_of(db, signal_id)
        assert (entry["status"], entry["status_code"]) == ("rejected", "insufficient_buying_power")
        message = signal_row(db, signal_id)["outcome_message"]
        assert "entry buy 10 AAPL market rejected (insufficient_buying_power:" in message
        for leg in (take_profit, stop_loss):
            assert (leg["status"], leg["status_code"]) == ("canceled", "parent_not_filled")
            described = f"{leg['purpose']} sell 10 AAPL {leg['order_type']} canceled (parent_not_filled:"
            assert described in message, message


class TestIdempotency:
    def test_a_second_call_does_nothing(self, db):
        config = make_config(db)
        signal_id = run_signal(db, config, buy("10", "100"))

        status = execute_signal(db, signal_id, clock=clock)

        assert status == "executed"
        [order] = orders_of(db, signal_id)
        assert len(order_fills(db, order["id"])) == 1
        assert position_of(db, config)["qty"] == D("10")
        assert summary(db, config)["cash"] == D("99000")

    def test_an_unknown_signal_is_not_found(self, db):
        assert execute_signal(db, uuid.uuid4()) == "not_found"

    def test_a_run_that_finds_the_signal_finished_under_lock_leaves_no_trace(self, db, monkeypatch):
        # The first read (no lock) saw the signal runnable; by the time the plan locks it, another
        # run has finished it. The planning read marked the position with this price in the same
        # statement that locked it: that write must roll back with the rest.
        from viewzenix.repositories import execution_reads

        config = make_config(db)
        signal_id = run_signal(db, config, buy("10", "100"))

        def position() -> tuple[Any, ...]:
            with db.transaction() as conn:
                row = conn.execute(
                    "select last_price, last_price_at, version from public.positions"
                    " where config_id = %s and symbol = 'AAPL'",
                    (config["id"],),
                ).fetchone()
            return (row["last_price"], row["last_price_at"], row["version"])

        before = position()
        real = execution_reads.for_execution

        def stale(conn, sid):  # type: ignore[no-untyped-def]
            row, config_row, open_rows = real(conn, sid)
            return {**row, "status": "accepted", "recorded": False}, config_row, open_rows

        monkeypatch.setattr(execution_reads, "for_execution", stale)
        later = clock() + timedelta(minutes=1)
        status = execute_signal(db, signal_id, clock=lambda: later)

        assert status == "executed"  # what the locked read found
        assert position() == before

    @pytest.fixture()
    def failing_fills(self, db):
        """Make the database refuse fills of symbol FAILTEST (a fault after the first writes)."""
        with db.transaction() as conn:
            conn.execute(
                "create or replace function public.test_refuse_fill() returns trigger "
                "language plpgsql as $$ begin raise exception 'disk on fire'; end $$"
            )
            conn.execute("drop trigger if exists test_refuse_fill on public.fills")
            conn.execute(
                "create trigger test_refuse_fill before insert on public.fills for each row "
                "when (new.symbol = 'FAILTEST') execute function public.test_refuse_fill()"
            )
        yield
        with db.transaction() as conn:
            conn.execute("drop trigger if exists test_refuse_fill on public.fills")
            conn.execute("drop function public.test_refuse_fill()")

    def test_an_error_recording_the_fill_fails_the_signal_and_the_retry_records_it_once(
        self, db, failing_fills
    ):
        config = make_config(db)
        signal_id = store_signal(db, config, replace(buy("10", "100"), ticker="FAILTEST"), job_id=77)

        with pytest.raises(psycopg.errors.RaiseException, match="disk on fire"):
            execute_signal(db, signal_id, job_id=77, clock=clock)

        stored = signal_row(db, signal_id)
        assert stored["status"] == "failed"
        assert "disk on fire" in stored["outcome_message"]
        [order] = orders_of(db, signal_id)
        assert order["status"] == "pending_new"  # sent, the broker's answer not recorded
        assert position_of(db, config, "FAILTEST")["qty"] == D("0")
        with db.transaction() as conn:  # the fault is repaired before procrastinate retries
            conn.execute("drop trigger test_refuse_fill on public.fills")

        assert execute_signal(db, signal_id, job_id=77, clock=clock) == "executed"

        [order] = orders_of(db, signal_id)
        assert (order["status"], order["filled_qty"]) == ("filled", D("10"))
        with db.transaction() as conn:
            assert len(orders_repo.fills_for(conn, order["id"])) == 1
            paper_orders = conn.execute(
                "select count(*) as n from paper.orders where config_id = %s", (config["id"],)
            ).fetchone()["n"]
        assert paper_orders == 1  # one order at the broker: looked up, never sent twice
        assert position_of(db, config, "FAILTEST")["qty"] == D("10")

    def test_a_retry_of_its_own_job_runs_a_failed_signal_again(self, db):
        config = make_config(db)
        signal_id = store_signal(db, config, {"ticker": "AAPL", "quantity": "1"}, job_id=4243)
        with pytest.raises(ValueError, match="no action"):
            execute_signal(db, signal_id, job_id=4243, clock=clock)
        with db.transaction() as conn:  # whatever broke is fixed before the retry
            conn.execute(
                'update public.signals set signal = signal || \'{"action": "buy", '
                '"signal_price": "100"}\'::jsonb where id = %s',
                (signal_id,),
            )

        assert execute_signal(db, signal_id, job_id=None, clock=clock) == "failed"
        assert execute_signal(db, signal_id, job_id=999, clock=clock) == "failed"
        assert execute_signal(db, signal_id, job_id=4243, clock=clock) == "executed"
        assert brief(orders_of(db, signal_id)) == [("entry", "buy", D("1"), "filled")]


# --- through the job queue -----------------------------------------------------------------


def test_the_worker_job_executes_a_deferred_signal(db, database_url, jobs):
    config = make_config(db)
    signal_id = enqueue_signal(db, database_url, config, buy("10", "100"))

    jobs()

    assert signal_row(db, signal_id)["status"] == "executed"
    assert brief(orders_of(db, signal_id)) == [("entry", "buy", D("10"), "filled")]


# --- isolation -----------------------------------------------------------------------------


def test_two_configs_accounts_are_isolated(db):
    small = make_config(db, starting_cash=D("10000"))
    large = make_config(db, starting_cash=D("50000"))

    run_signal(db, small, buy("10", "100"))
    run_signal(db, large, sell("3", "100"))

    assert (summary(db, small)["cash"], position_of(db, small)["qty"]) == (D("9000"), D("10"))
    assert (summary(db, large)["cash"], position_of(db, large)["qty"]) == (D("50300"), D("-3"))


# --- the stored signal ---------------------------------------------------------------------


def test_a_stored_signal_reads_back_as_the_same_signal():
    signal = Signal(
        ticker="AAPL",
        action=Action.SELL,
        sentiment=Sentiment.SHORT,
        quantity=D("2.5"),
        order_type=OrderType.STOP_LIMIT,
        stop_price=D("99.5"),
        limit_price=D("99"),
        signal_price=D("100.25"),
        signal_time=NOW,
        take_profit=TakeProfit(percent=D("3")),
        stop_loss=StopLoss(type=OrderType.TRAILING_STOP, amount=D("1.5")),
        extras={"strategy": "x"},
        comment="hi",
    )

    assert signal_from_dict(signal_to_dict(signal)) == signal


def test_a_stored_signal_with_missing_keys_takes_the_defaults():
    assert signal_from_dict({"ticker": "AAPL", "action": "buy"}) == Signal("AAPL", Action.BUY)
