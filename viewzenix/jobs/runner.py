"""The cron-driven runner: run the due jobs for one call of ``POST /api/jobs/run``, then stop.

For deployments that cannot keep a worker process running (Supabase calls the endpoint from
``pg_cron`` through ``pg_net``: ``supabase/job_runner_cron.sql``). A call runs procrastinate's
own worker (``wait=False``, one job at a time, no LISTEN) on a job app built for the call with the
worker's task bodies (``register_tasks``) and the worker's ``AttemptRecorder``, so fetching
(``FOR UPDATE SKIP LOCKED``: two concurrent calls never run the same job), per-(config, symbol)
locks, retries and attempt records are exactly the worker's. The worker stops when the queue has
no due job left, after ``limit`` runs, or after the run that ends past ``time_budget_s``: no job
starts once the budget is spent, and the job running then is allowed to finish (a call may thus
last the budget plus one job; a call always runs its first due job).

Paused queue (``private.job_queue_state``): a call starts nothing and answers ``stopped_by``
``paused``; a pause during a call stops it at its next fetch (``jobs.PausableJobManager``).

Periodic tasks: before the worker starts, the call defers each periodic task's latest tick
(at most ``procrastinate.periodic.MAX_DELAY``, 10 minutes, old) exactly as a starting worker
does, so a deployment with only the runner still gets its stalled-job sweep, purges and
reconciliation, at the cadence of the calls (every ``*/15 s`` sweep becomes one sweep per call).
Postgres refuses a second defer of the same (task, tick), so worker processes and runner calls,
or two calls, never defer one tick twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from procrastinate import periodic

from viewzenix.jobs import build_job_app
from viewzenix.jobs.attempts import Attempt, AttemptRecorder
from viewzenix.jobs.tasks import register_tasks
from viewzenix.repositories import jobs as jobs_repo

if TYPE_CHECKING:
    import procrastinate
    from procrastinate import job_context
    from procrastinate import worker as procrastinate_worker

    from config import Config
    from viewzenix.db import Database

logger = logging.getLogger(__name__)

WORKER_NAME = "runner"  # procrastinate's worker name and ``private.job_attempts.worker``
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
DEFAULT_TIME_BUDGET_S = 20.0
# gunicorn's sync workers are killed after GUNICORN_TIMEOUT (30 s by default): a budget below it
# leaves room for the last job, so the web worker is not killed mid-job.
MAX_TIME_BUDGET_S = 25.0


class StoppedBy(StrEnum):
    """Why a runner call stopped."""

    QUEUE_EMPTY = "queue_empty"  # no due job left that this call could take
    LIMIT = "limit"  # ``limit`` runs done
    TIME_BUDGET = "time_budget"  # a run ended after ``time_budget_s``
    PAUSED = "paused"  # the queue is paused (POST /api/admin/queue/pause): nothing was started


@dataclass(frozen=True)
class RunResult:
    """One run of one job in a runner call.

    ``status``: the run's outcome, as ``private.job_attempts`` records it: ``succeeded``,
    ``retrying`` (it raised; procrastinate runs it again later), ``failed`` (for good) or
    ``aborted``. ``duration_ms``: milliseconds. ``error``: ``"<ExceptionType>: <message>"``, or
    None when it succeeded.
    """

    job_id: int
    task: str
    attempt: int
    status: str
    duration_ms: float
    error: str | None

    @classmethod
    def from_attempt(cls, attempt: Attempt) -> RunResult:
        return cls(
            job_id=attempt.job_id,
            task=attempt.task_name,
            attempt=attempt.attempt,
            status=attempt.outcome,
            duration_ms=attempt.duration_ms,
            error=None if attempt.error is None else f"{attempt.error_type}: {attempt.error}",
        )


@dataclass(frozen=True)
class RunReport:
    """What one runner call did.

    ``processed``: runs in all (a job retried within the call counts once per run);
    ``succeeded``: runs that succeeded; ``failed``: runs that raised (``results[i].status`` says
    whether the job is retried); ``results``: one per run, in the order they ended;
    ``stopped_by``: why the call stopped; ``elapsed_ms``: the call's wall time in milliseconds.
    """

    processed: int
    succeeded: int
    failed: int
    stopped_by: StoppedBy
    elapsed_ms: float
    results: list[RunResult] = field(default_factory=list)


class _Budget:
    """procrastinate worker middleware: stop the worker after ``limit`` runs or past ``deadline``.

    Called around every run (one at a time: concurrency 1); the check runs when a run ends, before
    the worker may fetch the next job, so no job is fetched once the limit or the deadline is hit.
    """

    def __init__(self, limit: int, deadline: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.deadline = deadline
        self.clock = clock
        self.runs = 0
        self.stopped_by = StoppedBy.QUEUE_EMPTY

    async def __call__(
        self,
        call_next: Callable[[], Awaitable[Any]],
        context: job_context.JobContext,
        worker: procrastinate_worker.Worker,
    ) -> Any:
        try:
            return await call_next()
        finally:
            self.runs += 1
            if self.runs >= self.limit:
                self.stopped_by = StoppedBy.LIMIT
                worker.stop()
            elif self.clock() >= self.deadline:
                self.stopped_by = StoppedBy.TIME_BUDGET
                worker.stop()


def run_due_jobs(
    config: Config,
    db: Database,
    database_url: str,
    *,
    limit: int = DEFAULT_LIMIT,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
) -> RunReport:
    """Run due jobs, at most ``limit`` runs within ``time_budget_s`` seconds; return the report.

    ``config``: the app's ``config.Config`` (the periodic schedules and the stalled-job threshold
    the worker uses: ``RECONCILE_CRON``, ``STALLED_JOBS_CRON``, ``STALLED_JOB_SECONDS``). ``db``:
    the pool the task bodies use; ``database_url``: where procrastinate opens its own pool for
    the call. ``clock``: seconds, monotonic (tests pass a fake). Blocking: runs an event loop in
    the calling thread (a web request's). Raises what procrastinate raises when the database is
    down (``procrastinate.exceptions.ConnectorException``); a job's own errors never escape (they
    are the job's outcome).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return asyncio.run(_run(config, db, database_url, limit, time_budget_s, clock))


async def _run(
    config: Config,
    db: Database,
    database_url: str,
    limit: int,
    time_budget_s: float,
    clock: Callable[[], float],
) -> RunReport:
    started = clock()
    with db.transaction() as conn:
        paused = jobs_repo.queue_state(conn)["paused"]
    if paused:
        logger.info("job runner: the queue is paused; nothing runs", extra={"action": "job_runner_paused"})
        return RunReport(0, 0, 0, StoppedBy.PAUSED, round((clock() - started) * 1000, 3))
    budget = _Budget(limit, started + time_budget_s, clock)
    attempts: list[Attempt] = []
    job_app = build_job_app(database_url, pool_size=config.JOB_POOL_SIZE)
    register_tasks(job_app, db, config)
    async with job_app.open_async():
        await defer_due_periodic_jobs(job_app)
        await job_app.run_worker_async(
            name=WORKER_NAME,
            wait=False,
            concurrency=1,
            listen_notify=False,
            install_signal_handlers=False,
            # As the worker process: heartbeats well inside the stalled-job threshold.
            update_heartbeat_interval=min(10.0, config.STALLED_JOB_SECONDS / 3),
            stalled_worker_timeout=config.STALLED_JOB_SECONDS,
            worker_middleware=[AttemptRecorder(worker_label=WORKER_NAME, on_attempt=attempts.append), budget],
        )
    results = [RunResult.from_attempt(a) for a in attempts]
    succeeded = sum(r.status == "succeeded" for r in results)
    report = RunReport(
        processed=len(results),
        succeeded=succeeded,
        failed=len(results) - succeeded,
        stopped_by=budget.stopped_by,
        elapsed_ms=round((clock() - started) * 1000, 3),
        results=results,
    )
    logger.info(
        "job runner: %s run(s), %s succeeded, %s failed; stopped by %s",
        report.processed,
        report.succeeded,
        report.failed,
        report.stopped_by,
        extra={
            "action": "job_runner_run",
            "processed": report.processed,
            "succeeded": report.succeeded,
            "failed": report.failed,
            "stopped_by": str(report.stopped_by),
            "elapsed_ms": report.elapsed_ms,
        },
    )
    return report


async def defer_due_periodic_jobs(job_app: procrastinate.App) -> None:
    """Defer each periodic task's latest tick, as a starting procrastinate worker does.

    procrastinate's ``PeriodicDeferrer`` (what its worker runs): a tick more than ``max_delay``
    (10 minutes) old is skipped; a tick already deferred (by a worker or another call) is not
    deferred again (unique in ``procrastinate_periodic_defers``).
    """
    deferrer = periodic.PeriodicDeferrer(registry=job_app.periodic_registry, **job_app.periodic_defaults)
    await deferrer.defer_jobs(jobs_to_defer=deferrer.get_previous_tasks(at=time.time()))
