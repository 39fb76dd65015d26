"""Every run of a job is recorded with its outcome, duration and error text (private.job_attempts).

A real procrastinate worker (in-process, ``wait=False``) runs jobs on our real Postgres with the
same middleware as ``python -m viewzenix.worker``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict
from datetime import UTC, datetime

import psycopg
import pytest
from builders import enqueue_signal, make_config, worker_config
from procrastinate.jobs import Job, Status

from viewzenix.brokers.base import BrokerUnavailable
from viewzenix.db import Database
from viewzenix.domain.model import Action, Signal
from viewzenix.jobs import EXECUTE_SIGNAL, build_job_app
from viewzenix.jobs.attempts import Attempt, AttemptRecorder
from viewzenix.jobs.retry import Backoff
from viewzenix.jobs.tasks import register_tasks

pytestmark = pytest.mark.db


def worker_app(database_url: str, db: Database):
    job_app = build_job_app(database_url)
    register_tasks(job_app, db, worker_config())

    @job_app.task(
        name="test.broker_down", queue="test", retry=Backoff(max_attempts=3, base_seconds=60, cap_seconds=60)
    )
    def broker_down(order_id: str) -> None:
        raise BrokerUnavailable("the broker answered 503 Service Unavailable")

    @job_app.task(
        name="test.bug", queue="test", retry=Backoff(max_attempts=3, base_seconds=60, cap_seconds=60)
    )
    def bug(order_id: str) -> None:
        raise ValueError("quantity must be positive")

    return job_app


def run_once(job_app, queues=None) -> list[Attempt]:
    seen: list[Attempt] = []
    job_app.run_worker(
        wait=False,
        install_signal_handlers=False,
        listen_notify=False,
        queues=queues,
        worker_middleware=[AttemptRecorder(on_attempt=seen.append)],
    )
    return seen


def attempts_of(db: Database, job_id: int) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            "select attempt, task_name, outcome, error_type, error, traceback, duration_ms, context, "
            "finished_at >= started_at as ordered from private.job_attempts where job_id = %s "
            "order by attempt",
            (job_id,),
        ).fetchall()


def job_of(db: Database, job_id: int) -> dict:
    with db.transaction() as conn:
        return conn.execute(
            "select status::text as status, attempts, scheduled_at > now() + interval '20 seconds' as later "
            "from procrastinate_jobs where id = %s",
            (job_id,),
        ).fetchone()


def test_a_transient_failure_is_recorded_with_its_error_text_and_retried_later(db, database_url):
    job_app = worker_app(database_url, db)
    with job_app.open():
        job_id = job_app.tasks["test.broker_down"].defer(order_id="o-1")

    seen = run_once(job_app, queues=["test"])

    [row] = attempts_of(db, job_id)
    assert (row["attempt"], row["task_name"], row["outcome"]) == (1, "test.broker_down", "retrying")
    assert (row["error_type"], row["error"]) == (
        "BrokerUnavailable",
        "the broker answered 503 Service Unavailable",
    )
    assert "raise BrokerUnavailable" in row["traceback"]
    assert row["context"] == {"order_id": "o-1"} and row["ordered"] and row["duration_ms"] >= 0
    assert job_of(db, job_id) == {"status": "todo", "attempts": 1, "later": True}
    assert [(a.job_id, a.outcome) for a in seen] == [(job_id, "retrying")]


def test_a_bug_fails_the_job_at_once_with_its_error_text(db, database_url):
    job_app = worker_app(database_url, db)
    with job_app.open():
        job_id = job_app.tasks["test.bug"].defer(order_id="o-2")

    run_once(job_app, queues=["test"])

    [row] = attempts_of(db, job_id)
    assert (row["outcome"], row["error_type"], row["error"]) == (
        "failed",
        "ValueError",
        "quantity must be positive",
    )
    assert job_of(db, job_id)["status"] == "failed"


def test_why_did_this_fail_is_one_query(db, database_url):
    job_app = worker_app(database_url, db)
    with job_app.open():
        job_id = job_app.tasks["test.bug"].defer(order_id="o-3")
    run_once(job_app, queues=["test"])

    with db.transaction() as conn:
        why = conn.execute(
            "select a.error from procrastinate_jobs j join private.job_attempts a on a.job_id = j.id "
            "where j.id = %s and j.status = 'failed' order by a.attempt desc limit 1",
            (job_id,),
        ).fetchone()
    assert why["error"] == "quantity must be positive"


def test_a_signals_run_records_the_signal_and_its_outcome(db, database_url):
    config = make_config(db, name="attempts")
    signal_id = enqueue_signal(
        db, database_url, config, Signal(ticker="ATTM", action=Action.BUY, quantity=1, signal_price=10)
    )
    job_app = worker_app(database_url, db)

    run_once(job_app)

    with db.transaction() as conn:
        job_id = conn.execute("select job_id from public.signals where id = %s", (signal_id,)).fetchone()[
            "job_id"
        ]
    [row] = attempts_of(db, job_id)
    assert (row["outcome"], row["error"]) == ("succeeded", None)
    assert row["context"] == {"signal_id": str(signal_id), "signal_status": "executed"}


def test_a_succeeded_run_is_recorded_by_the_statement_that_finishes_its_job(db, database_url):
    """One statement, one transaction: the record and the job's 'succeeded' event share their xmin."""
    config = make_config(db, name="attempts-with-finish")
    enqueue_signal(
        db, database_url, config, Signal(ticker="ATTF", action=Action.BUY, quantity=1, signal_price=10)
    )
    job_app = worker_app(database_url, db)

    [attempt] = [a for a in run_once(job_app) if a.task_name == EXECUTE_SIGNAL]

    with db.transaction() as conn:
        row = conn.execute(
            # procrastinate's 'succeeded' event is inserted by the finish's own transaction (its
            # trigger); the job's row itself is updated again when the worker unregisters.
            "select j.status::text as status, a.outcome, a.xmin::text = e.xmin::text as same_transaction "
            "from procrastinate_jobs j join private.job_attempts a on a.job_id = j.id "
            "join procrastinate_events e on e.job_id = j.id and e.type = 'succeeded' where j.id = %s",
            (attempt.job_id,),
        ).fetchone()
    assert row == {"status": "succeeded", "outcome": "succeeded", "same_transaction": True}
    assert job_app.job_manager._attempts == {}  # handed over, then written: nothing left behind


