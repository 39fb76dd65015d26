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
    APPLY_BAR,
    DELETE_FINISHED_JOBS,
    DELETE_FINISHED_JOBS_CRON,
    EXECUTE_SIGNAL,
    EXPIRE_DAY_ORDERS,
    MAINTENANCE_QUEUE,
    PURGE_CRON,
    PURGE_EXPIRED,
    QUEUE,
    RECONCILE,
    RECONCILE_WINDOW,
    RETRY_STALLED_JOBS,
)
from viewzenix.jobs.attempts import record_worker_died
from viewzenix.jobs.retry import RECONCILE_RETRY, SIGNAL_RETRY, WorkerDied, retries

if TYPE_CHECKING:
    from config import Config
    from viewzenix.db import Database
    from viewzenix.services.accounts import Accounts

logger = logging.getLogger(__name__)


def register_tasks(
    job_app: procrastinate.App,
    db: Database,
    config: Config | None = None,
    accounts: Accounts | None = None,
) -> None:
    """Register the task bodies on ``job_app`` (worker side), using ``db`` for their transactions.

    ``config``: the process's ``config.Config``, whose schedules and thresholds the tasks use
    (default: ``load_config()``, from the environment); the worker and the HTTP runner pass theirs.
    ``RECONCILE_CRON`` (cron syntax, UTC): when set, the worker also compares every config's books
    with its broker's on that schedule (report only; see ``services.reconciliation``). Expired
    idempotency keys and duplicate-alert claims are purged hourly. Every ``STALLED_JOBS_CRON``
    (cron with seconds as the 6th field; default every 15 s), jobs left ``doing`` by a worker
    whose heartbeat is older than ``STALLED_JOB_SECONDS`` (a worker killed mid-job) get a
    ``worker_died`` attempt record and are retried as their task's retry strategy says (failed
    after the last attempt): execution resumes from what the ledger recorded, so the retry never
    places a second order.
    Retry strategies per task: ``viewzenix.jobs.retry``; attempts recorded by the worker's
    ``viewzenix.jobs.attempts.AttemptRecorder``. ``accounts``: the runtime's seam between brokers
    and our books (``services.accounts``; default: one on ``db``).
    """
    from procrastinate.jobs import Status

    from config import load_config
    from viewzenix import notifications
    from viewzenix.services.accounts import accounts_for
    from viewzenix.services.bars import apply_bar
    from viewzenix.services.execution import execute_signal, fail_signal
    from viewzenix.services.flatten import (
        SCHEDULED_CONTROLS_CRON,
        flatten_loss_limit_breaches,
        run_scheduled_controls,
    )
    from viewzenix.services.housekeeping import delete_finished_jobs, expire_day_orders, purge_expired
    from viewzenix.services.intake import purge_refused_signals
    from viewzenix.services.reconciliation import reconcile

    config = config or load_config()
    accounts = accounts_for(db, accounts)
    stalled_job_seconds = config.STALLED_JOB_SECONDS
    job_retention_days = config.JOB_RETENTION_DAYS

    @job_app.task(
        name=EXECUTE_SIGNAL,
        queue=QUEUE,
        pass_context=True,
        retry=SIGNAL_RETRY,
    )
    def execute_signal_task(context: procrastinate.JobContext, signal_id: str) -> None:
        status = execute_signal(
            db,
            uuid.UUID(signal_id),
            job_id=context.job.id,
            accounts=accounts,
            on_flatten_due=lambda config_id: flatten_loss_limit_breaches(db, job_app, config_id=config_id),
        )
        context.additional_context["attempt_context"] = {"signal_status": status}

    @job_app.task(name=APPLY_BAR, queue=QUEUE, pass_context=True, retry=SIGNAL_RETRY)
    def apply_bar_task(context: procrastinate.JobContext, bar_id: str) -> None:
        status = apply_bar(db, uuid.UUID(bar_id), accounts=accounts)
        context.additional_context["attempt_context"] = {"bar_status": status}

    @job_app.task(name=RECONCILE, queue=MAINTENANCE_QUEUE, pass_context=False, retry=RECONCILE_RETRY)
    def reconcile_task(timestamp: int | None = None) -> None:
        runs = reconcile(db, since=datetime.now(UTC) - RECONCILE_WINDOW, accounts=accounts)
        logger.info(
            "reconciliation: %s config(s), %s order(s) in drift",
            len(runs),
            sum(r["orders_in_drift"] for r in runs),
            extra={"action": "reconcile_run"},
        )

    @job_app.periodic(cron=config.STALLED_JOBS_CRON, periodic_id="retry_stalled_jobs")
    @job_app.task(name=RETRY_STALLED_JOBS, queue=MAINTENANCE_QUEUE, pass_context=True)
    async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int | None = None) -> None:
        manager = context.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_job_seconds)
        for job in stalled:
            assert job.id is not None
            await record_worker_died(context.app, job, context.worker_name)
            task = context.app.tasks.get(job.task_name)
            if not retries(None if task is None else task.retry_strategy, WorkerDied(), job):
                # Its last attempt (or a task that is never retried): stop, so later jobs of its
                # lock can run.
                await manager.finish_job_by_id_async(job.id, status=Status.FAILED, delete_job=False)
                if job.task_name == EXECUTE_SIGNAL:
                    fail_signal(
                        db, uuid.UUID(job.task_kwargs["signal_id"]), "its worker died on every attempt"
                    )
                await notifications.job_failed(
                    context.app, job, "WorkerDied: its worker died on every attempt"
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
        if stalled:
            logger.info(
                "stalled-job sweep: %s job(s) recovered",
                len(stalled),
                extra={"action": "stalled_jobs_swept", "jobs_recovered": len(stalled)},
            )
        await manager.prune_stalled_workers(stalled_job_seconds)

    @job_app.periodic(cron=PURGE_CRON, periodic_id="purge_expired")
    @job_app.task(name=PURGE_EXPIRED, queue=MAINTENANCE_QUEUE, pass_context=False)
    def purge_expired_task(timestamp: int | None = None) -> None:
        counts = purge_expired(db, config.HOOK_EVENTS_RETENTION_DAYS)
        counts["refused_signals"] = purge_refused_signals(db, config.REFUSED_SIGNAL_RETENTION_DAYS)
        logger.info("purged expired rows: %s", counts, extra={"action": "purge_expired", "counts": counts})

    if config.RECONCILE_CRON:
        job_app.periodic(cron=config.RECONCILE_CRON, periodic_id="reconcile")(reconcile_task)

    # --- housekeeping: finished jobs, paper day orders at the close ---------------------------

    @job_app.periodic(cron=DELETE_FINISHED_JOBS_CRON, periodic_id="delete_finished_jobs")
    @job_app.task(name=DELETE_FINISHED_JOBS, queue=MAINTENANCE_QUEUE, pass_context=False)
    def delete_finished_jobs_task(timestamp: int | None = None) -> None:
        counts = delete_finished_jobs(
            db, job_retention_days, archive_retention_days=config.JOB_ARCHIVE_RETENTION_DAYS
        )
        logger.info(
            "deleted %s finished job(s) older than %s days (%s events, %s periodic defers); "
            "archived %s failed job(s)",
            counts["jobs"],
            job_retention_days,
            counts["events"],
            counts["periodic_defers"],
            counts["archived"],
            extra={
                "action": "finished_jobs_deleted",
                "counts": {**counts, "retention_days": job_retention_days},
            },
        )

    @job_app.task(name=EXPIRE_DAY_ORDERS, queue=MAINTENANCE_QUEUE, pass_context=False)
    def expire_day_orders_task(timestamp: int | None = None) -> None:
        counts = expire_day_orders(db, accounts=accounts)
        logger.info(
            "expired %s day order(s) at the session close of %s (%s held leg(s) canceled, %s config(s))",
            counts["orders_expired"],
            counts["session_close"].isoformat(),
            counts["orders_canceled"],
            counts["configs"],
            extra={"action": "day_orders_expired", "counts": counts},
        )

    if config.DAY_ORDER_EXPIRY_CRON:
        job_app.periodic(cron=config.DAY_ORDER_EXPIRY_CRON, periodic_id="expire_day_orders")(
            expire_day_orders_task
        )

    # Supabase sync (issue 8): the periodic drift check of watchers and users, self-contained.
    from viewzenix.services.sync_check import register_periodic_check

    register_periodic_check(job_app, db, config)

    # --- Alpaca order sync (services.order_sync): open orders and fills in step with the broker.
    if config.ORDER_SYNC_CRON:
        from viewzenix.services.order_sync import sync_open_orders

        @job_app.periodic(cron=config.ORDER_SYNC_CRON, periodic_id="sync_open_orders")
        @job_app.task(name="viewzenix.sync_open_orders", queue=MAINTENANCE_QUEUE, pass_context=False)
        def sync_open_orders_task(timestamp: int | None = None) -> None:
            sync_open_orders(db, accounts=accounts)

    # Trading windows and the loss limit (issue 17): auto-flatten / auto-cancel once per session,
    # and the flatten of a loss-limit breach whose own job stopped before starting it.
    @job_app.periodic(cron=SCHEDULED_CONTROLS_CRON, periodic_id="scheduled_controls")
    @job_app.task(name="viewzenix.scheduled_controls", queue=MAINTENANCE_QUEUE, pass_context=False)
    def scheduled_controls_task(timestamp: int | None = None) -> None:
        try:
            run_scheduled_controls(db, job_app)
        finally:  # the loss-limit backstop runs even when the schedule failed
            flatten_loss_limit_breaches(db, job_app)  # breaches whose own job stopped before flattening

    # Approval mode (issue 17): waiting signals past their approval timeout expire.
    from viewzenix.services.approvals import register_approval_tasks

    register_approval_tasks(job_app, db)

    # Notifications (viewzenix.notify): sent by the worker, retried with backoff, recorded.
    from viewzenix.notifications.tasks import register_notification_tasks

    register_notification_tasks(job_app, db, config.NOTIFY_ALLOW_PRIVATE_HOSTS)
