"""Housekeeping: the hourly purges (expired keys and claims; finished jobs past the retention) and
the expiry of paper day orders at the session close. Each deletes or expires only what is due."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from builders import add_config, make_config, order_events, trade

from config import load_config
from viewzenix.domain.model import Action, OrderType, Signal, TimeInForce
from viewzenix.jobs import DELETE_FINISHED_JOBS, build_job_app
from viewzenix.jobs.tasks import register_tasks
from viewzenix.logs import JsonFormatter
from viewzenix.services.housekeeping import delete_finished_jobs, expire_day_orders, purge_expired

pytestmark = pytest.mark.db


def test_the_purge_deletes_only_expired_rows(db):
    with db.transaction() as conn:
        config = add_config(conn, name="h")
        user_id = config["user_id"]
        for key, expiry in (("old", "now() - interval '1 second'"), ("live", "now() + interval '1 hour'")):
            conn.execute(
                f"insert into public.signal_dedupe (config_id, dedupe_key, signal_id, expires_at) "
                f"values (%s, %s, %s, {expiry})",
                (config["id"], key, uuid.uuid4()),
            )
        for age in ("31 days", "1 day"):
            conn.execute(
                "insert into public.reconciliations (config_id, user_id, broker, started_at) "
                "values (%s, %s, 'simulated', now() - %s::interval)",
                (config["id"], user_id, age),
            )
        conn.execute("delete from private.idempotency_keys")  # other tests' rows: count only ours
        conn.execute(
            "insert into private.idempotency_keys (user_id, key, fingerprint, method, path, "
            "response_status, response_body, expires_at) values "
            "(%s, 'old', '\\x00', 'POST', '/api/x', 200, '\\x00', now() - interval '1 second'), "
            "(%s, 'live', '\\x00', 'POST', '/api/x', 200, '\\x00', now() + interval '1 hour')",
            (user_id, user_id),
        )

    counts = purge_expired(db)

    assert counts["idempotency_keys"] == 1
    assert counts["reconciliations"] >= 1
    assert counts["signal_dedupe"] >= 1
    with db.transaction() as conn:
        keys = conn.execute(
            "select dedupe_key from public.signal_dedupe where config_id = %s", (config["id"],)
        )
        assert [r["dedupe_key"] for r in keys] == ["live"]
        left = conn.execute("select key from private.idempotency_keys where user_id = %s", (user_id,))
        assert [r["key"] for r in left] == ["live"]
        runs = conn.execute(
            "select count(*) as n from public.reconciliations where config_id = %s", (config["id"],)
        ).fetchone()
        assert runs["n"] == 1


# --- finished jobs past the retention --------------------------------------------------------


def add_job(conn, status: str, ended_days_ago: float, *, periodic: bool = False) -> int:
    """A job in ``status`` whose events are all ``ended_days_ago`` days old; optionally a periodic run's."""
    job_id = conn.execute(
        "insert into procrastinate_jobs (queue_name, task_name, args, status) "
        "values ('maintenance', 'test.housekeeping', '{}', 'todo') returning id"
    ).fetchone()["id"]
    conn.execute("update procrastinate_jobs set status = %s where id = %s", (status, job_id))
    conn.execute(
        "update procrastinate_events set at = now() - make_interval(secs => %s) where job_id = %s",
        (ended_days_ago * 86400, job_id),
    )
    if periodic:
        conn.execute(
            "insert into procrastinate_periodic_defers (task_name, defer_timestamp, job_id, periodic_id) "
            "values ('test.housekeeping', "
            "extract(epoch from now() - make_interval(secs => %s))::bigint, %s, 't')",
            (ended_days_ago * 86400, job_id),
        )
    return job_id


