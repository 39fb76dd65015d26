"""Run a procrastinate worker whose stop on SIGTERM/SIGINT is bounded in time.

What procrastinate 3.10 does on its own: on SIGTERM it stops fetching, waits up to
``shutdown_graceful_timeout`` seconds for the running jobs, then *asks* them to abort. An async
task is cancelled; a sync task (ours: ``execute_signal`` runs in a thread) cannot be, so the
worker then waits for it however long it takes — the bound only holds for async tasks. And a
second SIGTERM kills the process at once (its handler is uninstalled after the first), leaving
the job ``doing`` until stalled-job recovery notices the dead worker.

``run_worker`` keeps procrastinate's graceful stop and adds the bound: a job still running
``shutdown_timeout`` seconds (+ a short margin for procrastinate to record the outcome) after the
first signal, or when a second signal arrives, is handed back to the queue (procrastinate's
``retry_job_by_id``: ``todo``, due 5 s later, one attempt counted) and the process exits at once. The
job's next run resumes from what the ledger recorded (a ``pending_new`` order is looked up at the
broker by ``client_order_id`` before any submit), so handing back never makes a second order.
No job of this worker is left ``doing``.

The database going away (a restart, a failover) is not a reason to exit: procrastinate 3.10
stops its worker when a query fails or when its LISTEN connection cannot be re-opened (its
listener reconnects only while the server answers). ``run_worker`` then waits for the database
(``select 1`` every ``DATABASE_POLL_SECONDS``), hands back the jobs that run left ``doing`` (by
then procrastinate has waited for every job thread, so none is still running) and starts a new
worker run — LISTEN re-established, with the 1 s fetch poll as the fallback — usually within a
second of the database's return. The process only exits on SIGTERM/SIGINT.

Heartbeats stop when the stop begins (procrastinate cancels its side tasks first), so the bound
must stay well below ``STALLED_JOB_SECONDS``, else another worker's stalled-job sweep would
retry a job that is still finishing here (``config.py`` checks this).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate

from viewzenix.jobs.attempts import record_cut_short

logger = logging.getLogger(__name__)

# Past the bound, how long procrastinate gets to record the outcome of a job that just ended.
RECORD_MARGIN_SECONDS = 2.0
# While the database is away, how often the worker checks whether it is back.
DATABASE_POLL_SECONDS = 0.5
EXIT_HANDED_BACK = 0  # a requested stop: exit 0 even when jobs were handed back

# A handed-back job is due this long after the hand-back (the process exits right after it).
HAND_BACK_DELAY_SECONDS = 5

DOING_JOBS_OF_WORKER = """
select id, attempts from procrastinate_jobs where worker_id = %(worker_id)s and status = 'doing' order by id
"""


class _WorkerSeen:
    """Worker middleware: remembers the worker's id (in ``procrastinate_workers``) at its first job."""

    def __init__(self) -> None:
        self.worker_id: int | None = None
        self.worker_name: str | None = None

    async def __call__(self, call_next: Any, context: procrastinate.JobContext, worker: Any) -> Any:
        self.worker_id = worker.worker_id
        self.worker_name = context.worker_name
        return await call_next()


def run_worker(job_app: procrastinate.App, *, shutdown_timeout: float, **worker_options: Any) -> None:
    """Run ``job_app``'s worker until SIGTERM/SIGINT; stop within ``shutdown_timeout`` seconds.

    ``worker_options`` are procrastinate's ``run_worker`` options (``concurrency``,
    ``worker_middleware`` …; ``install_signal_handlers`` and ``shutdown_graceful_timeout`` are
    set here). Returns once the worker stopped with every job finished; exits the process
    (``os._exit``) after handing back the jobs still running past the bound.
    """
    asyncio.run(_run(job_app, shutdown_timeout, worker_options))


