"""The durable job queue (procrastinate on our own Postgres): the low half that services import.

Building the procrastinate app, task names, queues, locks and ``defer_*`` live here and import
nothing of ours above ``db``. The task bodies (``viewzenix.jobs.tasks``) import the services and
are imported only by what runs jobs: the worker process (``python -m viewzenix.worker``) and the
cron-driven runner. The web process only defers jobs, inside the intake transaction
(``defer_execute_signal``). Jobs
for one (config, symbol) share a procrastinate ``lock``, so they run one at a time in the order
they were deferred, while other symbols run in parallel.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import procrastinate
import psycopg
from procrastinate import exceptions as procrastinate_exceptions
from procrastinate import jobs as procrastinate_jobs
from procrastinate import manager as procrastinate_manager

if TYPE_CHECKING:
    from viewzenix.db import Connection
    from viewzenix.db.pools import SessionTimeouts

logger = logging.getLogger(__name__)

EXECUTE_SIGNAL = "viewzenix.execute_signal"
# A bar pushed on a webhook URL: applied under the same lock as the symbol's signals.
APPLY_BAR = "viewzenix.apply_bar"
RECONCILE = "viewzenix.reconcile"
PURGE_EXPIRED = "viewzenix.purge_expired"
RETRY_STALLED_JOBS = "viewzenix.retry_stalled_jobs"
PURGE_CRON = "17 * * * *"  # hourly
# The periodic reconciliation compares the orders of the last two days (positions always whole);
# `flask reconcile` and the admin API compare everything.
RECONCILE_WINDOW = timedelta(days=2)
# Housekeeping (services.housekeeping): finished jobs past JOB_RETENTION_DAYS, hourly; paper day
# orders at the session close, on DAY_ORDER_EXPIRY_CRON.
DELETE_FINISHED_JOBS = "viewzenix.delete_finished_jobs"
DELETE_FINISHED_JOBS_CRON = "41 * * * *"  # hourly
EXPIRE_DAY_ORDERS = "viewzenix.expire_day_orders"
QUEUE = "signals"
MAINTENANCE_QUEUE = "maintenance"


# procrastinate 3.10's own fetch query (sql/queries.sql "fetch_job"), on our copy of its fetch
# function whose plan does not depend on the queue's statistics (private.fetch_job, migration
# 20261207100000_fetch_job_stable_plan.sql), run only while the queue is not paused. The pause
# test is a pseudo-constant condition (no column of the function's rows), so Postgres evaluates
# it once, first, as a one-time filter: while paused the fetch function is never called and no
# job is marked doing (tests/integration/test_queue_pause.py holds this).
FETCH_JOB_UNLESS_PAUSED = """
SELECT id, status, task_name, priority, lock, queueing_lock, args, scheduled_at, queue_name, attempts,
       worker_id
    FROM private.fetch_job(%(queues)s::varchar[], %(worker_id)s)
    WHERE NOT (SELECT paused FROM private.job_queue_state)