def test_jobs_that_succeeded_or_were_cancelled_before_the_retention_are_deleted_with_their_events(db):
    with db.transaction() as conn:
        old_succeeded = add_job(conn, "succeeded", 15)
        old_periodic = add_job(conn, "succeeded", 15, periodic=True)
        old_cancelled = add_job(conn, "cancelled", 20)
        recent_succeeded = add_job(conn, "succeeded", 13)
        old_failed = add_job(conn, "failed", 30)
        old_todo = add_job(conn, "todo", 30)
        recent_periodic = add_job(conn, "succeeded", 1, periodic=True)
    mine = [
        old_succeeded,
        old_periodic,
        old_cancelled,
        recent_succeeded,
        old_failed,
        old_todo,
        recent_periodic,
    ]

    counts = delete_finished_jobs(db, 14, batch=2)  # batches of 2: the loop goes on until none is left

    with db.transaction() as conn:
        left = {
            r["id"] for r in conn.execute("select id from procrastinate_jobs where id = any(%s)", (mine,))
        }
        events = conn.execute(
            "select count(*) as n from procrastinate_events where job_id = any(%s)",
            ([old_succeeded, old_periodic, old_cancelled],),
        ).fetchone()["n"]
        defers = conn.execute(
            "select job_id from procrastinate_periodic_defers where task_name = 'test.housekeeping'"
        ).fetchall()
    # The old failed job left the queue for the archive (test_failed_jobs_past_the_retention_...).
    assert left == {recent_succeeded, old_todo, recent_periodic}
    assert events == 0
    assert [d["job_id"] for d in defers] == [recent_periodic]  # the old run's defer row went too
    assert counts["jobs"] >= 3 and counts["events"] >= 6 and counts["periodic_defers"] >= 1


def test_failed_jobs_past_the_retention_move_to_the_archive_with_their_attempts(db):
    with db.transaction() as conn:
        old_failed = add_job(conn, "failed", 30)
        old_aborted = add_job(conn, "aborted", 20)
        recent_failed = add_job(conn, "failed", 2)
        for attempt, (kind, text) in enumerate([("ValueError", "first"), ("KeyError", "second")], start=1):
            conn.execute(
                "insert into private.job_attempts (job_id, attempt, task_name, started_at, finished_at, "
                "duration_ms, outcome, error_type, error) values (%s, %s, 'test.housekeeping', "
                "now() - interval '30 days', now() - interval '30 days', 12.5, %s, %s, %s)",
                (old_failed, attempt, "retrying" if attempt == 1 else "failed", kind, text),
            )

    counts = delete_finished_jobs(db, 14, archive_retention_days=365)

    with db.transaction() as conn:
        left = {
            r["id"]
            for r in conn.execute(
                "select id from procrastinate_jobs where id = any(%s)",
                ([old_failed, old_aborted, recent_failed],),
            )
        }
        archived = {
            r["job_id"]: r
            for r in conn.execute(
                "select * from private.job_archive where job_id = any(%s)", ([old_failed, old_aborted],)
            )
        }
        attempts_left = conn.execute(
            "select count(*) as n from private.job_attempts where job_id = %s", (old_failed,)
        ).fetchone()["n"]
    assert left == {recent_failed}
    assert set(archived) == {old_failed, old_aborted}
    row = archived[old_failed]
    assert (row["status"], row["task_name"], row["last_error"]) == (
        "failed",
        "test.housekeeping",
        "KeyError: second",
    )
    assert [(a["attempt"], a["outcome"], a["error"]) for a in row["attempt_history"]] == [
        (1, "retrying", "first"),
        (2, "failed", "second"),
    ]
    assert row["events"][0]["type"] == "deferred"
    assert attempts_left == 0  # the live attempt rows went with the job
    assert counts["archived"] >= 2


