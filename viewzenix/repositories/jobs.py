"""SQL for the admin view of the job queue: procrastinate's jobs and events, our attempt history
(``private.job_attempts``) and the admins' actions (``private.job_admin_actions``).

These tables are closed to the API roles (no grants, RLS without policies): run these on a
transaction as the backend's own role (``db.transaction()`` without claims), never as a user.
A job's creation time is its procrastinate ``deferred`` event (the jobs table has no column for it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from viewzenix.db import Connection

# procrastinate 3.10's job statuses ('aborting' is a legacy value it no longer uses).
STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")
# States a job can be put back in the queue from.
RETRYABLE = ("failed", "cancelled", "aborted")
# Attempt outcomes (private.job_attempts.outcome).
OUTCOMES = ("succeeded", "retrying", "failed", "aborted", "worker_died")

LIST_JOBS = """
select j.id, j.queue_name as queue, j.task_name as task, j.lock, j.queueing_lock, j.priority,
    j.status::text as status, j.attempts, j.scheduled_at, j.abort_requested, j.worker_id, j.args,
    d.at as created_at, la.outcome as last_outcome, la.finished_at as last_attempt_at,
    case when la.error is null then null else la.error_type || ': ' || la.error end as last_error
from public.procrastinate_jobs j
left join lateral (
    select min(e.at) as at from public.procrastinate_events e
    where e.job_id = j.id and e.type = 'deferred'
) d on true
left join lateral (
    select a.outcome, a.error_type, a.error, a.finished_at from private.job_attempts a
    where a.job_id = j.id order by a.attempt desc limit 1
) la on true
where {filters}
order by j.id desc limit %(limit)s
"""

GET_JOB = """
select j.id, j.queue_name as queue, j.task_name as task, j.lock, j.queueing_lock, j.priority,
    j.status::text as status, j.attempts, j.scheduled_at, j.abort_requested, j.worker_id, j.args,
    (select min(e.at) from public.procrastinate_events e
     where e.job_id = j.id and e.type = 'deferred') as created_at
from public.procrastinate_jobs j where j.id = %(job_id)s
"""


def list_page(
    conn: Connection,
    *,
    statuses: Sequence[str] = (),
    task: str | None = None,
    queue: str | None = None,
    lock: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    periodic: bool | None = None,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """Return ``(jobs, next_cursor)``: up to ``limit`` jobs, newest (highest id) first.

    Keyset pagination: ``before_id`` is the previous page's ``next_cursor`` (jobs with a smaller
    id follow); ``next_cursor`` is None on the last page. Filters: ``statuses`` (any of),
    ``task``, ``queue``, ``lock`` (exact), ``since`` ≤ created < ``until``, ``periodic`` (True:
    only jobs deferred by a periodic schedule, such as the stalled-job sweep; False: none of
    them; None: both). Each job carries its
    last attempt's ``last_outcome``, ``last_attempt_at`` and ``last_error`` ("Type: text").
    """
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": limit + 1}
    conditions: list[tuple[LiteralString, str, Any]] = [
        ("j.status::text = any(%(statuses)s)", "statuses", list(statuses) or None),
        ("j.task_name = %(task)s", "task", task),
        ("j.queue_name = %(queue)s", "queue", queue),
        ("j.lock = %(lock)s", "lock", lock),
        ("d.at >= %(since)s", "since", since),
        ("d.at < %(until)s", "until", until),
        ("j.id < %(before_id)s", "before_id", before_id),
        (
            "exists (select 1 from public.procrastinate_periodic_defers p where p.job_id = j.id)"
            " = %(periodic)s",
            "periodic",
            periodic,
        ),
    ]
    for fragment, name, value in conditions:
        if value is not None:
            where.append(sql.SQL(fragment))
            params[name] = value
    clause = sql.SQL(" and ").join(where) if where else sql.SQL("true")
    rows = conn.execute(sql.SQL(LIST_JOBS).format(filters=clause), params).fetchall()
    next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
    return rows[:limit], next_cursor


def get(conn: Connection, job_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    """Return one job (``created_at`` included), or None; ``lock``: FOR UPDATE of the job row."""
    query = GET_JOB + (" for update of j" if lock else "")
    return conn.execute(query, {"job_id": job_id}).fetchone()


def events(conn: Connection, job_id: int) -> list[dict[str, Any]]:
    """Return procrastinate's events of a job (``type``, ``at``), oldest first."""
    return conn.execute(
        "select type::text as type, at from public.procrastinate_events where job_id = %s order by id",
        (job_id,),
    ).fetchall()


