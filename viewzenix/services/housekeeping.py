"""Housekeeping the worker runs on schedules: delete rows whose time is up, close the paper session.

- ``purge_expired`` (hourly): expired idempotency keys and duplicate-alert claims, old
  reconciliation runs, the Supabase receiver's event log and tombstones past
  ``HOOK_EVENTS_RETENTION_DAYS``.
- ``delete_finished_jobs`` (hourly): procrastinate jobs that ended ``succeeded`` or
  ``cancelled`` more than ``JOB_RETENTION_DAYS`` ago, with their events (and attempt records:
  foreign keys ``on delete cascade``). Failed jobs stay for an operator to read.
- ``expire_day_orders`` (every few minutes): resting paper ``day`` orders expire at their
  market's session close (``viewzenix.domain.sessions``, from exchange_calendars: holidays and
  13:00 early closes included; crypto never), reported through the ledger like any broker report.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from viewzenix.brokers import BrokerNotAvailable
from viewzenix.brokers.base import SessionDriven
from viewzenix.db import Database
from viewzenix.domain.model import OrderStatus
from viewzenix.domain.sessions import last_session_close
from viewzenix.repositories import hook_sync, idempotency_keys, signal_dedupe
from viewzenix.repositories import jobs as jobs_repo
from viewzenix.services.accounts import Accounts, BrokerFactory, accounts_for

logger = logging.getLogger(__name__)

RECONCILIATIONS_KEPT_DAYS = 30
PURGE_RECONCILIATIONS = """
delete from public.reconciliations where started_at < now() - make_interval(days => %(days)s)
"""


def purge_expired(db: Database, hook_retention_days: int = 14) -> dict[str, int]:
    """Delete expired idempotency keys, duplicate-alert claims, reconciliations over 30 days old,
    and the Supabase receiver's events and tombstones over ``hook_retention_days``.

    One transaction; returns the counts deleted per kind. Expired claims are dead weight: a new
    claim of the same key takes an expired row over anyway.
    """
    with db.transaction() as conn:
        hooks = hook_sync.purge_history(conn, hook_retention_days)
        return {
            "idempotency_keys": idempotency_keys.purge_expired(conn),
            "signal_dedupe": signal_dedupe.purge_expired(conn),
            "reconciliations": conn.execute(
                PURGE_RECONCILIATIONS, {"days": RECONCILIATIONS_KEPT_DAYS}
            ).rowcount,
            "hook_events": hooks["events"],
            "hook_tombstones": hooks["tombstones"],
        }


# --- finished jobs -------------------------------------------------------------------------

# A job ended when its last event was written (procrastinate_events: deferred, started,
# succeeded …); its events (and attempt records) cascade with it, and procrastinate's delete
# trigger unlinks its periodic_defers row. procrastinate's own builtin_tasks.remove_old_jobs
# (JobManager.delete_old_jobs) deletes the same jobs but returns no count and ranks every job's
# events in one pass (DISTINCT ON over all jobs); this one counts, and goes in batches.
DELETE_FINISHED_JOBS = """
with old as (
    select j.id from public.procrastinate_jobs j
    where j.status = any(%(statuses)s::public.procrastinate_job_status[])
      and (select max(e.at) from public.procrastinate_events e where e.job_id = j.id) < %(before)s
    order by j.id
    limit %(batch)s
), events as (
    select count(*) as n from public.procrastinate_events e join old on e.job_id = old.id
), jobs as (
    delete from public.procrastinate_jobs j using old where j.id = old.id
    returning 1
)
select (select count(*) from jobs) as jobs, (select n from events) as events
"""
# A periodic task's defer rows (one per run, e.g. 5760 a day for the 15 s stalled-job check)
# only guard against deferring the same run twice; past the retention they guard nothing.
DELETE_OLD_PERIODIC_DEFERS = """
delete from public.procrastinate_periodic_defers
where job_id is null and defer_timestamp < extract(epoch from %(before)s::timestamptz)
"""
FINISHED_STATUSES = ["succeeded", "cancelled"]
ARCHIVED_STATUSES = ["failed", "aborted"]


def delete_finished_jobs(
    db: Database,
    retention_days: int,
    *,
    archive_retention_days: int = 365,
    now: datetime | None = None,
    batch: int = 5000,
) -> dict[str, int]:
    """Delete jobs that ended ``succeeded`` or ``cancelled`` over ``retention_days`` days ago;
    archive those that ended ``failed`` or ``aborted`` then.

    Returns the counts: ``jobs`` deleted, their ``events`` (attempt records cascade with their
    job too), ``periodic_defers``: periodic runs deferred before the cutoff whose job is gone;
    ``archived``: failed/aborted jobs moved to ``private.job_archive`` with every attempt and
    event (and removed from the queue); ``archive_purged``: archived jobs older than
    ``archive_retention_days``. Unfinished jobs are kept. At most ``batch`` jobs per
    transaction, until none is left. ``now``: UTC (tests).
    """
    moment = now or datetime.now(UTC)
    before = moment - timedelta(days=retention_days)
    totals = {"jobs": 0, "events": 0, "periodic_defers": 0, "archived": 0, "archive_purged": 0}
    while True:
        with db.transaction() as conn:
            moved = jobs_repo.archive_failed_jobs(
                conn, statuses=ARCHIVED_STATUSES, before=before, batch=batch
            )
        totals["archived"] += moved["archived"]
        if moved["deleted"] < batch:
            break
    with db.transaction() as conn:
        totals["archive_purged"] = jobs_repo.purge_archive(
            conn, before=moment - timedelta(days=archive_retention_days)
        )
    while True:
        with db.transaction() as conn:
            row = conn.execute(
                DELETE_FINISHED_JOBS, {"statuses": FINISHED_STATUSES, "before": before, "batch": batch}
            ).fetchone()
        totals["jobs"] += int(row["jobs"])
        totals["events"] += int(row["events"])
        if row["jobs"] < batch:
            break
    with db.transaction() as conn:
        totals["periodic_defers"] = conn.execute(DELETE_OLD_PERIODIC_DEFERS, {"before": before}).rowcount
    return totals


# --- day orders at the session close -------------------------------------------------------


def expire_day_orders(
    db: Database,
    *,
    now: datetime | None = None,
    config_id: uuid.UUID | None = None,
    brokers: BrokerFactory | None = None,
    accounts: Accounts | None = None,
) -> dict[str, Any]:
    """Expire resting ``day`` orders placed before the latest session close (exchange calendar).

    For every config (or the one ``config_id``) whose broker is ``SessionDriven`` (the paper
    broker; a real broker expires its own), the broker expires them and the ledger records its
    reports, as it records any broker report (idempotent; a stale report never moves an order
    back). Returns ``session_close`` (UTC), ``configs`` (with orders expired),
    ``orders_expired`` and ``orders_canceled`` (held legs of expired orders). ``now``: UTC.
    """
    now = now or datetime.now(UTC)
    close = last_session_close(now)
    accounts = accounts_for(db, accounts, brokers)
    counts: dict[str, Any] = {"session_close": close, "configs": 0, "orders_expired": 0, "orders_canceled": 0}
    for config in accounts.configs_with_day_orders(close, config_id):
        try:
            account = accounts.account(config)
        except BrokerNotAvailable:
            continue
        if not isinstance(account.broker, SessionDriven):
            continue
        reports = account.broker.expire_day_orders(close, now)
        if not reports:
            continue
        accounts.record(account.book, reports, now)
        counts["configs"] += 1
        counts["orders_expired"] += sum(1 for r in reports if r.status is OrderStatus.EXPIRED)
        counts["orders_canceled"] += sum(1 for r in reports if r.status is OrderStatus.CANCELED)
    return counts
