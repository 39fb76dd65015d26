"""The admin tools of the job queue: metrics, jobs with their attempts, retry / cancel / run-now.

For admins only (``Caller.is_admin``: ``app_metadata.role`` = ``admin``); anyone else gets
Forbidden (``admin_required``). The queue's tables (procrastinate's ``procrastinate_jobs`` and
``procrastinate_events``, our ``private.job_attempts`` and ``private.job_admin_actions``) are
closed to the API roles, so every call here runs its transaction as the backend's own role
(``db.transaction()`` without claims), across all users, after the admin check.

Actions, each recorded in ``private.job_admin_actions`` (who, what, when, the job, the result)
in the same transaction as the change, refusals included:

- **retry**: a ``failed``, ``cancelled`` or ``aborted`` job goes back to ``todo``, due now. Its
  run count is kept, so the next run is recorded as the next attempt; the task's retry strategy
  then allows the runs it has left (at least this one). A signal's job (``execute_signal``)
  re-runs safely: its signal is ``failed`` with ``job_id`` = this job, which ``execute_signal``
  runs again, resuming from what the ledger recorded (each ``pending_new`` order is looked up at
  the broker by ``client_order_id`` before it is sent), so no second order is placed. Refused
  (``job_superseded``) when a later signal of the same config and symbol has already run:
  running this one now would execute the two out of order (send a new alert instead).
- **cancel**: a ``todo`` job becomes ``cancelled`` (procrastinate's ``cancel_job_by_id``). A
  signal's job: the signal, still ``accepted`` (or ``submitting``/``failed`` between retries),
  is marked ``failed`` with "canceled by an admin" and the admin's email, so it is not left
  waiting forever; retrying the job later runs it again. A ``doing`` job gets an abort request
  (``cancel_job_by_id(abort=True)``): async tasks are cancelled, a sync task such as
  ``execute_signal`` finishes its run (stopping between the broker call and its record would
  leave the order unrecorded), so the job ends as its run does.
- **run-now**: a ``todo`` job scheduled in the future (a retry's backoff, a deferred job) is due
  now. A job of a (config, symbol) lock still runs after the earlier jobs of that lock.

A state that does not allow the action answers Conflict (409) with a machine-readable code:
``job_not_retryable``, ``job_superseded``, ``job_queueing_lock_taken``, ``job_not_cancelable``,
``job_not_scheduled``; ``errors`` holds ``job_status`` and the recorded ``action_id``. An
unknown job id is NotFound (404), recorded too.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from procrastinate import App as JobApp

from viewzenix.db import Connection, Database
from viewzenix.exceptions import Conflict, Forbidden, NotFound
from viewzenix.jobs import EXECUTE_SIGNAL
from viewzenix.repositories import jobs as jobs_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import signals as signals_repo
from viewzenix.services.common import Caller

logger = logging.getLogger(__name__)

RETRY, CANCEL, RUN_NOW = "retry", "cancel", "run_now"
PAUSE, RESUME, SYNC_TABLE, SYNC_USER = "pause", "resume", "sync_table", "sync_user"
ACTIONS = (RETRY, CANCEL, RUN_NOW, PAUSE, RESUME, SYNC_TABLE, SYNC_USER)
MAX_JOB_ID = 2**63 - 1  # procrastinate's ids are bigint
# A signal still waiting for (or between runs of) its job: canceling the job ends it.
_WAITING_SIGNAL = ("accepted", "submitting", "failed")


def require_admin(caller: Caller) -> None:
    """Raise Forbidden (``admin_required``) unless ``caller`` is an admin (app_metadata.role)."""
    if not caller.is_admin:
        raise Forbidden(
            "The job queue's admin tools are for admins (app_metadata.role = admin).",
            code="admin_required",
        )


# --- reading -------------------------------------------------------------------------------


def metrics(
    db: Database,
    caller: Caller,
    *,
    queue: str | None = None,
    task: str | None = None,
    window_minutes: int = 60,
) -> dict[str, Any]:
    """Return the queue's figures now, optionally for one ``queue`` and/or ``task``.

    Shape: ``by_status`` {status: jobs} (every procrastinate status, zeros included);
    ``by_task`` [{task, total, by_status}]; ``total``; ``oldest_due_job_id`` and
    ``oldest_due_age_seconds`` (the todo job due the longest: seconds since its scheduled time,
    or since it was deferred when unscheduled; None when none is due); and over the last
    ``window_minutes`` (default 60), from the attempt history: ``runs`` {outcome: runs started
    in the window}, ``runs_per_minute``, ``jobs_ended`` (jobs whose run in the window ended them,
    succeeded or failed), ``jobs_per_minute`` (those per minute), ``failure_rate`` (failed ÷
    ended, 0–1, None when none ended), ``run_failure_rate`` (runs that did not succeed ÷ runs,
    None when no run) and ``attempts_histogram`` [{attempts, jobs}] (jobs that ended in the
    window by the number of runs they took). Raises Forbidden for non-admins.
    """
    require_admin(caller)
    with db.transaction() as conn:
        raw = jobs_repo.metrics_rows(conn, queue=queue, task=task, window_minutes=window_minutes)
    by_status = dict.fromkeys(jobs_repo.STATUSES, 0)
    by_task: dict[str, dict[str, int]] = {}
    for row in raw["counts"]:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["jobs"]
        by_task.setdefault(row["task"], dict.fromkeys(jobs_repo.STATUSES, 0))[row["status"]] = row["jobs"]
    runs = dict.fromkeys(jobs_repo.OUTCOMES, 0)
    ended_by_attempts: dict[int, int] = {}
    for row in raw["runs"]:
        runs[row["outcome"]] += row["runs"]
        if row["outcome"] in ("succeeded", "failed"):  # the run that ended its job
            ended_by_attempts[row["attempt"]] = ended_by_attempts.get(row["attempt"], 0) + row["runs"]
    total_runs = sum(runs.values())
    ended = runs["succeeded"] + runs["failed"]
    oldest = raw["oldest_due"]
    return {
        "queue": queue,
        "task": task,
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_task": [
            {"task": name, "total": sum(counts.values()), "by_status": counts}
            for name, counts in sorted(by_task.items())
        ],
        "oldest_due_job_id": None if oldest is None else oldest["id"],
        "oldest_due_age_seconds": None if oldest is None else round(max(oldest["age_seconds"], 0.0), 3),
        "window_minutes": window_minutes,
        "runs": runs,
        "runs_per_minute": round(total_runs / window_minutes, 3),
        "jobs_ended": ended,
        "jobs_per_minute": round(ended / window_minutes, 3),
        "failure_rate": round(runs["failed"] / ended, 4) if ended else None,
        "run_failure_rate": round((total_runs - runs["succeeded"]) / total_runs, 4) if total_runs else None,
        "attempts_histogram": [
            {"attempts": attempts, "jobs": jobs} for attempts, jobs in sorted(ended_by_attempts.items())
        ],
    }


def list_jobs(
    db: Database, caller: Caller, *, filters: Mapping[str, Any], limit: int, cursor: int | None = None
) -> dict[str, Any]:
    """Return ``{"jobs": [...], "next_cursor": int | None}``, newest first (keyset pagination).

    ``filters``: ``status`` (a list: any of), ``task``, ``queue``, ``lock``, ``since``/``until``
    (creation time, aware datetimes), ``periodic`` (bool: only / none of the jobs deferred by a
    periodic schedule). ``cursor``: the previous page's ``next_cursor``. Raises
    Forbidden for non-admins.
    """
    require_admin(caller)
    with db.transaction() as conn:
        rows, next_cursor = jobs_repo.list_page(
            conn,
            statuses=filters.get("status") or (),
            task=filters.get("task"),
            queue=filters.get("queue"),
            lock=filters.get("lock"),
            since=filters.get("since"),
            until=filters.get("until"),
            before_id=cursor,
            periodic=filters.get("periodic"),
            limit=limit,
        )
    return {"jobs": [_with_signal_id(row) for row in rows], "next_cursor": next_cursor}


def get_job(db: Database, caller: Caller, job_id: int) -> dict[str, Any]:
    """Return one job: its row (``args`` = the task's arguments), procrastinate's ``events``,
    every recorded run in ``attempt_history`` (outcome, ``error_type``, ``error``, ``traceback``,
    ``duration_ms``…), the ``signal`` it executes and that signal's ``orders`` (None and [] for
    other tasks), and the admins' ``actions`` on it, newest first.

    The signal is the one named by the job's ``signal_id`` argument (its primary key; the
    ``signals.job_id`` link is not indexed). Raises Forbidden for non-admins, NotFound.
    """
    require_admin(caller)
    if not 0 < job_id <= MAX_JOB_ID:
        raise NotFound(f"No job {job_id}.")
    with db.transaction() as conn:
        job = jobs_repo.get(conn, job_id)
        if job is None:
            raise NotFound(f"No job {job_id}.")
        job = _with_signal_id(job)
        signal = _signal_of(conn, job)
        actions, _ = jobs_repo.actions(conn, job_id=job_id)
        return {
            **job,
            "events": jobs_repo.events(conn, job_id),
            "attempt_history": jobs_repo.attempts(conn, job_id),
            "signal": signal,
            "orders": [] if signal is None else orders_repo.for_signal(conn, signal["id"]),
            "actions": actions,
        }


def list_actions(
    db: Database,
    caller: Caller,
    *,
    job_id: int | None = None,
    action: str | None = None,
    actor_id: uuid.UUID | None = None,
    limit: int,
    cursor: int | None = None,
) -> dict[str, Any]:
    """Return ``{"actions": [...], "next_cursor": int | None}``: admins' actions on jobs, newest
    first, optionally of one ``job_id``, ``action`` or ``actor_id``. Raises Forbidden."""
    require_admin(caller)
    with db.transaction() as conn:
        rows, next_cursor = jobs_repo.actions(
            conn, job_id=job_id, action=action, actor_id=actor_id, before_id=cursor, limit=limit
        )
    return {"actions": rows, "next_cursor": next_cursor}


# --- the global pause ----------------------------------------------------------------------


def queue_state(db: Database, caller: Caller) -> dict[str, Any]:
    """Return ``{paused, reason, changed_at, changed_by, changed_by_email, waiting}``.

    ``waiting``: todo jobs (what will run after a resume). Raises Forbidden for non-admins.
    """
    require_admin(caller)
    with db.transaction() as conn:
        state = jobs_repo.queue_state(conn)
        waiting = jobs_repo.waiting_jobs(conn)
    return {**state, "waiting": waiting}


def set_paused(db: Database, caller: Caller, paused: bool, reason: str | None = None) -> dict[str, Any]:
    """Pause (``paused=True``) or resume automatic job processing; record it in the audit.

    While paused, workers and the cron runner take no new job (``jobs.PausableJobManager``);
    alerts are still stored and their jobs queued; jobs already running finish; the admin tools
    (retry, cancel, run-now, reconcile, sync) keep working — their jobs run after the resume.
    Resuming wakes the workers at once. Idempotent: pausing a paused queue changes nothing and
    is recorded as done with the same from/to state. Returns the new state (``queue_state``)
    plus ``action`` (the audit record). Raises Forbidden for non-admins.
    """
    require_admin(caller)
    action = PAUSE if paused else RESUME
    with db.transaction() as conn:
        before = jobs_repo.queue_state(conn, lock=True)
        after = jobs_repo.set_queue_state(
            conn,
            paused=paused,
            reason=reason if paused else None,
            actor_id=caller.user_id,
            actor_email=caller.email,
        )
        if not paused:
            jobs_repo.wake_workers(conn)
        waiting = jobs_repo.waiting_jobs(conn)
        state_name = {True: "paused", False: "running"}
        record = jobs_repo.record_action(
            conn,
            action=action,
            result="done",
            from_status=state_name[before["paused"]],
            to_status=state_name[after["paused"]],
            message=(
                f"queue {state_name[before['paused']]} → {state_name[after['paused']]}"
                + (f": {reason}" if paused and reason else "")
                + f"; {waiting} job(s) waiting"
            ),
            actor_id=caller.user_id,
            actor_email=caller.email,
            detail={"reason": reason, "waiting": waiting},
        )
    logger.warning(
        "job queue %s by %s",
        "paused" if paused else "resumed",
        caller.email or caller.user_id,
        extra={"action": f"job_queue_{action}", "admin_id": str(caller.user_id), "reason": reason},
    )
    return {**after, "waiting": waiting, "action": record}


# --- the archive ---------------------------------------------------------------------------


def search_archive(
    db: Database,
    caller: Caller,
    *,
    filters: Mapping[str, Any],
    limit: int,
    cursor: int | None = None,
) -> dict[str, Any]:
    """Return ``{"jobs": [...], "next_cursor"}``: archived failed/aborted jobs, newest archived first.

    ``filters``: ``task``, ``status``, ``job_id``, ``q`` (substring of the last error or the
    arguments), ``since``/``until`` (when the job ended). Each job carries ``attempt_history``
    (every run with its error and traceback) and procrastinate's ``events``. Raises Forbidden.
    """
    require_admin(caller)
    with db.transaction() as conn:
        rows, next_cursor = jobs_repo.archive_page(
            conn,
            task=filters.get("task"),
            status=filters.get("status"),
            job_id=filters.get("job_id"),
            q=filters.get("q"),
            since=filters.get("since"),
            until=filters.get("until"),
            before_id=cursor,
            limit=limit,
            with_history=True,
        )
    return {"jobs": rows, "next_cursor": next_cursor}


# --- actions -------------------------------------------------------------------------------


def retry(db: Database, job_app: JobApp, caller: Caller, job_id: int) -> dict[str, Any]:
    """Put a failed, cancelled or aborted job back in the queue, due now (see module doc).

    Returns ``{"action": <the recorded action>, "job": <the job now>}``. Raises Forbidden,
    NotFound, Conflict (``job_not_retryable``, ``job_superseded``, ``job_queueing_lock_taken``).
    """
    return _act(db, job_app, caller, job_id, RETRY)


def cancel(db: Database, job_app: JobApp, caller: Caller, job_id: int) -> dict[str, Any]:
    """Cancel a todo job, or request the abort of a running one (see module doc).

    Returns ``{"action", "job"}`` (``job.abort_requested`` true for a running job). Raises
    Forbidden, NotFound, Conflict (``job_not_cancelable``: the job has finished).
    """
    return _act(db, job_app, caller, job_id, CANCEL)


def run_now(db: Database, job_app: JobApp, caller: Caller, job_id: int) -> dict[str, Any]:
    """Make a todo job scheduled in the future due now. Returns ``{"action", "job"}``.

    Raises Forbidden, NotFound, Conflict (``job_not_scheduled``: not todo, or already due).
    """
    return _act(db, job_app, caller, job_id, RUN_NOW)


class _Refused(Exception):
    def __init__(self, error: Conflict | NotFound) -> None:
        self.error = error


def _act(db: Database, job_app: JobApp, caller: Caller, job_id: int, action: str) -> dict[str, Any]:
    require_admin(caller)
    if not 0 < job_id <= MAX_JOB_ID:  # no such job can exist (nor be recorded)
        raise NotFound(f"No job {job_id}.")
    with db.transaction() as conn:
        job = jobs_repo.get(conn, job_id, lock=True)
        signal = None if job is None else _signal_of(conn, _with_signal_id(job), lock=True)
        try:
            if job is None:
                raise _Refused(NotFound(f"No job {job_id}."))
            message = _apply(conn, job_app, caller, job, signal, action)
        except _Refused as refused:
            error = refused.error
            record = _record(conn, caller, job_id, action, job, job, signal, error.message, error.code)
            error.errors = {**(error.errors or {}), "action_id": record["id"]}
            refusal = error
        else:
            after = jobs_repo.get(conn, job_id)
            record = _record(conn, caller, job_id, action, job, after, signal, message, None)
            refusal = None
    log = logger.info if refusal is None else logger.warning
    log(
        "admin %s on job %s: %s",
        action,
        job_id,
        record["message"],
        extra={
            "action": f"job_admin_{action}",
            "job_id": job_id,
            "result": record["result"],
            "code": record["code"],
            "admin_id": str(caller.user_id),
            **({} if signal is None else {"signal_id": str(signal["id"])}),
        },
    )
    if refusal is not None:
        raise refusal
    return {"action": record, "job": _with_signal_id(after)}


def _apply(
    conn: Connection,
    job_app: JobApp,
    caller: Caller,
    job: dict[str, Any],
    signal: dict[str, Any] | None,
    action: str,
) -> str:
    """Apply ``action`` to the locked ``job``; return what was done, or raise _Refused."""
    job_id, status = job["id"], job["status"]
    if action == RETRY:
        not_retryable = _refuse(
            "job_not_retryable",
            f"Job {job_id} is {status}: only a failed, cancelled or aborted job can be retried.",
            status,
        )
        if status not in jobs_repo.RETRYABLE:
            raise not_retryable
        later = None if signal is None else jobs_repo.later_signal_run(conn, signal)
        if later is not None:
            raise _refuse(
                "job_superseded",
                f"Job {job_id}'s signal has a later signal of the same config and symbol that has "
                f"already run ({later['id']}, {later['status']}): running this one now would execute "
                "them out of order. Send a new alert instead.",
                status,
            )
        try:
            if not jobs_repo.retry(conn, job_id):
                raise not_retryable
        except jobs_repo.QueueingLockTaken:
            raise _refuse(
                "job_queueing_lock_taken",
                f"Another queued job holds job {job_id}'s queueing lock {job['queueing_lock']!r}.",
                status,
            ) from None
        return f"{status} → todo, due now"
    if action == CANCEL:
        manager = job_app.job_manager
        if status == "todo":
            manager.cancel_job_by_id(job_id, abort=False, connection=conn)
            note = _end_signal(conn, caller, job, signal)
            return "todo → cancelled" + (f"; {note}" if note else "")
        if status == "doing":
            manager.cancel_job_by_id(job_id, abort=True, connection=conn)
            return "abort requested while running (a sync task such as execute_signal finishes its run)"
        raise _refuse(
            "job_not_cancelable",
            f"Job {job_id} is {status}: only a todo job can be canceled, or a running one aborted.",
            status,
        )
    assert action == RUN_NOW
    if not jobs_repo.run_now(conn, job_id):
        due = "already due" if status == "todo" else status
        raise _refuse(
            "job_not_scheduled",
            f"Job {job_id} is {due}: only a todo job scheduled in the future can be run now.",
            status,
        )
    return f"todo scheduled at {job['scheduled_at'].isoformat()} → due now"


def _refuse(code: str, message: str, status: str) -> _Refused:
    return _Refused(Conflict(message, code=code, errors={"job_status": status}))


def _end_signal(
    conn: Connection, caller: Caller, job: dict[str, Any], signal: dict[str, Any] | None
) -> str | None:
    """Mark the signal of a canceled execute_signal job ``failed`` (it would wait forever)."""
    if signal is None or signal["job_id"] != job["id"] or signal["status"] not in _WAITING_SIGNAL:
        return None
    who = caller.email or str(caller.user_id)
    signals_repo.finish(
        conn, signal["id"], "failed", f"execution canceled by an admin ({who}); job {job['id']} canceled"
    )
    return f"signal {signal['id']} {signal['status']} → failed"


def _record(
    conn: Connection,
    caller: Caller,
    job_id: int,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    signal: dict[str, Any] | None,
    message: str,
    code: str | None,
) -> dict[str, Any]:
    return jobs_repo.record_action(
        conn,
        job_id=job_id,
        action=action,
        result="done" if code is None else "refused",
        code=code,
        from_status=None if before is None else before["status"],
        to_status=None if after is None else after["status"],
        message=message,
        actor_id=caller.user_id,
        actor_email=caller.email,
        signal_id=None if signal is None else signal["id"],
    )


def _with_signal_id(job: dict[str, Any]) -> dict[str, Any]:
    """Add ``signal_id`` (the ``signal_id`` argument of a signal's job, else None)."""
    value = (job.get("args") or {}).get("signal_id") if job["task"] == EXECUTE_SIGNAL else None
    try:
        signal_id = uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        signal_id = None
    return {**job, "signal_id": signal_id}


def _signal_of(conn: Connection, job: dict[str, Any], *, lock: bool = False) -> dict[str, Any] | None:
    if job.get("signal_id") is None:
        return None
    if lock:
        return signals_repo.get_for_update(conn, job["signal_id"])
    return signals_repo.get(conn, job["signal_id"])