def attempts(conn: Connection, job_id: int) -> list[dict[str, Any]]:
    """Return every recorded run of a job, first first (see ``viewzenix.jobs.attempts``)."""
    return conn.execute(
        "select attempt, task_name, worker, started_at, finished_at, duration_ms, outcome, "
        "error_type, error, traceback, context from private.job_attempts where job_id = %s "
        "order by attempt",
        (job_id,),
    ).fetchall()


# --- metrics -------------------------------------------------------------------------------

COUNTS = """
select j.task_name as task, j.status::text as status, count(*) as jobs
from public.procrastinate_jobs j
where (%(queue)s::text is null or j.queue_name = %(queue)s)
  and (%(task)s::text is null or j.task_name = %(task)s)
group by 1, 2 order by 1, 2
"""

# Due: todo and scheduled for now or earlier (or unscheduled); due since its scheduled time, or
# its creation when it has none. A due job waiting for its lock (an earlier job of its config and
# symbol running) counts: it is waiting all the same.
OLDEST_DUE = """
select j.id, extract(epoch from now() - coalesce(j.scheduled_at, d.at))::float8 as age_seconds
from public.procrastinate_jobs j
left join lateral (
    select min(e.at) as at from public.procrastinate_events e
    where e.job_id = j.id and e.type = 'deferred'
) d on true
where j.status = 'todo' and (j.scheduled_at is null or j.scheduled_at <= now())
  and (%(queue)s::text is null or j.queue_name = %(queue)s)
  and (%(task)s::text is null or j.task_name = %(task)s)
order by coalesce(j.scheduled_at, d.at), j.id limit 1
"""

# Runs that started in the window (index on started_at), by outcome and run number: the runs by
# outcome, and the jobs a run ended (succeeded, or failed for good) by the run they ended on, come
# from this one scan. The jobs table is joined only to filter by queue.
RUNS = """
select a.outcome, a.attempt, count(*) as runs
from private.job_attempts a {queue_join}
where a.started_at >= now() - make_interval(mins => %(window_minutes)s) {task_filter}
group by 1, 2
"""


def metrics_rows(
    conn: Connection, *, queue: str | None, task: str | None, window_minutes: int
) -> dict[str, Any]:
    """Return the raw figures of ``metrics``: ``counts``, ``oldest_due``, ``runs``.

    ``counts``: (task, status, jobs) over the whole jobs table; ``oldest_due``: the longest-due
    todo job's ``id`` and ``age_seconds`` (None when none is due); ``runs``: (outcome, attempt,
    runs) of the runs started in the last ``window_minutes``. ``queue``/``task``: exact filters.
    """
    params = {"queue": queue, "task": task, "window_minutes": window_minutes}
    runs = sql.SQL(RUNS).format(
        queue_join=sql.SQL(
            "join public.procrastinate_jobs j on j.id = a.job_id and j.queue_name = %(queue)s"
            if queue is not None
            else ""
        ),
        task_filter=sql.SQL("and a.task_name = %(task)s" if task is not None else ""),
    )
    return {
        "counts": conn.execute(COUNTS, params).fetchall(),
        "oldest_due": conn.execute(OLDEST_DUE, params).fetchone(),
        "runs": conn.execute(runs, params).fetchall(),
    }


# --- admin actions on a job ----------------------------------------------------------------

