"""SIGTERM to a real worker process mid-job: the job finishes (or goes back), the process exits.

The job is made slow by a trigger that sleeps on the insert of its fill into our books — after
the paper broker filled the order, while the ledger records it. Within the bound
(``WORKER_SHUTDOWN_TIMEOUT_SECONDS``) the job finishes and is recorded ``succeeded``; past it,
the job is handed back to the queue (``todo``) and the next worker resumes it without a second
order. Either way no job is left ``doing``.
"""

from __future__ import annotations

import signal
from decimal import Decimal

import pytest
from builders import enqueue_signal, make_config, orders_of, signal_row
from worker_processes import start_worker, stop, wait_for

from viewzenix.domain.model import Action, Signal
from viewzenix.repositories import orders as orders_repo

pytestmark = pytest.mark.db
SYMBOL = "TERMTEST"


@pytest.fixture()
def slow_fills(db):
    """Return ``slow(seconds)``: fills of TERMTEST sleep that long on insert into our books."""

    def slow(seconds: float) -> None:
        with db.transaction() as conn:
            conn.execute(
                "create or replace function public.test_slow_fill_term() returns trigger "
                f"language plpgsql as $$ begin perform pg_sleep({float(seconds)}); return new; end $$"
            )
            conn.execute(
                "create or replace trigger test_slow_fill_term before insert on public.fills for each row "
                f"when (new.symbol = '{SYMBOL}') execute function public.test_slow_fill_term()"
            )

    yield slow
    with db.transaction() as conn:
        conn.execute("drop trigger if exists test_slow_fill_term on public.fills")
        conn.execute("drop function if exists public.test_slow_fill_term()")


def job_of(db, signal_id) -> dict:
    with db.transaction() as conn:
        return conn.execute(
            "select j.status, j.attempts from procrastinate_jobs j join public.signals s on s.job_id = j.id "
            "where s.id = %s",
            (signal_id,),
        ).fetchone()


def orders_at_broker(db, config) -> int:
    with db.transaction() as conn:
        return conn.execute(
            "select count(*) as n from paper.orders where config_id = %s", (config["id"],)
        ).fetchone()["n"]


def sleeping_in_the_ledger(db) -> bool:
    with db.transaction() as conn:
        return conn.execute(
            "select exists (select 1 from pg_stat_activity where wait_event = 'PgSleep') as found"
        ).fetchone()["found"]


def assert_one_order_filled_once(db, config, signal_id) -> None:
    assert orders_at_broker(db, config) == 1
    [order] = orders_of(db, signal_id)
    assert (order["status"], order["filled_qty"]) == ("filled", Decimal(10))
    with db.transaction() as conn:
        assert len(orders_repo.fills_for(conn, order["id"])) == 1


def test_sigterm_mid_job_lets_the_job_finish_then_the_worker_exits(db, database_url, slow_fills, tmp_path):
    slow_fills(3)
    config = make_config(db, name="sigterm")
    bought = Signal(ticker=SYMBOL, action=Action.BUY, quantity=Decimal(10), signal_price=Decimal(100))
    signal_id = enqueue_signal(db, database_url, config, bought)
    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        worker = start_worker(database_url, tmp_path, log, {"WORKER_SHUTDOWN_TIMEOUT_SECONDS": "15"})
        try:
            wait_for(lambda: sleeping_in_the_ledger(db), 30, "the job to be in the middle of recording")
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(60)
        finally:
            stop(worker)
    log_text = log_path.read_text()

    assert code == 0, log_text
    assert job_of(db, signal_id) == {"status": "succeeded", "attempts": 1}  # one run
    assert signal_row(db, signal_id)["status"] == "executed"
    assert_one_order_filled_once(db, config, signal_id)
    assert "stop requested" in log_text
    assert "handed back" not in log_text


def test_a_job_still_running_past_the_bound_goes_back_to_the_queue_and_runs_once_more_without_a_second_order(
    db, database_url, slow_fills, tmp_path
):
    slow_fills(120)
    config = make_config(db, name="sigterm-bound")
    bought = Signal(ticker=SYMBOL, action=Action.BUY, quantity=Decimal(10), signal_price=Decimal(100))
    signal_id = enqueue_signal(db, database_url, config, bought)
    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        first = start_worker(database_url, tmp_path, log, {"WORKER_SHUTDOWN_TIMEOUT_SECONDS": "1"})
        try:
            wait_for(lambda: sleeping_in_the_ledger(db), 30, "the job to be in the middle of recording")
            first.send_signal(signal.SIGTERM)
            code = first.wait(60)
        finally:
            stop(first)
        handed_back = job_of(db, signal_id)
        with db.transaction() as conn:  # the exited worker's backend still sleeps: end it
            conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where wait_event = 'PgSleep'"
            )
            conn.execute("drop trigger test_slow_fill_term on public.fills")

        second = start_worker(database_url, tmp_path, log)
        try:
            wait_for(lambda: signal_row(db, signal_id)["status"] == "executed", 60, "the job's second run")
        finally:
            second_code = stop(second)
    log_text = log_path.read_text()

    assert code == 0, log_text
    assert handed_back == {"status": "todo", "attempts": 1}
    assert "handed back to the queue" in log_text
    assert second_code == 0, log_text
    assert job_of(db, signal_id) == {"status": "succeeded", "attempts": 2}
    with db.transaction() as conn:
        runs = conn.execute(
            "select a.attempt, a.outcome, a.error_type, a.context->>'signal_id' as signal_id "
            "from private.job_attempts a join public.signals s on s.job_id = a.job_id "
            "where s.id = %s order by a.attempt",
            (signal_id,),
        ).fetchall()
    assert [tuple(r.values()) for r in runs] == [
        (1, "aborted", "WorkerShutdown", str(signal_id)),
        (2, "succeeded", None, str(signal_id)),
    ]
    assert_one_order_filled_once(db, config, signal_id)