async def _defer_and_fetch(job_app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Defer a test.bug job on a queue of its own and fetch it (now ``doing``): (job id, worker id)."""
    manager = job_app.job_manager
    queue = f"test-{uuid.uuid4().hex[:8]}"  # no other test's job is fetched instead
    job = await manager.defer_job_async(
        Job(queue=queue, lock=None, queueing_lock=None, task_name="test.bug", task_kwargs={"order_id": "o-9"})
    )
    worker_id = await manager.register_worker()
    fetched = await manager.fetch_job(queues=[queue], worker_id=worker_id)
    assert fetched is not None and fetched.id == job.id
    return job.id, worker_id


def _attempt_row(job_id: int, **changes) -> dict:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    attempt = Attempt(
        job_id=job_id,
        attempt=1,
        task_name="test.bug",
        worker="w",
        started_at=now,
        finished_at=now,
        duration_ms=1.0,
        outcome="succeeded",
    )
    return {**asdict(attempt), **changes}


def test_a_record_that_cannot_be_written_does_not_keep_its_job_doing(db, database_url, caplog):
    """The combined statement fails (a negative duration breaks the record's check): the job is
    finished alone, so it cannot sit in ``doing`` under a live worker, and the failure is logged."""
    job_app = worker_app(database_url, db)

    async def run() -> int:
        async with job_app.open_async():
            job_id, _ = await _defer_and_fetch(job_app)
            job_app.job_manager.store_with_finish(job_id, _attempt_row(job_id, duration_ms=-1.0))
            await job_app.job_manager.finish_job_by_id_async(
                job_id, status=Status.SUCCEEDED, delete_job=False
            )
            return job_id

    job_id = asyncio.run(run())
    assert job_of(db, job_id)["status"] == "succeeded"
    assert attempts_of(db, job_id) == []
    assert "finish with its attempt record failed" in caplog.text
    assert "could not record job" in caplog.text
    assert job_app.job_manager._attempts == {}


def test_a_handed_over_record_of_a_job_that_ends_otherwise_is_stored_on_its_own(db, database_url):
    """Only a job marked succeeded gets its record from the combined statement; a retry or a
    failure stores the handed-over record first, and nothing is left behind."""
    job_app = worker_app(database_url, db)

    async def run() -> tuple[int, int]:
        async with job_app.open_async():
            manager = job_app.job_manager
            failed, _ = await _defer_and_fetch(job_app)
            manager.store_with_finish(failed, _attempt_row(failed, outcome="failed"))
            await manager.finish_job_by_id_async(failed, status=Status.FAILED, delete_job=False)
            retried, _ = await _defer_and_fetch(job_app)
            manager.store_with_finish(retried, _attempt_row(retried, outcome="retrying"))
            await manager.retry_job_by_id_async(retried, retry_at=datetime.now(UTC))
            return failed, retried

    failed, retried = asyncio.run(run())
    assert (job_of(db, failed)["status"], [r["outcome"] for r in attempts_of(db, failed)]) == (
        "failed",
        ["failed"],
    )
    assert (job_of(db, retried)["status"], [r["outcome"] for r in attempts_of(db, retried)]) == (
        "todo",
        ["retrying"],
    )
    assert job_app.job_manager._attempts == {}


def test_a_finish_whose_connection_is_cut_is_sent_once_more(db, database_url, caplog):
    """The finish waits on a lock, its backend is terminated (a real cut, not a fake): the job is
    still marked succeeded, by a second try on a new connection, instead of staying ``doing``."""
    job_app = worker_app(database_url, db)

    async def waiting_on(watch, holder_pid: int, other_than: int = 0) -> int:  # type: ignore[no-untyped-def]
        for _ in range(250):
            row = await (
                await watch.execute(
                    "select pid from pg_stat_activity where datname = current_database() "
                    "and %s = any(pg_blocking_pids(pid)) and pid <> %s",
                    (holder_pid, other_than),
                )
            ).fetchone()
            if row:
                return row[0]
            await asyncio.sleep(0.02)
        raise AssertionError("no finish waited on the lock")

    async def run() -> tuple[int, int, int]:
        async with job_app.open_async():
            job_id, _ = await _defer_and_fetch(job_app)
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watch:
                async with await psycopg.AsyncConnection.connect(database_url) as holder:
                    await holder.execute(
                        "select 1 from procrastinate_jobs where id = %s for update", (job_id,)
                    )
                    finish = asyncio.create_task(
                        job_app.job_manager.finish_job_by_id_async(
                            job_id, status=Status.SUCCEEDED, delete_job=False
                        )
                    )
                    first = await waiting_on(watch, holder.info.backend_pid)
                    await watch.execute("select pg_terminate_backend(%s, 5000)", (first,))
                    second = await waiting_on(watch, holder.info.backend_pid, other_than=first)
                    assert not finish.done()
                    await holder.commit()
                    await asyncio.wait_for(finish, timeout=10)
            return job_id, first, second

    job_id, first, second = asyncio.run(run())
    assert first != second
    assert job_of(db, job_id)["status"] == "succeeded"
    assert "its finish lost the database connection; sending it once more" in caplog.text