# Back to the queue, due now. Not procrastinate's JobManager.retry_job_by_id: it takes no
# connection (so it could not commit with the admin's record), accepts only failed (and doing)
# jobs, and adds a run that never happened to ``attempts``. Here the run count is kept, so the
# next run is recorded as attempt ``attempts + 1``.
# procrastinate notifies workers only when a job is inserted: send its 'job_inserted'
# notification (same channels and payload as procrastinate_notify_queue_job_inserted_v1) so a
# listening worker picks a retried or advanced job at once instead of at its next poll.
RETRY = """
with changed as (
    update public.procrastinate_jobs set status = 'todo', scheduled_at = now(), abort_requested = false
    where id = %(job_id)s and status in ('failed', 'cancelled', 'aborted')
    returning id, queue_name
)
select id,
    pg_notify('procrastinate_queue_v1#' || queue_name,
              json_build_object('type', 'job_inserted', 'job_id', id)::text),
    pg_notify('procrastinate_any_queue_v1', json_build_object('type', 'job_inserted', 'job_id', id)::text)
from changed
"""

RUN_NOW = """
with changed as (
    update public.procrastinate_jobs set scheduled_at = now()
    where id = %(job_id)s and status = 'todo' and scheduled_at > now()
    returning id, queue_name
)
select id,
    pg_notify('procrastinate_queue_v1#' || queue_name,
              json_build_object('type', 'job_inserted', 'job_id', id)::text),
    pg_notify('procrastinate_any_queue_v1', json_build_object('type', 'job_inserted', 'job_id', id)::text)
from changed
"""


class QueueingLockTaken(Exception):
    """Another queued job holds this job's queueing lock (procrastinate allows one per lock)."""


def retry(conn: Connection, job_id: int) -> bool:
    """Put a failed, cancelled or aborted job back in the queue, due now; True when it was.

    Raises QueueingLockTaken when another todo job has the same ``queueing_lock``.
    """
    try:
        with conn.transaction():  # a savepoint: the unique violation leaves the transaction usable
            return conn.execute(RETRY, {"job_id": job_id}).fetchone() is not None
    except psycopg.errors.UniqueViolation as error:
        raise QueueingLockTaken(str(error)) from None


def run_now(conn: Connection, job_id: int) -> bool:
    """Make a todo job scheduled in the future due now; True when it was."""
    return conn.execute(RUN_NOW, {"job_id": job_id}).fetchone() is not None


# A later signal of the same config and symbol that has already run (its job took the lock and
# recorded an outcome). Intake-rejected and duplicate signals never run (no job_id); a later
# signal that failed is not counted: it can be retried after this one, in order.
LATER_SIGNAL_RUN = """
select s.id, s.status from public.signals s
where s.config_id = %(config_id)s and s.ticker = %(ticker)s and s.id <> %(signal_id)s
  and s.received_at > %(received_at)s and s.job_id is not null
  and s.status in ('submitting', 'executed', 'ignored', 'denied', 'rejected')
order by s.received_at limit 1
"""


def later_signal_run(conn: Connection, signal: dict[str, Any]) -> dict[str, Any] | None:
    """Return a later signal of ``signal``'s config and symbol that has already run, or None."""
    return conn.execute(
        LATER_SIGNAL_RUN,
        {
            "config_id": signal["config_id"],
            "ticker": signal["ticker"],
            "signal_id": signal["id"],
            "received_at": signal["received_at"],
        },
    ).fetchone()


INSERT_ACTION = """
insert into private.job_admin_actions
    (job_id, action, result, code, from_status, to_status, message, actor_id, actor_email, signal_id,
     detail)
values
    (%(job_id)s, %(action)s, %(result)s, %(code)s, %(from_status)s, %(to_status)s, %(message)s,
     %(actor_id)s, %(actor_email)s, %(signal_id)s, %(detail)s)
returning *
"""


