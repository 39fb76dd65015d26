"""Task bodies of the job queue, registered on a procrastinate app by ``register_tasks``.

Imported only by what runs jobs (the worker process and the cron-driven runner): these bodies
call the services, which themselves import only the low half, ``viewzenix.jobs``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import procrastinate

from viewzenix.jobs import (
    EXECUTE_SIGNAL,
    MAINTENANCE_QUEUE,
    PURGE_CRON,
    PURGE_EXPIRED,
    QUEUE,
    RECONCILE,
    RECONCILE_WINDOW,
    RETRY_STALLED_JOBS,
    SIGNAL_RETRY,
)

if TYPE_CHECKING:
    from viewzenix.db import Database

logger = logging.getLogger(__name__)


def register_tasks(
    job_app: procrastinate.App,
    db: Database,
    *,
    reconcile_cron: str = "",
    stalled_job_seconds: float = 30,
    stalled_jobs_cron: str = "*/15 * * * * *",
    order_sync_cron: str = "*/30 * * * * *",
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

    # --- Alpaca order sync (services.order_sync): open orders and fills in step with the broker.
    if order_sync_cron:
        from viewzenix.services.order_sync import sync_open_orders

        @job_app.periodic(cron=order_sync_cron, periodic_id="sync_open_orders")
        @job_app.task(name="viewzenix.sync_open_orders", queue=MAINTENANCE_QUEUE, pass_context=False)
        def sync_open_orders_task(timestamp: int | None = None) -> None:
            sync_open_orders(db)