"""


class PausableJobManager(procrastinate_manager.JobManager):
    """procrastinate's job manager whose fetch takes no job while the queue is paused, and whose
    finish of a succeeded job also writes that run's attempt record.

    The pause (``private.job_queue_state.paused``, set by ``POST /api/admin/queue/pause``) stops
    every worker process and the cron runner from starting jobs; deferring is unchanged, so
    alerts are still stored and their jobs queued, and a job already running finishes.

    The attempt record (``jobs.attempts.AttemptRecorder``) of a succeeded run is handed over by
    ``store_with_finish`` and written by the statement that marks the job succeeded
    (``FINISH_WITH_ATTEMPT``): one round trip per job instead of two, and both or neither. If
    that statement fails, the job is finished alone, as procrastinate would, and the record
    stored on its own (its failure logged). A handed-over record whose job ends otherwise
    (retried, failed, deleted) is stored first, on its own. Other outcomes are stored by the
    recorder itself. A finish whose connection was lost is sent once more
    (``_finish``): procrastinate would leave the job ``doing``.
    """

    def __init__(self, connector: procrastinate.connector.BaseConnector) -> None:
        super().__init__(connector)
        self._attempts: dict[int, dict] = {}  # job id -> INSERT_ATTEMPT's parameters

    def store_with_finish(self, job_id: int, attempt: dict) -> None:
        """Write ``attempt`` (``jobs.attempts.INSERT_ATTEMPT``'s parameters) with job ``job_id``'s
        finish (procrastinate calls it right after the worker middleware returns)."""
        self._attempts[job_id] = attempt

    async def finish_job_by_id_async(
        self, job_id: int, status: procrastinate_jobs.Status, delete_job: bool
    ) -> None:
        attempt = self._attempts.pop(job_id, None)
        if attempt is None:
            await self._finish(job_id, status, delete_job)
            return
        from viewzenix.jobs.attempts import FINISH_WITH_ATTEMPT, store_or_log

        # Combined only for a job marked succeeded and kept (a deleted job's attempts go with it).
        if status == procrastinate_jobs.Status.SUCCEEDED and not delete_job:
            try:
                await self.connector.execute_query_async(
                    query=FINISH_WITH_ATTEMPT, **attempt, status=status.value, delete_job=False
                )
                return
            except procrastinate_exceptions.ConnectorException:
                # The record or the finish failed (rolled back together): finish alone, as
                # procrastinate would (its error, if any, is procrastinate's as before), then the
                # record on its own, whose failure is only logged.
                logger.warning(
                    "job %s: finish with its attempt record failed; finishing alone",
                    job_id,
                    exc_info=True,
                    extra={"action": "job_finish_with_attempt_failed", "job_id": job_id},
                )
        await store_or_log(self.connector, attempt)
        await self._finish(job_id, status, delete_job)

    async def retry_job_by_id_async(self, job_id: int, *args: Any, **kwargs: Any) -> None:
        attempt = self._attempts.pop(job_id, None)
        if attempt is not None:
            from viewzenix.jobs.attempts import store_or_log

            await store_or_log(self.connector, attempt)
        # Not sent again on a lost connection, unlike a finish: procrastinate's retry also takes a
        # job that is `failed` (an abort), so a retry that committed before its answer was lost
        # would run the job again.
        await super().retry_job_by_id_async(job_id, *args, **kwargs)

    async def _finish(self, job_id: int, status: procrastinate_jobs.Status, delete_job: bool) -> None:
        """procrastinate's finish of job ``job_id``, sent once more if its connection was lost (the
        pool checks the next connection before lending it).

        procrastinate does not act on a failed finish (``Worker._process_job`` runs in a task whose
        error nobody reads): the job would stay ``doing`` under a live, heartbeating worker, which
        neither the stalled-job sweep nor ``jobs.graceful`` hands back, and the later jobs of its
        lock would wait behind it. Sending it twice is safe: ``procrastinate_finish_job_v1`` takes
        only a ``todo`` or ``doing`` job, so if the first try committed before its answer was lost,
        the second fails with its ``Job was not found or not in …`` error (raised, and unread, as
        before; the job is finished). Any other error is raised at once.
        """
        for last_try in (False, True):
            try:
                await super().finish_job_by_id_async(job_id=job_id, status=status, delete_job=delete_job)
                return
            except procrastinate_exceptions.ConnectorException as error:
                if last_try or not _connection_lost(error):
                    raise
                logger.warning(
                    "job %s: its finish lost the database connection; sending it once more",
                    job_id,
                    extra={"action": "job_finish_retried", "job_id": job_id},
                )

    async def fetch_job(self, queues: Iterable[str] | None, worker_id: int) -> procrastinate_jobs.Job | None:
        rows = await self.connector.execute_query_all_async(
            query=FETCH_JOB_UNLESS_PAUSED, queues=queues, worker_id=worker_id
        )
        # No row while paused; one row of nulls when no job is due (procrastinate's function).
        if not rows or rows[0]["id"] is None:
            return None
        return procrastinate_jobs.Job.from_row(rows[0])


def _connection_lost(error: BaseException) -> bool:
    """Whether ``error`` (procrastinate's ``ConnectorException``, raised from psycopg's) means the
    connection was lost or never lent: psycopg's own socket errors and the pool's timeout carry
    no SQLSTATE; the server's are class 08 (connection exception) and 57P01–57P03 (shut down,
    crash, cannot connect now). A statement or lock timeout, also an ``OperationalError``, is not."""
    cause = error.__cause__
    if not isinstance(cause, psycopg.OperationalError):
        return False
    state = cause.sqlstate
    return state is None or state.startswith("08") or state in {"57P01", "57P02", "57P03"}


def build_job_app(
    database_url: str,
    timeouts: SessionTimeouts | None = None,
    *,
    transaction_pooler: bool = False,
    pool_size: int = 4,
) -> procrastinate.App:
    """Return a procrastinate App on ``database_url`` (tasks not registered; see register_tasks).

    Its async pool (opened by workers) is ``viewzenix.db.pools.ResilientAsyncPool``: stale
    connections are re-checked after a database restart and lost ones re-opened within a second.
    ``pool_size``: the most connections its pool opens (workers: ``JOB_POOL_SIZE``).
    ``transaction_pooler``: ``database_url`` may be a transaction-mode pooler (a web process's
    ``WEB_DATABASE_URL``), so its connections run without prepared statements and the pool opens
    at most ``pool_size`` of them, one kept; such an app must not run a listening worker.
    ``timeouts``: the statement, lock and idle-in-transaction timeouts of its connections (not
    sent to a transaction pooler, which refuses the libpq ``options`` that carry them).
    Its job manager is a ``PausableJobManager``: no job is fetched while the queue is paused.
    """
    from viewzenix.db.pools import ResilientAsyncPool, SessionTimeouts

    sizes = {"min_size": 1 if transaction_pooler else pool_size, "max_size": pool_size}
    if transaction_pooler:
        kwargs: dict = {"prepare_threshold": None}
    else:
        kwargs = (timeouts or SessionTimeouts()).connect_kwargs(database_url)
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=database_url, pool_factory=ResilientAsyncPool, kwargs=kwargs, **sizes
        )
    )
    app.job_manager = PausableJobManager(app.connector)
    return app


def signal_lock(config_id: uuid.UUID | str, symbol: str) -> str:
    """Return the lock key serialising jobs of one (config, symbol), by its canonical symbol."""
    from viewzenix.domain.symbols import canonical_symbol

    return f"signal:{config_id}:{canonical_symbol(symbol)}"


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
    return _defer_locked(job_app, conn, EXECUTE_SIGNAL, {"signal_id": str(signal_id)}, config_id, symbol)


def _defer_locked(
    job_app: procrastinate.App,
    conn: Connection,
    task_name: str,
    kwargs: dict[str, str],
    config_id: uuid.UUID,
    symbol: str,
) -> int:
    """Defer ``task_name`` on ``conn`` in the signals queue under the (config, symbol) lock.

    ``job_app`` is not used to send it (see ``_ON_CONNECTION``): web and worker alike defer here.
    """
    job = procrastinate_jobs.Job(
        queue=QUEUE,
        lock=signal_lock(config_id, symbol),
        queueing_lock=None,
        task_name=task_name,
        task_kwargs=kwargs,
    )
    deferred = _ON_CONNECTION.defer_job(job, connection=conn)
    assert deferred.id is not None  # procrastinate returns the row's id
    return deferred.id


# Defers on a connection of ours (a sync psycopg connection in an open transaction), whatever
# state ``job_app`` is in. In a worker, the app's connector has its async pool open and routes
# sync calls to its async code, which cannot use a sync connection ("'Cursor' object does not
# support the asynchronous context manager protocol"); procrastinate's sync connector runs the
# same defer query on the given connection and opens no pool of its own.
_ON_CONNECTION = procrastinate_manager.JobManager(procrastinate.SyncPsycopgConnector())


def defer_apply_bar(
    job_app: procrastinate.App,
    conn: Connection,
    *,
    bar_id: uuid.UUID,
    config_id: uuid.UUID,
    symbol: str,
) -> int:
    """Defer the application of a stored bar on ``conn``'s transaction; return the job id.

    Same queue and same lock as the symbol's signal jobs (``signal_lock``), so bars and alerts of
    one (config, symbol) run one at a time in the order they arrived.
    """
    return _defer_locked(job_app, conn, APPLY_BAR, {"bar_id": str(bar_id)}, config_id, symbol)
