"""The daily loss limit in the execution job (issue 17, item 3): our books' P&L since the
session's start, entries denied ``daily_loss_limit`` past the limit, exits always run, one breach
recorded per session, the next session trades again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from builders import NOW, clock, make_config, orders_of, run_signal, signal_row

from viewzenix.domain.model import Action, Sentiment, Signal
from viewzenix.repositories import loss_limits as loss_limits_repo
from viewzenix.services import loss_limit as loss_limit_service
from viewzenix.services.execution import execute_signal

pytestmark = pytest.mark.db

D = Decimal
TUESDAY = NOW + timedelta(days=1)  # Tuesday 10:00 New York: the next session


def buy(qty: str, price: str, ticker: str = "AAPL", **fields: Any) -> Signal:
    return Signal(ticker=ticker, action=Action.BUY, quantity=D(qty), signal_price=D(price), **fields)


def sell(qty: str, price: str, ticker: str = "AAPL", **fields: Any) -> Signal:
    return Signal(ticker=ticker, action=Action.SELL, quantity=D(qty), signal_price=D(price), **fields)


def breaches(db, config) -> list[dict[str, Any]]:
    with db.transaction() as conn:
        return conn.execute(
            "select * from public.loss_limit_breaches where config_id = %s order by breached_at",
            (config["id"],),
        ).fetchall()


def lose_150(db, config, at=clock) -> None:
    """Buy 10 AAPL @ 100, sell them @ 85: a realised loss of 150."""
    run_signal(db, config, buy("10", "100"), clock=at, expect="executed")
    run_signal(db, config, sell("10", "85", sentiment=Sentiment.FLAT), clock=at, expect="executed")


class TestRealised:
    def test_past_the_limit_entries_are_denied_with_the_code_and_the_numbers(self, db):
        config = make_config(db, daily_loss_limit=D(100))
        lose_150(db, config)

        signal_id = run_signal(db, config, buy("5", "90"), expect="denied")

        [order] = orders_of(db, signal_id)
        assert (order["status"], order["status_code"], order["purpose"]) == (
            "denied",
            "daily_loss_limit",
            "entry",
        )
        assert "daily loss limit 100.00 reached" in order["status_message"]
        assert "is -150.00" in order["status_message"]
        assert "daily_loss_limit" in signal_row(db, signal_id)["outcome_message"]
        [breach] = breaches(db, config)
        assert (breach["pnl"], breach["loss_limit"], breach["signal_id"]) == (D(-150), D(100), signal_id)
        assert breach["session_start"] == datetime(2026, 11, 20, 21, 0, tzinfo=UTC)  # Friday's close
        assert breach["session_end"] == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # Monday's close

    def test_under_the_limit_entries_run(self, db):
        config = make_config(db, daily_loss_limit=D(200))
        lose_150(db, config)
        run_signal(db, config, buy("5", "90"), expect="executed")
        assert breaches(db, config) == []

    def test_no_limit_means_no_check(self, db):
        config = make_config(db)
        lose_150(db, config)
        run_signal(db, config, buy("5", "90"), expect="executed")

    def test_exits_always_run_past_the_limit(self, db):
        config = make_config(db, daily_loss_limit=D(100), allow_short=True)
        lose_150(db, config)
        run_signal(db, config, buy("5", "90"), expect="denied")  # the breach is recorded
        # a short entry is an entry too
        run_signal(db, config, sell("5", "90", sentiment=Sentiment.SHORT), expect="denied")

    def test_a_breach_is_recorded_once_per_session_and_the_next_session_trades_again(self, db):
        config = make_config(db, daily_loss_limit=D(100))
        lose_150(db, config)
        run_signal(db, config, buy("5", "90"), expect="denied")
        run_signal(db, config, buy("5", "90"), expect="denied")
        assert len(breaches(db, config)) == 1

        run_signal(db, config, buy("5", "90"), clock=lambda: TUESDAY, expect="executed")
        assert len(breaches(db, config)) == 1


class TestUnrealised:
    def test_an_open_position_marked_down_by_the_alerts_price_reaches_the_limit(self, db):
        config = make_config(db, daily_loss_limit=D(100))
        run_signal(db, config, buy("10", "100"), expect="executed")
        # the next alert marks AAPL at 85 before planning: unrealised -150
        signal_id = run_signal(db, config, buy("1", "85"), expect="denied")
        [order] = orders_of(db, signal_id)
        assert order["status_code"] == "daily_loss_limit"
        assert "is -150.00" in order["status_message"]

    def test_an_exit_of_the_losing_position_still_runs(self, db):
        config = make_config(db, daily_loss_limit=D(100))
        run_signal(db, config, buy("10", "100"), expect="executed")
        run_signal(db, config, buy("1", "85"), expect="denied")
        exit_id = run_signal(
            db, config, Signal(ticker="AAPL", action=Action.EXIT, signal_price=D("84")), expect="executed"
        )
        [order] = orders_of(db, exit_id)
        assert (order["purpose"], order["status"]) == ("exit", "filled")


class TestCrypto:
    def test_crypto_sessions_reset_at_utc_midnight(self, db):
        config = make_config(db, daily_loss_limit=D(100))
        late = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
        run_signal(db, config, buy("1", "50000", "BTCUSD"), clock=lambda: late, expect="executed")
        run_signal(db, config, sell("1", "49800", "BTCUSD", sentiment=Sentiment.FLAT), clock=lambda: late)
        run_signal(db, config, buy("1", "49800", "BTCUSD"), clock=lambda: late, expect="denied")
        [breach] = breaches(db, config)
        assert breach["session_start"] == datetime(2026, 11, 23, tzinfo=UTC)
        after_midnight = datetime(2026, 11, 24, 0, 30, tzinfo=UTC)
        run_signal(db, config, buy("1", "49800", "BTCUSD"), clock=lambda: after_midnight, expect="executed")


class TestCost:
    """The execution job's extra work: none when the limit is off or for an exit, one query else."""

    @pytest.fixture()
    def counted(self, monkeypatch):
        calls: list[Any] = []
        real = loss_limits_repo.session_day

        def counting(conn, config_id, start):
            calls.append(config_id)
            return real(conn, config_id, start)

        monkeypatch.setattr(loss_limits_repo, "session_day", counting)
        return calls

    def test_no_query_when_off(self, db, counted):
        config = make_config(db)
        run_signal(db, config, buy("1", "100"), expect="executed")
        assert counted == []

    def test_no_query_for_an_exit(self, db, counted):
        config = make_config(db, daily_loss_limit=D(100))
        run_signal(db, config, buy("1", "100"), expect="executed")
        counted.clear()
        run_signal(
            db, config, Signal(ticker="AAPL", action=Action.EXIT, signal_price=D(100)), expect="executed"
        )
        assert counted == []

    def test_once_recorded_a_breach_is_not_written_again(self, db, monkeypatch):
        writes: list[Any] = []
        real = loss_limits_repo.record_breach
        monkeypatch.setattr(
            loss_limits_repo, "record_breach", lambda conn, **kw: writes.append(kw) or real(conn, **kw)
        )
        config = make_config(db, daily_loss_limit=D(100))
        lose_150(db, config)
        run_signal(db, config, buy("5", "90"), expect="denied")
        run_signal(db, config, buy("5", "90"), expect="denied")
        assert len(writes) == 1

    def test_one_query_for_an_entry(self, db, counted):
        config = make_config(db, daily_loss_limit=D(100))
        run_signal(db, config, buy("1", "100"), expect="executed")
        assert counted == [config["id"]]


