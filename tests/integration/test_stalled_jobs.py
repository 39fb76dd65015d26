"""The stalled-job sweep: retry a dead worker's job, but give up after the last attempt.

The sweep is the worker's periodic task; here it runs on real procrastinate jobs in our real
Postgres, left ``doing`` by a worker row whose heartbeat stopped an hour ago.
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from builders import enqueue_signal, make_config, signals_of_status

from config import load_config
from viewzenix.db import Database
from viewzenix.domain.model import Action, Signal
from viewzenix.jobs import RETRY_STALLED_JOBS, build_job_app
from viewzenix.jobs.retry import SIGNAL_RETRY
from viewzenix.jobs.tasks import register_tasks

pytestmark = pytest.mark.db


def sweep(database_url: str, db: Database) -> None:
    job_app = build_job_app(database_url)
    register_tasks(job_app, db, load_config({"STALLED_JOB_SECONDS": "30"}))

    async def run() -> None:
        async with job_app.open_async():
            context = SimpleNamespace(app=job_app, worker_name="sweeper")
            await job_app.tasks[RETRY_STALLED_JOBS].func(context, timestamp=0)

    asyncio.run(run())


def stall(db: Database, signal_id: uuid.UUID, attempts: int) -> int:
    """Put the signal's job in ``doing`` on a worker dead for an hour, after ``attempts`` runs."""
    with db.transaction() as conn:
        worker_id = conn.execute(
            "insert into procrastinate_workers (last_heartbeat) values (now() - interval '1 hour') "
            "returning id"
        ).fetchone()["id"]
        return conn.execute(
            "update procrastinate_jobs j set status = 'doing', worker_id = %s, attempts = %s "
            "from public.signals s where s.id = %s and j.id = s.job_id returning j.id",
            (worker_id, attempts, signal_id),
        ).fetchone()["id"]


def job_row(db: Database, job_id: int) -> dict:
    with db.transaction() as conn:
        return conn.execute(
            "select status::text as status, attempts from procrastinate_jobs where id = %s", (job_id,)
        ).fetchone()


def attempts_of(db: Database, job_id: int) -> list[tuple]:
    with db.transaction() as conn:
        rows = conn.execute(
            "select attempt, outcome, error_type, worker, context from private.job_attempts "
            "where job_id = %s order by attempt",
            (job_id,),
        ).fetchall()
    return [(r["attempt"], r["outcome"], r["error_type"], r["worker"], r["context"]) for r in rows]


def test_a_dead_workers_job_is_retried_and_its_lost_run_recorded(db, database_url):
    config = make_config(db)
    signal_id = enqueue_signal(db, database_url, config, Signal(ticker="AAPL", action=Action.BUY))
    job_id = stall(db, signal_id, attempts=0)

    sweep(database_url, db)

    assert job_row(db, job_id) == {"status": "todo", "attempts": 1}
    assert attempts_of(db, job_id) == [
        (1, "worker_died", "WorkerDied", "sweeper", {"signal_id": str(signal_id)})
    ]
    assert signals_of_status(db, config, "accepted") == [signal_id]


def test_a_job_that_killed_its_worker_on_its_last_attempt_is_failed_with_its_signal(db, database_url):
    config = make_config(db)
    signal_id = enqueue_signal(db, database_url, config, Signal(ticker="AAPL", action=Action.BUY))
    last = SIGNAL_RETRY.max_attempts - 1
    job_id = stall(db, signal_id, attempts=last)

    sweep(database_url, db)

    assert job_row(db, job_id)["status"] == "failed"
    assert [a[:2] for a in attempts_of(db, job_id)] == [(SIGNAL_RETRY.max_attempts, "worker_died")]
    assert signals_of_status(db, config, "failed") == [signal_id]


def test_a_worker_that_lost_the_database_hands_its_running_job_back_with_the_run_recorded(db, database_url):
    from viewzenix.jobs import graceful

    config = make_config(db)
    signal_id = enqueue_signal(db, database_url, config, Signal(ticker="AAPL", action=Action.BUY))
    job_id = stall(db, signal_id, attempts=0)
    with db.transaction() as conn:
        worker_id = conn.execute(
            "select worker_id from procrastinate_jobs where id = %s", (job_id,)
        ).fetchone()
    seen = graceful._WorkerSeen()
    seen.worker_id, seen.worker_name = worker_id["worker_id"], "lost-worker"
    job_app = build_job_app(database_url)

    async def hand_back() -> list[int]:
        async with job_app.open_async():
            return await graceful._hand_back(job_app, seen, "DatabaseLost", graceful.LOST_DATABASE)

    assert asyncio.run(hand_back()) == [job_id]
    assert job_row(db, job_id) == {"status": "todo", "attempts": 1}
    assert attempts_of(db, job_id) == [
        (1, "aborted", "DatabaseLost", "lost-worker", {"signal_id": str(signal_id)})
    ]
