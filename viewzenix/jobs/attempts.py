"""Attempt history: one ``private.job_attempts`` row and one log line per run of a job.

procrastinate records a job's status and events but not why a run failed. ``AttemptRecorder`` is a
procrastinate worker middleware (``Worker(worker_middleware=[...])``, procrastinate ≥ 3.8) that
wraps every run, on the worker's event loop, and writes when it ends: start, end, duration,
outcome and error text. It writes through procrastinate's own async pool, after the run, so a
run's work never waits on it. A succeeded run's record is handed to the job manager and written
by the statement that marks the job succeeded (``FINISH_WITH_ATTEMPT``, see
``viewzenix.jobs.PausableJobManager``): both or neither, one round trip. Other outcomes are
written here, before procrastinate retries or fails the job; a failure to write them is logged,
never raised into the job.

Outcomes: ``succeeded``; ``retrying`` (it raised, and the task's retry strategy runs it again);
``failed`` (for good); ``aborted`` (canceled while running, or cut by shutdown); ``worker_died``
(written by the stalled-job sweep, ``record_worker_died``, for a run whose worker stopped beating).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from procrastinate import exceptions as procrastinate_exceptions

from viewzenix.jobs.retry import retries

if TYPE_CHECKING:
    import procrastinate
    from procrastinate import job_context, jobs
    from procrastinate import worker as procrastinate_worker

logger = logging.getLogger(__name__)

TRACEBACK_LIMIT = 8000  # characters kept of a traceback (its end: where it was raised)

INSERT_ATTEMPT = """
insert into private.job_attempts
    (job_id, attempt, task_name, worker, started_at, finished_at, duration_ms, outcome,
     error_type, error, traceback, context)
values
    (%(job_id)s, %(attempt)s, %(task_name)s, %(worker)s, %(started_at)s, %(finished_at)s,
     %(duration_ms)s, %(outcome)s, %(error_type)s, %(error)s, %(traceback)s, %(context)s)
on conflict (job_id, attempt) do nothing
"""

# A succeeded run's record and procrastinate's finish of its job, in one statement: one round
# trip instead of two, and the record is stored exactly when the job is marked succeeded. The
# writable CTE runs whether or not the outer select reads it (Postgres docs, "Data-Modifying
# Statements in WITH"). procrastinate's "finish_job" query (sql/queries.sql) is the outer select.
FINISH_WITH_ATTEMPT = f"""
with recorded as ({INSERT_ATTEMPT})
select procrastinate_finish_job_v1(%(job_id)s, %(status)s, %(delete_job)s)
"""

# A run cut short (its worker died, or shut down before it ended): started at procrastinate's
# last 'started' event of the job; the ids come from the job's arguments.
INSERT_CUT_SHORT = """
insert into private.job_attempts
    (job_id, attempt, task_name, worker, started_at, finished_at, duration_ms, outcome,
     error_type, error, context)
select j.id, %(attempt)s, j.task_name, %(worker)s, s.at, now(),
       greatest(extract(epoch from now() - s.at) * 1000, 0), %(outcome)s,
       %(error_type)s, %(error)s,
       (select coalesce(jsonb_object_agg(a.key, a.value), '{}'::jsonb)
        from jsonb_each(j.args) a where a.key like '%%\\_id')
