"""A real worker process killed (SIGKILL) after the broker took the order, before we recorded it.

The job is stalled by a trigger that sleeps on the fill insert — that is, after the paper broker
committed the fill, while the ledger records it. The worker is killed there; a second worker's
stalled-job recovery retries the job, which finds the order at the broker by client_order_id and
records it: one order at the broker, recorded once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from builders import enqueue_signal, make_config

from viewzenix.domain.model import Action, Signal
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import signals as signals_repo

pytestmark = pytest.mark.db
ROOT = Path(__file__).resolve().parents[2]
SYMBOL = "KILLTEST"


def start_worker(database_url: str, data_dir: Path, log) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        "WORKER_CONCURRENCY": "1",
        "STALLED_JOB_SECONDS": "2",
        "STALLED_JOBS_CRON": "* * * * * *",
        "RECONCILE_CRON": "",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "viewzenix.worker"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@pytest.fixture()
def slow_fills(db):
    """Fills of KILLTEST sleep 60 s on insert: the ledger's recording hangs, the broker's is done."""
    with db.transaction() as conn:
        conn.execute(
            "create or replace function public.test_slow_fill() returns trigger language plpgsql "
            "as $$ begin perform pg_sleep(60); return new; end $$"
        )
        conn.execute(
            "create trigger test_slow_fill before insert on public.fills for each row "
            f"when (new.symbol = '{SYMBOL}') execute function public.test_slow_fill()"
        )
    yield
    with db.transaction() as conn:
        conn.execute("drop trigger if exists test_slow_fill on public.fills")
        conn.execute("drop function if exists public.test_slow_fill()")


def test_a_worker_killed_between_submit_and_record_leaves_one_order_recorded_once(
    db, database_url, slow_fills, tmp_path
):
    config = make_config(db, name="kill")
    bought = Signal(ticker=SYMBOL, action=Action.BUY, quantity=Decimal(10), signal_price=Decimal(100))
    signal_id = enqueue_signal(db, database_url, config, bought)  # as intake: stored, its job queued

    def at_broker() -> int:
        with db.transaction() as conn:
            return conn.execute(
                "select count(*) as n from paper.orders where config_id = %s", (config["id"],)
            ).fetchone()["n"]

    def hanging_in_the_ledger() -> bool:
        with db.transaction() as conn:
            return conn.execute(
                "select exists (select 1 from pg_stat_activity where wait_event = 'PgSleep') as found"
            ).fetchone()["found"]

    log_path = tmp_path / "workers.log"
    log = log_path.open("ab")
    request_finalizer = log.close
    first = start_worker(database_url, tmp_path, log)
    try:
        wait_for(lambda: at_broker() == 1 and hanging_in_the_ledger(), 30, "the first worker to hang")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    with db.transaction() as conn:  # the killed worker's backend still sleeps: end it first
        conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where wait_event = 'PgSleep'")
    with db.transaction() as conn:
        conn.execute("drop trigger test_slow_fill on public.fills")
        assert signals_repo.get(conn, signal_id)["status"] == "submitting"
        [pending] = orders_repo.for_signal(conn, signal_id)
        assert pending["status"] == "pending_new"

    second = start_worker(database_url, tmp_path, log)
    try:

        def executed() -> bool:
            with db.transaction() as conn:
                return signals_repo.get(conn, signal_id)["status"] == "executed"

        wait_for(executed, 60, "the stalled job to be retried and the signal executed")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()

    assert at_broker() == 1
    with db.transaction() as conn:
        [order] = orders_repo.for_signal(conn, signal_id)
        fills = orders_repo.fills_for(conn, order["id"])
        position = conn.execute(
            "select qty from public.positions where config_id = %s and symbol = %s", (config["id"], SYMBOL)
        ).fetchone()["qty"]
    assert (order["status"], order["filled_qty"]) == ("filled", Decimal(10))
    assert len(fills) == 1
    assert position == Decimal(10)
    request_finalizer()
    assert "left doing by a dead worker" in log_path.read_text()