async def _run(job_app: procrastinate.App, shutdown_timeout: float, options: dict[str, Any]) -> None:
    seen = _WorkerSeen()
    options = {
        **options,
        "install_signal_handlers": False,
        "shutdown_graceful_timeout": shutdown_timeout,
        "worker_middleware": [seen, *(options.get("worker_middleware") or [])],
    }
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    async with job_app.open_async():
        while True:
            worker = asyncio.create_task(job_app.run_worker_async(**options), name="procrastinate worker")
            if await _interrupted(worker, stop_requested, timeout=None):
                break
            error = None if worker.cancelled() else worker.exception()
            if not options.get("wait", True) or (error is not None and not _is_database_error(error)):
                worker.result()  # ended on its own (wait=False), or a bug: re-raise
                return
            # The database went away (a failed query, or the listener could not reconnect).
            logger.warning(
                "worker lost the database (%s); restarting once it answers",
                error or "listener stopped",
                extra={"action": "worker_database_lost"},
            )
            if not await _wait_for_database(job_app, stop_requested):
                return  # stop requested while the database was away; no job is running
            try:
                handed_back = await _hand_back(job_app, seen, "DatabaseLost", LOST_DATABASE)
            except Exception:  # gone again: the next run fails and comes back here
                handed_back = []
            logger.warning(
                "database is back: worker restarting (jobs of the lost run handed back: %s)",
                handed_back or "none",
                extra={"action": "worker_database_back"},
            )
        logger.info(
            "stop requested: no new jobs; waiting up to %s s for running jobs to finish",
            shutdown_timeout,
            extra={"action": "worker_stopping"},
        )
        stop_requested.clear()
        worker.cancel()  # procrastinate: stop fetching, wait shutdown_graceful_timeout, abort
        if not await _interrupted(worker, stop_requested, timeout=shutdown_timeout + RECORD_MARGIN_SECONDS):
            return  # every running job finished and was recorded
        handed_back = await _hand_back(job_app, seen, "WorkerShutdown", SHUT_DOWN)
        logger.warning(
            "jobs still running past the shutdown bound were handed back to the queue: %s",
            handed_back or "none",
            extra={"action": "worker_stopped_with_jobs_handed_back"},
        )
        _exit_now(EXIT_HANDED_BACK)  # the job's thread cannot be stopped; the process can


def _is_database_error(error: BaseException) -> bool:
    """Whether ``error`` (as procrastinate re-raises it) means the database is unreachable."""
    import psycopg
    from procrastinate import exceptions

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, psycopg.OperationalError | exceptions.ConnectorException | OSError):
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False


async def _wait_for_database(job_app: procrastinate.App, stop: asyncio.Event) -> bool:
    """Poll ``select 1`` until the database answers (True) or ``stop`` is set (False)."""
    while not stop.is_set():
        try:
            await job_app.job_manager.connector.execute_query_one_async("select 1 as one")
            return True
        except Exception:  # still away
            try:
                await asyncio.wait_for(stop.wait(), timeout=DATABASE_POLL_SECONDS)
            except TimeoutError:
                pass
    return False


async def _interrupted(worker: asyncio.Task[Any], stop: asyncio.Event, *, timeout: float | None) -> bool:
    """Wait for the worker to end, ``stop`` to be set, or ``timeout``; True unless the worker ended."""
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({worker, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if worker in done:
        if worker.cancelled():
            return False
        worker.exception()  # retrieved here; ``result()`` re-raises it for the caller
        return False
    return True


SHUT_DOWN = "the worker shut down before the job ended; handed back to the queue"
LOST_DATABASE = "the worker lost the database while the job ran; handed back to the queue"


async def _hand_back(job_app: procrastinate.App, seen: _WorkerSeen, error_type: str, error: str) -> list[int]:
    """Put this worker's ``doing`` jobs back to ``todo``, due in HAND_BACK_DELAY_SECONDS; return their ids.

    Each run cut short is recorded (outcome ``aborted``, ``error_type``, ``error``).
    """
    if seen.worker_id is None:
        return []
    manager = job_app.job_manager
    rows = await manager.connector.execute_query_all_async(DOING_JOBS_OF_WORKER, worker_id=seen.worker_id)
    handed = []
    for row in rows:
        try:
            # Due a little later, not now: this process still runs the job's thread until it
            # exits just below; a job due now could start on another worker meanwhile. Jobs of
            # its (config, symbol) stay behind it (procrastinate runs a lock's jobs in id order).
            await manager.retry_job_by_id_async(
                row["id"], retry_at=datetime.now(UTC) + timedelta(seconds=HAND_BACK_DELAY_SECONDS)
            )
        except Exception:  # it finished (or was aborted) meanwhile: nothing to hand back
            logger.info(
                "job %s ended meanwhile", row["id"], extra={"action": "job_ended", "job_id": row["id"]}
            )
            continue
        # The run the middleware will never see end: recorded as aborted (attempt = runs before it + 1).
        await record_cut_short(
            job_app,
            row["id"],
            row["attempts"] + 1,
            worker=seen.worker_name,
            outcome="aborted",
            error_type=error_type,
            error=error,
        )
        logger.warning(
            "job %s handed back to the queue (%s; its next run resumes from the ledger)",
            row["id"],
            error_type,
            extra={"action": "job_handed_back", "job_id": row["id"]},
        )
        handed.append(row["id"])
    return handed


def _exit_now(code: int) -> None:
    """Exit without waiting for the job thread still running (``asyncio.run`` would join it)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