def record_action(conn: Connection, **values: Any) -> dict[str, Any]:
    """Insert one ``private.job_admin_actions`` row (columns as keywords; ``detail`` a dict); return it."""
    detail = values.get("detail")
    values = {
        "job_id": None,
        "signal_id": None,
        "code": None,
        "from_status": None,
        "to_status": None,
        **values,
        "detail": None if detail is None else Jsonb(detail, dumps=lambda v: json.dumps(v, default=str)),
    }
    return conn.execute(INSERT_ACTION, values).fetchone()


# --- the global pause ----------------------------------------------------------------------

QUEUE_STATE = "select paused, reason, changed_at, changed_by, changed_by_email from private.job_queue_state"

SET_QUEUE_STATE = """
update private.job_queue_state
set paused = %(paused)s, reason = %(reason)s, changed_at = now(), changed_by = %(actor_id)s,
    changed_by_email = %(actor_email)s
returning paused, reason, changed_at, changed_by, changed_by_email
"""


def queue_state(conn: Connection, *, lock: bool = False) -> dict[str, Any]:
    """Return the queue's pause state: ``{paused, reason, changed_at, changed_by, changed_by_email}``."""
    return conn.execute(QUEUE_STATE + (" for update" if lock else "")).fetchone()


def waiting_jobs(conn: Connection) -> int:
    """Return how many jobs wait in the queue (status todo, due or scheduled)."""
    return conn.execute(
        "select count(*) as n from public.procrastinate_jobs where status = 'todo'"
    ).fetchone()["n"]


def wake_workers(conn: Connection) -> None:
    """Wake every listening worker now (procrastinate's ``job_inserted`` notification), on commit."""
    conn.execute("select pg_notify('procrastinate_any_queue_v1', '{\"type\": \"job_inserted\"}')")


def set_queue_state(
    conn: Connection, *, paused: bool, reason: str | None, actor_id: Any, actor_email: str | None
) -> dict[str, Any]:
    """Pause or resume automatic processing; return the new state."""
    return conn.execute(
        SET_QUEUE_STATE,
        {"paused": paused, "reason": reason, "actor_id": actor_id, "actor_email": actor_email},
    ).fetchone()


# --- the archive of failed jobs ------------------------------------------------------------

# Failed or aborted jobs whose last event is older than the cutoff: copied with their attempts
# and events into private.job_archive, then deleted (their attempts cascade) in one statement.
ARCHIVE_FAILED_JOBS = """
with old as (
    select j.id from public.procrastinate_jobs j
    where j.status = any(%(statuses)s::public.procrastinate_job_status[])
      and (select max(e.at) from public.procrastinate_events e where e.job_id = j.id) < %(before)s
    order by j.id
    limit %(batch)s
    for update skip locked
), archived as (
    insert into private.job_archive (job_id, queue_name, task_name, lock, queueing_lock, args, status,
        attempts, created_at, ended_at, last_error, attempt_history, events)
    select j.id, j.queue_name, j.task_name, j.lock, j.queueing_lock, j.args, j.status::text, j.attempts,
        ev.created_at, ev.ended_at, la.last_error, coalesce(la.history, '[]'::jsonb),
        coalesce(ev.events, '[]'::jsonb)
    from public.procrastinate_jobs j join old on old.id = j.id
    left join lateral (
        select min(e.at) filter (where e.type = 'deferred') as created_at, max(e.at) as ended_at,
               jsonb_agg(jsonb_build_object('type', e.type, 'at', e.at) order by e.id) as events
        from public.procrastinate_events e where e.job_id = j.id
    ) ev on true
    left join lateral (
        select jsonb_agg(to_jsonb(a) - 'id' - 'job_id' order by a.attempt) as history,
               (array_agg(coalesce(a.error_type || ': ', '') || a.error order by a.attempt desc)
                    filter (where a.error is not null))[1] as last_error
        from private.job_attempts a where a.job_id = j.id
    ) la on true
    on conflict (job_id) do nothing
    returning job_id
), gone as (
    delete from public.procrastinate_jobs j using old where j.id = old.id returning 1
)
select (select count(*) from archived) as archived, (select count(*) from gone) as deleted
"""