class TestFlattenHook:
    def test_flatten_is_due_once_on_the_first_breach_when_the_config_asks_for_it(self, db):
        config = make_config(db, daily_loss_limit=D(100), flatten_on_loss_limit=True)
        lose_150(db, config)
        from viewzenix.repositories.webhook_configs import get as get_config

        outcomes = []
        for _ in range(2):
            plan = _entry_plan(config)
            with db.transaction() as conn:
                row = get_config(conn, config["id"])
                outcomes.append(
                    loss_limit_service.enforce(conn, row, plan, symbol="AAPL", signal_id=None, now=NOW)
                )
        assert [o.flatten_due for o in outcomes] == [True, False]
        assert [d.code for d in outcomes[0].plan.denials] == ["daily_loss_limit"]

    def test_flatten_is_not_due_without_the_setting(self, db):
        config = make_config(db, daily_loss_limit=D(100))
        lose_150(db, config)
        from viewzenix.repositories.webhook_configs import get as get_config

        with db.transaction() as conn:
            outcome = loss_limit_service.enforce(
                conn,
                get_config(conn, config["id"]),
                _entry_plan(config),
                symbol="AAPL",
                signal_id=None,
                now=NOW,
            )
        assert outcome.first_breach is not None and not outcome.flatten_due


def _entry_plan(config):
    import uuid

    from viewzenix.domain.engine import plan_signal
    from viewzenix.domain.model import AccountState, PositionState, TradingSettings

    return plan_signal(
        signal=buy("1", "90"),
        signal_id=uuid.uuid4(),
        position=PositionState("AAPL"),
        account=AccountState(cash=D(0), equity=D(0)),
        open_orders=[],
        settings=TradingSettings(),
        now=NOW,
    )


def test_the_job_runs_through_the_real_task_too(db):
    """execute_signal with a job id (as the worker calls it) applies the limit the same way."""
    config = make_config(db, daily_loss_limit=D(100))
    lose_150(db, config)
    from builders import store_signal

    signal_id = store_signal(db, config, buy("5", "90"))
    assert execute_signal(db, signal_id, job_id=None, clock=clock) == "denied"