from public.procrastinate_jobs j
cross join lateral (
    select coalesce(max(e.at), now()) as at from public.procrastinate_events e
    where e.job_id = j.id and e.type = 'started'
) s
where j.id = %(job_id)s
on conflict (job_id, attempt) do nothing
"""


@dataclass(frozen=True)
class Attempt:
    """One run of a job. Times are UTC; ``duration_ms`` in milliseconds; ``attempt`` from 1."""

    job_id: int
    attempt: int
    task_name: str
    worker: str | None
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    outcome: str
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


def job_ids(job: jobs.Job) -> dict[str, Any]:
    """Return the ids a job's run belongs to, from its arguments (``signal_id`` of a signal's job)."""
    return {k: v for k, v in job.task_kwargs.items() if k.endswith("_id") and isinstance(v, str | int)}


class AttemptRecorder:
    """procrastinate worker middleware that records every run of every job (see module doc).

    ``worker_label``: stored in ``worker`` instead of procrastinate's worker name (the HTTP
    runner passes ``"runner"``). ``on_attempt``: called with each ``Attempt`` once it is stored,
    or, for a succeeded run, handed to be stored with its job's finish (the runner collects its
    results this way). Task bodies may add ids to the stored context by
    setting ``context.additional_context["attempt_context"]`` (a dict).
    """

    def __init__(
        self, worker_label: str | None = None, on_attempt: Callable[[Attempt], None] | None = None
    ) -> None:
        self.worker_label = worker_label
        self.on_attempt = on_attempt

    async def __call__(
        self,
        call_next: Callable[[], Awaitable[Any]],
        context: job_context.JobContext,
        worker: procrastinate_worker.Worker,
    ) -> Any:
        started = time.time()
        try:
            result = await call_next()
        except BaseException as error:
            await self._record(context, started, _outcome_of(error, context), error)
            raise
        await self._record(context, started, "succeeded", None)
        return result

    async def _record(
        self,
        context: job_context.JobContext,
        started: float,
        outcome: str,
        error: BaseException | None,
    ) -> None:
        job = context.job
        ended = time.time()
        assert job.id is not None
        attempt = Attempt(
            job_id=job.id,
            attempt=job.attempts + 1,
            task_name=job.task_name,
            worker=self.worker_label or context.worker_name,
            started_at=datetime.fromtimestamp(started, UTC),
            finished_at=datetime.fromtimestamp(ended, UTC),
            duration_ms=round(max(ended - started, 0.0) * 1000, 3),  # a clock stepped back: 0
            outcome=outcome,
            error_type=None if error is None else type(error).__name__,
            error=None if error is None else (str(error) or type(error).__name__),
            traceback=None if error is None else _traceback(error),
            context={**job_ids(job), **context.additional_context.get("attempt_context", {})},
        )
        if outcome == "succeeded":  # written with the job's finish (jobs.PausableJobManager)
            context.app.job_manager.store_with_finish(job.id, asdict(attempt))
        else:
            await store_or_log(context.app.connector, asdict(attempt))
        # A routine success of a periodic task (the 15 s stalled-job sweep, …) at DEBUG; every
        # signal's run, and every failure, at INFO or above.
        routine = outcome == "succeeded" and "timestamp" in job.task_kwargs
        log = logger.debug if routine else logger.info if outcome == "succeeded" else logger.warning
        log(
            "job %s %s attempt %s: %s in %.1f ms%s",
            job.id,
            job.task_name,
            attempt.attempt,
            outcome,
            attempt.duration_ms,
            "" if error is None else f" ({attempt.error_type}: {attempt.error})",
            extra={
                "action": "job_attempt",
                "job_id": job.id,
                "task": job.task_name,
                "attempt": attempt.attempt,
                "duration_ms": attempt.duration_ms,
                "outcome": outcome,
                **({} if error is None else {"error": f"{attempt.error_type}: {attempt.error}"}),
                **attempt.context,
            },
        )
        if outcome == "failed":
            await _notify_failed(context, attempt)
        if self.on_attempt is not None:
            self.on_attempt(attempt)


async def store_or_log(
    connector: procrastinate.connector.BaseAsyncConnector, attempt: dict[str, Any]
) -> None:
    """Insert ``attempt`` (an ``Attempt`` as a dict: ``INSERT_ATTEMPT``'s parameters) into
    ``private.job_attempts`` (once per (job, attempt); repeats ignored). A failure is logged
    (``job_attempt_unrecorded``), never raised: a record never fails its job."""
    try:
        # procrastinate's connector sends dict arguments as jsonb.
        await connector.execute_query_async(INSERT_ATTEMPT, **attempt)
    except Exception:
        logger.exception(
            "could not record job %s's attempt %s",
            attempt["job_id"],
            attempt["attempt"],
            extra={"action": "job_attempt_unrecorded", "job_id": attempt["job_id"]},
        )


async def record_cut_short(
    app: procrastinate.App,
    job_id: int,
    attempt: int,
    *,
    worker: str | None,
    outcome: str,
    error_type: str,
    error: str,
) -> None:
    """Record run ``attempt`` of job ``job_id``, which ended without the middleware seeing it end.

    ``outcome``: ``worker_died`` (the stalled-job sweep) or ``aborted`` (handed back at
    shutdown). Once per (job, attempt): a run the middleware did record is left as it is.
    """
    await app.connector.execute_query_async(
        INSERT_CUT_SHORT,
        job_id=job_id,
        attempt=attempt,
        worker=worker,
        outcome=outcome,
        error_type=error_type,
        error=error,
    )


async def record_worker_died(app: procrastinate.App, job: jobs.Job, worker: str | None) -> None:
    """Record the run of ``job`` cut short by its dead worker (outcome ``worker_died``)."""
    assert job.id is not None
    await record_cut_short(
        app,
        job.id,
        job.attempts + 1,
        worker=worker,
        outcome="worker_died",
        error_type="WorkerDied",
        error="its worker stopped sending heartbeats (killed or lost) while the job ran",
    )


async def _notify_failed(context: job_context.JobContext, attempt: Attempt) -> None:
    """Defer the "job failed after its last retry" notifications (never raises into the job)."""
    from viewzenix import notifications

    try:
        await notifications.job_failed(context.app, context.job, f"{attempt.error_type}: {attempt.error}")
    except Exception:
        logger.exception("could not defer the job-failed notification", extra={"action": "notify_unqueued"})


def _outcome_of(error: BaseException, context: job_context.JobContext) -> str:
    if isinstance(error, procrastinate_exceptions.JobAborted | asyncio.CancelledError):
        return "aborted"
    task = context.app.tasks.get(context.job.task_name)
    strategy = None if task is None else task.retry_strategy
    return "retrying" if retries(strategy, error, context.job) else "failed"


def _traceback(error: BaseException) -> str:
    text = "".join(traceback.format_exception(error))
    return text if len(text) <= TRACEBACK_LIMIT else "…" + text[-TRACEBACK_LIMIT:]
