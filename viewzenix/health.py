"""``GET /healthz`` (this instance, for load balancers) and ``GET /readyz`` (the system, for alerting).

The split (docs/health-probes.md): a load balancer or orchestrator probes ``/healthz``, which
depends only on what this instance needs to answer a request (the database). ``/readyz`` reports
the whole system — the queue's backlog and the workers' heartbeats, shared by every web
instance — so it fails on every instance at once during a bar-close burst or a worker outage;
as a load balancer's probe it would take the whole web tier out exactly when alerts arrive.
Point monitoring and alerting at it. Each answer says which it is (``scope``).
"""

from __future__ import annotations

import logging

import psycopg
from flask import Blueprint

from viewzenix.runtime import get_runtime

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

# Signals accepted but not executed yet: their execution jobs still queued or running. One count
# per status, so that each can be read through that status's partial index instead of a scan of
# the finished jobs kept for JOB_RETENTION_DAYS (the index that served `status in ('todo',
# 'doing')` is dropped by 20261207100000_fetch_job_stable_plan.sql; tests/integration/
# test_fetch_job.py checks that it starts no sequential scan, under quiet and fresh statistics).
SIGNALS_WAITING = """
select (select count(*) from procrastinate_jobs where queue_name = 'signals' and status = 'todo')
     + (select count(*) from procrastinate_jobs where queue_name = 'signals' and status = 'doing') as n
"""


@bp.get("/healthz")
def healthz():
    """Answer 200 ``{"status": "ok", "scope": "instance", "database": "ok", "signals_waiting": n}``.

    The load balancer's probe: 200 whenever this instance can serve (the database answers), however
    far behind the queue is. ``signals_waiting``: accepted signals whose execution job is still
    queued or running (information, never a failure). Else 503 ``database_unavailable``.
    """
    db = get_runtime().db
    if db.ping():
        try:
            with db.transaction() as conn:
                waiting = conn.execute(SIGNALS_WAITING).fetchone()["n"]
        except Exception:  # the database went away between the two queries
            waiting = None
        return {"status": "ok", "scope": "instance", "database": "ok", "signals_waiting": waiting}, 200
    return {
        "code": "database_unavailable",
        "status": 503,
        "message": "The database does not answer yet.",
        "scope": "instance",
    }, 503


# The oldest job that is due and still waits, and the freshest worker heartbeat (seconds).
READINESS = """
select
    (select coalesce(extract(epoch from now() - min(coalesce(j.scheduled_at, d.at))), 0)
     from public.procrastinate_jobs j
     left join lateral (
         select min(e.at) as at from public.procrastinate_events e
         where e.job_id = j.id and e.type = 'deferred'
     ) d on true
     where j.status = 'todo' and (j.scheduled_at is null or j.scheduled_at <= now())) as queue_age,
    (select extract(epoch from now() - max(last_heartbeat)) from public.procrastinate_workers)
        as heartbeat_age,
    (select paused from private.job_queue_state) as paused,
    (select reason from private.job_queue_state) as paused_reason
"""


@bp.get("/readyz")
def readyz():
    """Answer 200 when the database answers, the queue keeps up and a worker is alive; else 503.

    For monitoring and alerting, not for a load balancer (``scope``: ``system``; see the module
    docstring): a backlog fails it on every instance at once. Checks (each ``ok`` or a reason):
    ``database`` (a query within 2 s), ``queue`` (the oldest due job waited at most
    ``READY_MAX_QUEUE_AGE_SECONDS``), ``worker`` (a heartbeat in ``procrastinate_workers``
    within ``READY_WORKER_HEARTBEAT_SECONDS``). ``paused``: whether an admin paused the job queue
    (``POST /api/admin/queue/pause``); while paused the ``queue`` check reads ``paused[: reason]``
    and does not fail readiness (alerts are still taken). 503 body:
    ``{code: "not_ready", status, message, errors: {checks}, scope, paused}``.
    """
    runtime = get_runtime()
    config = runtime.config
    checks: dict[str, str] = {}
    row = None
    try:
        with runtime.db.pool.connection(timeout=2.0) as conn:
            row = conn.execute(READINESS).fetchone()
        checks["database"] = "ok"
    except (psycopg.Error, TimeoutError, Exception) as error:
        logger.warning("readiness: database check failed: %s", error, extra={"action": "readyz_failed"})
        checks["database"] = "the database does not answer"
    paused = bool(row and row["paused"])
    if row is not None:
        age = float(row["queue_age"])
        limit = config.READY_MAX_QUEUE_AGE_SECONDS
        if paused:
            # Paused by an admin: jobs wait on purpose; the web process stays ready (alerts are
            # still taken and queued), and the check says why the queue does not move.
            checks["queue"] = "paused" + (f": {row['paused_reason']}" if row["paused_reason"] else "")
        else:
            checks["queue"] = (
                "ok" if age <= limit else f"the oldest due job has waited {age:.0f} s (> {limit} s)"
            )
        beat = row["heartbeat_age"]
        limit = config.READY_WORKER_HEARTBEAT_SECONDS
        if beat is None:
            checks["worker"] = "no worker has registered"
        elif float(beat) > limit:
            checks["worker"] = f"the last worker heartbeat is {float(beat):.0f} s old (> {limit} s)"
        else:
            checks["worker"] = "ok"
    failing = {k: v for k, v in checks.items() if v != "ok" and not (k == "queue" and paused)}
    if not failing:
        return {"status": "ready", "scope": "system", "checks": checks, "paused": paused}, 200
    return {
        "code": "not_ready",
        "status": 503,
        "message": "Not ready: "
        + "; ".join(f"{k}: {v}" for k, v in failing.items())
        + ". (A system check for alerting; load balancers probe /healthz.)",
        "errors": {"checks": checks},
        "scope": "system",
        "paused": paused,
    }, 503
