"""The job queue: a finished locked job wakes the workers (see the lock-release migration)."""

from __future__ import annotations

import json
import uuid

import psycopg

from viewzenix.jobs import build_job_app, defer_execute_signal


def _finish(db, job_id: int) -> None:
    with db.transaction() as conn:
        conn.execute("update procrastinate_jobs set status = 'doing' where id = %s", (job_id,))
    with db.transaction() as conn:
        conn.execute("update procrastinate_jobs set status = 'succeeded' where id = %s", (job_id,))


def test_finishing_a_locked_job_notifies_workers(database_url, db):
    job_app = build_job_app(database_url)
    with db.transaction() as conn:
        job_id = defer_execute_signal(
            job_app, conn, signal_id=uuid.uuid4(), config_id=uuid.uuid4(), symbol="WAKE"
        )
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("listen procrastinate_any_queue_v1")
        _finish(db, job_id)
        payloads = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=1)]
    assert payloads == [{"type": "job_inserted", "job_id": job_id}]
    with db.transaction() as conn:
        conn.execute("delete from procrastinate_jobs where id = %s", (job_id,))