def test_archived_jobs_are_purged_after_the_archive_retention(db):
    with db.transaction() as conn:
        job_id = add_job(conn, "failed", 30)
    delete_finished_jobs(db, 14, archive_retention_days=365)
    with db.transaction() as conn:
        conn.execute(
            "update private.job_archive set archived_at = now() - interval '400 days' where job_id = %s",
            (job_id,),
        )
    counts = delete_finished_jobs(db, 14, archive_retention_days=365)
    with db.transaction() as conn:
        found = conn.execute("select 1 from private.job_archive where job_id = %s", (job_id,)).fetchone()
    assert found is None and counts["archive_purged"] >= 1


def test_the_periodic_task_logs_one_line_with_what_it_deleted(db, database_url, caplog):
    with db.transaction() as conn:
        add_job(conn, "succeeded", 40)
    job_app = build_job_app(database_url)
    register_tasks(job_app, db, load_config({"JOB_RETENTION_DAYS": "30"}))

    with caplog.at_level(logging.INFO, logger="viewzenix.jobs.tasks"):
        job_app.tasks[DELETE_FINISHED_JOBS].func(timestamp=0)

    [record] = [r for r in caplog.records if getattr(r, "action", None) == "finished_jobs_deleted"]
    assert record.counts["jobs"] >= 1
    assert record.counts["retention_days"] == 30
    line = json.loads(JsonFormatter().format(record))
    assert line["action"] == "finished_jobs_deleted"
    assert line["counts"] == record.counts
    assert line["message"].startswith(f"deleted {record.counts['jobs']} finished job(s) older than 30 days")


# --- paper day orders at the session close ---------------------------------------------------


def resting_buy(symbol: str, time_in_force: TimeInForce) -> Signal:
    return Signal(
        ticker=symbol,
        action=Action.BUY,
        quantity=Decimal(10),
        order_type=OrderType.LIMIT,
        limit_price=Decimal(90),
        time_in_force=time_in_force,
        signal_price=Decimal(100),
    )


def test_resting_day_orders_expire_at_the_session_close_through_the_ledger(db):
    config = make_config(db, name="day-expiry")  # NOW: Monday 10:00 New York
    day = trade(db, config, resting_buy("AAPL", TimeInForce.DAY))
    gtc = trade(db, config, resting_buy("MSFT", TimeInForce.GTC))
    crypto = trade(db, config, resting_buy("BTCUSD", TimeInForce.DAY))
    assert {day["status"], gtc["status"], crypto["status"]} == {"accepted"}

    before_close = expire_day_orders(
        db, now=datetime(2026, 11, 23, 20, 59, tzinfo=UTC), config_id=config["id"]
    )
    after_close = expire_day_orders(db, now=datetime(2026, 11, 23, 21, 5, tzinfo=UTC), config_id=config["id"])
    again = expire_day_orders(db, now=datetime(2026, 11, 23, 21, 10, tzinfo=UTC), config_id=config["id"])

    assert before_close["orders_expired"] == 0  # the last close then was Friday's
    assert after_close == {
        "session_close": datetime(2026, 11, 23, 21, 0, tzinfo=UTC),
        "configs": 1,
        "orders_expired": 1,
        "orders_canceled": 0,
    }
    assert again["orders_expired"] == 0
    with db.transaction() as conn:
        ours = {
            r["symbol"]: r
            for r in conn.execute("select * from public.orders where config_id = %s", (config["id"],))
        }
        theirs = {
            r["symbol"]: r["status"]
            for r in conn.execute(
                "select symbol, status from paper.orders where config_id = %s", (config["id"],)
            )
        }
    assert (ours["AAPL"]["status"], ours["AAPL"]["status_code"]) == ("expired", "day_order_expired")
    assert ours["AAPL"]["status_message"] == "day order expired: at the session close"
    assert order_events(db, ours["AAPL"]["id"])[-1] == "OrderExpired"
    # TradingView's BTCUSD is recorded under its canonical symbol BTC/USD (issue 15)
    assert (ours["MSFT"]["status"], ours["BTC/USD"]["status"]) == ("accepted", "accepted")
    assert theirs == {"AAPL": "expired", "MSFT": "accepted", "BTC/USD": "accepted"}