PURGE_ARCHIVE = "delete from private.job_archive where archived_at < %(before)s"


def archive_failed_jobs(conn: Connection, *, statuses: list[str], before: Any, batch: int) -> dict[str, int]:
    """Move up to ``batch`` jobs of ``statuses`` that ended before ``before`` to the archive.

    Returns ``{"archived", "deleted"}`` (equal unless a job was archived before).
    """
    row = conn.execute(
        ARCHIVE_FAILED_JOBS, {"statuses": statuses, "before": before, "batch": batch}
    ).fetchone()
    return {"archived": int(row["archived"]), "deleted": int(row["deleted"])}


def purge_archive(conn: Connection, *, before: Any) -> int:
    """Delete archived jobs archived before ``before``; return how many."""
    return conn.execute(PURGE_ARCHIVE, {"before": before}).rowcount


ARCHIVE_PAGE = """
select id, job_id, queue_name as queue, task_name as task, lock, queueing_lock, args, status, attempts,
       created_at, ended_at, last_error, archived_at
       {history}
from private.job_archive
where (%(task)s::text is null or task_name = %(task)s)
  and (%(status)s::text is null or status = %(status)s)
  and (%(job_id)s::bigint is null or job_id = %(job_id)s)
  and (%(q)s::text is null or last_error ilike '%%' || %(q)s || '%%'
       or args::text ilike '%%' || %(q)s || '%%')
  and (%(since)s::timestamptz is null or ended_at >= %(since)s)
  and (%(until)s::timestamptz is null or ended_at < %(until)s)
  and (%(before_id)s::bigint is null or id < %(before_id)s)
order by id desc limit %(limit)s
"""


def archive_page(
    conn: Connection,
    *,
    task: str | None = None,
    status: str | None = None,
    job_id: int | None = None,
    q: str | None = None,
    since: Any = None,
    until: Any = None,
    before_id: int | None = None,
    limit: int = 50,
    with_history: bool = False,
) -> tuple[list[dict[str, Any]], int | None]:
    """Return ``(archived jobs, next_cursor)``, newest archived first (keyset on ``id``).

    ``q``: a case-insensitive substring of the last error or the arguments' JSON text.
    ``with_history``: include ``attempt_history`` and ``events``.
    """
    sql = ARCHIVE_PAGE.format(history=", attempt_history, events" if with_history else "")
    rows = conn.execute(
        sql,
        {
            "task": task,
            "status": status,
            "job_id": job_id,
            "q": q,
            "since": since,
            "until": until,
            "before_id": before_id,
            "limit": limit + 1,
        },
    ).fetchall()
    next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
    return rows[:limit], next_cursor


def actions(
    conn: Connection,
    *,
    job_id: int | None = None,
    action: str | None = None,
    actor_id: Any = None,
    before_id: int | None = None,
    limit: int = 1000,
) -> tuple[list[dict[str, Any]], int | None]:
    """Return ``(actions, next_cursor)``: admin actions, newest first (keyset on ``id`` as in
    ``list_page``), filtered by ``job_id``, ``action`` and ``actor_id`` when given."""
    rows = conn.execute(
        """
        select * from private.job_admin_actions
        where (%(job_id)s::bigint is null or job_id = %(job_id)s)
          and (%(action)s::text is null or action = %(action)s)
          and (%(actor_id)s::uuid is null or actor_id = %(actor_id)s)
          and (%(before_id)s::bigint is null or id < %(before_id)s)
        order by id desc limit %(limit)s
        """,
        {
            "job_id": job_id,
            "action": action,
            "actor_id": actor_id,
            "before_id": before_id,
            "limit": limit + 1,
        },
    ).fetchall()
    next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
    return rows[:limit], next_cursor
