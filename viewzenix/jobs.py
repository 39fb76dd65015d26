"""The durable job queue (procrastinate on our own Postgres).

The web process only defers jobs, inside the intake transaction (``defer_execute_signal``); the
worker process (``python -m viewzenix.worker``) registers the task bodies and runs them. Jobs
for one (config, symbol) share a procrastinate ``lock``, so they run one at a time in the order
they were deferred, while other symbols run in parallel.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import procrastinate
from procrastinate import jobs as procrastinate_jobs

if TYPE_CHECKING:
    from viewzenix.db import Connection, Database

logger = logging.getLogger(__name__)

EXECUTE_SIGNAL = "viewzenix.execute_signal"
RECONCILE = "viewzenix.reconcile"
PURGE_EXPIRED = "viewzenix.purge_expired"
RETRY_STALLED_JOBS = "viewzenix.retry_stalled_jobs"
# Retries of a signal's job: 8 attempts, waits of 1 + 2^(n+1) s (3, 5, 9, ..., 129: about 4.5
# minutes in all), so a broker outage of a few minutes still executes the signal; jobs of the
# same (config, symbol) wait meanwhile.
SIGNAL_RETRY = procrastinate.RetryStrategy(max_attempts=8, wait=1, exponential_wait=2)
PURGE_CRON = "17 * * * *"  # hourly
# The periodic reconciliation compares the orders of the last two days (positions always whole);
# `flask reconcile` and the admin API compare everything.
RECONCILE_WINDOW = timedelta(days=2)
QUEUE = "signals"
MAINTENANCE_QUEUE = "maintenance"


def build_job_app(database_url: str) -> procrastinate.App:
    """Return a procrastinate App on ``database_url`` (tasks not registered; see register_tasks)."""
    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=database_url))


def signal_lock(config_id: uuid.UUID | str, symbol: str) -> str:
    """Return the lock key serialising jobs of one (config, symbol)."""
    return f"signal:{config_id}:{symbol}"


def defer_execute_signal(
    job_app: procrastinate.App,
    conn: Connection,
    *,
    signal_id: uuid.UUID,
    config_id: uuid.UUID,
    symbol: str,
) -> int:
    """Defer the execution of a stored signal on ``conn``'s open transaction; return the job id.

    The job becomes visible to workers only when that transaction commits (atomic with the
    signals row). Through procrastinate's job manager (public: ``App.job_manager``) rather than
    ``configure_task(...).defer()``: the same job row and SQL, without the task layer's per-job
    extras — two log contexts and an INFO "Deferred 1 job" line — which cost about 0.1 ms of
    CPU per accepted alert on intake's hot path.
    """
    job = procrastinate_jobs.Job(
        queue=QUEUE,
        lock=signal_lock(config_id, symbol),
        queueing_lock=None,
        task_name=EXECUTE_SIGNAL,
        task_kwargs={"signal_id": str(signal_id)},
    )
    deferred = job_app.job_manager.defer_job(job, connection=conn)
    assert deferred.id is not None  # procrastinate returns the row's id
    return deferred.id


def register_tasks(
    job_app: procrastinate.App,
    db: Database,
    *,
    reconcile_cron: str = "",
    stalled_job_seconds: float = 30,
    stalled_jobs_cron: str = "*/15 * * * * *",
) -> None:
    """Register the task bodies on ``job_app`` (worker side), using ``db`` for their transactions.

    ``reconcile_cron`` (cron syntax, UTC): when set, the worker also compares every config's books
    with its broker's on that schedule (report only; see ``services.reconciliation``). Expired
    idempotency keys and duplicate-alert claims are purged hourly. Every ``stalled_jobs_cron``
    (cron with seconds; default every 15 s), jobs left ``doing`` by a worker whose heartbeat is
    older than ``stalled_job_seconds`` (a worker killed mid-job) are retried: execution resumes
    from what the ledger recorded, so the retry never places a second order.
    """
    from procrastinate.jobs import Status

    from viewzenix.services.execution import execute_signal, fail_signal
    from viewzenix.services.housekeeping import purge_expired
    from viewzenix.services.reconciliation import reconcile

    @job_app.task(
        name=EXECUTE_SIGNAL,
        queue=QUEUE,
        pass_context=True,
        retry=SIGNAL_RETRY,
    )
    def execute_signal_task(context: procrastinate.JobContext, signal_id: str) -> None:
        execute_signal(db, uuid.UUID(signal_id), job_id=context.job.id)

    @job_app.task(name=RECONCILE, queue=MAINTENANCE_QUEUE, pass_context=False)
    def reconcile_task(timestamp: int | None = None) -> None:
        runs = reconcile(db, since=datetime.now(UTC) - RECONCILE_WINDOW)
        logger.info(
            "reconciliation: %s config(s), %s order(s) in drift",
            len(runs),
            sum(r["orders_in_drift"] for r in runs),
            extra={"action": "reconcile_run"},
        )

    @job_app.periodic(cron=stalled_jobs_cron, periodic_id="retry_stalled_jobs")
    @job_app.task(name=RETRY_STALLED_JOBS, queue=MAINTENANCE_QUEUE, pass_context=True)
    async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int | None = None) -> None:
        manager = context.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_job_seconds)
        for job in stalled:
            assert job.id is not None
            if job.attempts + 1 >= (SIGNAL_RETRY.max_attempts or 1):
                # It killed its worker every time: stop, so later jobs of its lock can run.
                await manager.finish_job_by_id_async(job.id, status=Status.FAILED, delete_job=False)
                if job.task_name == EXECUTE_SIGNAL:
                    fail_signal(
                        db, uuid.UUID(job.task_kwargs["signal_id"]), "its worker died on every attempt"
                    )
                logger.error(
                    "job %s (%s) stalled on its last attempt: failed",
                    job.id,
                    job.task_name,
                    extra={"action": "stalled_job_failed", "job_id": job.id},
                )
                continue
            await manager.retry_job_by_id_async(job.id, retry_at=datetime.now(UTC))
            logger.warning(
                "retrying job %s (%s) left doing by a dead worker",
                job.id,
                job.task_name,
                extra={"action": "stalled_job_retried", "job_id": job.id},
            )
        await manager.prune_stalled_workers(stalled_job_seconds)

    @job_app.periodic(cron=PURGE_CRON, periodic_id="purge_expired")
    @job_app.task(name=PURGE_EXPIRED, queue=MAINTENANCE_QUEUE, pass_context=False)
    def purge_expired_task(timestamp: int | None = None) -> None:
        counts = purge_expired(db)
        logger.info("purged expired rows: %s", counts, extra={"action": "purge_expired", **counts})

    if reconcile_cron:
        job_app.periodic(cron=reconcile_cron, periodic_id="reconcile")(reconcile_task)
