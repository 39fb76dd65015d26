"""The job queue: a finished locked job wakes the workers (see the lock-release migration)."""

from __future__ import annotations

import json
import uuid

import psycopg

from viewzenix.jobs import EXECUTE_SIGNAL, QUEUE, build_job_app, defer_execute_signal, signal_lock


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


def test_deferring_a_signal_writes_the_row_procrastinates_own_defer_writes(database_url, db):
    """defer_execute_signal goes through the job manager; the row must be what
    configure_task(...).defer() writes, so the worker runs it the same way."""
    job_app = build_job_app(database_url)
    signal_id, config_id = uuid.uuid4(), uuid.uuid4()
    with db.transaction() as conn:
        ours = defer_execute_signal(job_app, conn, signal_id=signal_id, config_id=config_id, symbol="SAME")
        theirs = job_app.configure_task(
            EXECUTE_SIGNAL, queue=QUEUE, lock=signal_lock(config_id, "SAME"), connection=conn
        ).defer(signal_id=str(signal_id))
        columns = "queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at, status, attempts"
        rows = conn.execute(
            f"select {columns} from procrastinate_jobs where id = any(%s) order by id", ([ours, theirs],)
        ).fetchall()
        conn.execute("delete from procrastinate_jobs where id = any(%s)", ([ours, theirs],))
    assert len(rows) == 2 and rows[0] == rows[1]
    assert rows[0]["args"] == {"signal_id": str(signal_id)}
