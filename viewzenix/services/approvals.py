"""Approval mode: a config's accepted alerts wait for their owner's click.

On a config with ``approval_mode`` on, intake stores an accepted alert as ``awaiting_approval``
with ``approval_expires_at`` = received + ``approval_timeout_seconds`` and defers no job (the
dedupe claim is made as for any alert, so a resend is still a ``duplicate``). Then exactly one of:

- ``approve`` (``POST /api/signals/{id}/approve``): ``accepted``, and the usual
  ``viewzenix.execute_signal`` job is deferred in the same transaction. Approving again answers
  the same and runs nothing more.
- ``reject`` (``POST /api/signals/{id}/reject``): ``rejected`` with ``reject_code``
  ``approval_rejected``; nothing runs.
- the expiry sweep (``expire_approvals``, a periodic task every ``APPROVAL_EXPIRY_CRON``):
  ``rejected`` with ``approval_expired``; approving after the expiry time answers 409
  ``approval_expired`` even before the sweep ran.

Each decision is a conditional UPDATE (``repositories.approvals``): one wins a race. Reads and
decisions are the caller's own signals only: read under RLS first (another user's → 404), and
every UPDATE also filters on the caller's ``user_id``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from viewzenix import notifications
from viewzenix.db import Connection, Database
from viewzenix.exceptions import NotFound, ViewzenixError
from viewzenix.jobs import MAINTENANCE_QUEUE, defer_execute_signal
from viewzenix.repositories import approvals as approvals_repo
from viewzenix.repositories import webhook_configs as webhook_configs_repo
from viewzenix.services.common import Caller

if TYPE_CHECKING:
    import procrastinate

logger = logging.getLogger(__name__)

EXPIRE_APPROVALS = "viewzenix.expire_approvals"
APPROVAL_EXPIRY_CRON = "* * * * * */15"  # every 15 s (procrastinate reads seconds as the 6th field)


class ApprovalExpired(ViewzenixError):
    """This signal waited longer than its config's approval timeout: it expired and will not run."""

    status = 409
    code = "approval_expired"


class NotAwaitingApproval(ViewzenixError):
    """This signal is not waiting for approval."""

    status = 409
    code = "not_awaiting_approval"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _own(db: Database, caller: Caller, signal_id: uuid.UUID) -> dict[str, Any]:
    with db.transaction(caller.claims) as conn:  # RLS: only the caller's signals are visible
        row = approvals_repo.get(conn, signal_id)
    if row is None:
        raise NotFound("No signal with this id.")
    return row


def approve(
    db: Database,
    job_app: procrastinate.App,
    caller: Caller,
    signal_id: uuid.UUID,
    *,
    clock: Callable[[], datetime] = _utc_now,
) -> dict[str, Any]:
    """Approve the caller's waiting signal and defer its execution job; return its approval state.

    Returns ``{id, status, approval_decision, job_id, ...}`` (``repositories.approvals``). Already
    approved: the same answer, no second job. Raises NotFound (unknown, or another user's),
    ApprovalExpired (its time is up: it is expired now if the sweep had not yet),
    NotAwaitingApproval (rejected, or never waited).
    """
    _own(db, caller, signal_id)
    now = clock()
    with db.transaction() as conn:
        won = approvals_repo.approve(conn, signal_id, caller.user_id, now)
        if won is not None:
            job_id = defer_execute_signal(
                job_app, conn, signal_id=signal_id, config_id=won["config_id"], symbol=won["ticker"]
            )
            approvals_repo.set_job(conn, signal_id, job_id)
            logger.info(
                "signal approved",
                extra={"action": "signal_approved", "signal_id": signal_id, "job_id": job_id},
            )
            return {**won, "job_id": job_id}
    return _settled(_expired_if_due(db, signal_id, now), "approved")


def reject(
    db: Database, caller: Caller, signal_id: uuid.UUID, *, clock: Callable[[], datetime] = _utc_now
) -> dict[str, Any]:
    """Reject the caller's waiting signal; nothing runs. Return its approval state.

    Already rejected: the same answer. Raises NotFound, ApprovalExpired, NotAwaitingApproval
    (approved already, or never waited).
    """
    _own(db, caller, signal_id)
    now = clock()
    with db.transaction() as conn:
        won = approvals_repo.reject(conn, signal_id, caller.user_id, now)
        if won is not None:
            logger.info(
                "signal rejected by its owner",
                extra={"action": "signal_approval_rejected", "signal_id": signal_id},
            )
            return won
    return _settled(_expired_if_due(db, signal_id, now), "rejected")


def _expired_if_due(db: Database, signal_id: uuid.UUID, now: datetime) -> dict[str, Any] | None:
    """Expire the signal now if its time is up and the sweep has not yet; return its state.

    In a transaction of its own, outside a request's: the decision that follows is refused (409
    ``approval_expired``), and a refused request's transaction rolls back (an Idempotency-Key's,
    ``api.idempotency``), which would undo the expiry while the answer said it had happened.
    """
    with db.detached(), db.transaction() as conn:
        approvals_repo.expire_due(conn, now, signal_id=signal_id)
        return approvals_repo.get(conn, signal_id)


def _settled(row: dict[str, Any] | None, wanted: str) -> dict[str, Any]:
    """The answer when our UPDATE changed nothing: the same decision made before, or why not."""
    if row is None:
        raise NotFound("No signal with this id.")
    decision = row["approval_decision"]
    if decision == wanted:
        return row  # idempotent: approving (or rejecting) twice decides once
    if decision == "expired":
        raise ApprovalExpired(
            f"Signal {row['id']} expired at {row['approval_expires_at']:%Y-%m-%d %H:%M:%S} UTC without "
            "approval; it will not run."
        )
    if decision is None:
        raise NotAwaitingApproval(f"Signal {row['id']} is {row['status']}: it is not waiting for approval.")
    raise NotAwaitingApproval(f"Signal {row['id']} was {decision} already; it cannot be {wanted} now.")


def expire_due(db: Database, *, now: datetime | None = None, batch: int = 500) -> int:
    """Expire every waiting signal whose time is up; return how many (batches of ``batch``)."""
    now = now or _utc_now()
    expired = 0
    while True:
        with db.transaction() as conn:
            rows = approvals_repo.expire_due(conn, now, batch=batch)
        expired += len(rows)
        if len(rows) < batch:
            return expired


def notify_awaiting(
    conn: Connection,
    preferences: dict[str, Any] | None,
    *,
    config_id: uuid.UUID,
    signal_id: uuid.UUID,
    ticker: str | None,
    action: str | None,
    timeout_seconds: int,
    public_base_url: str = "",
) -> int:
    """Notify ``signal_awaiting_approval`` with a link to the signal in the signal log, on ``conn``."""
    if not preferences or not preferences.get("destinations"):
        return 0
    link = f"{public_base_url.rstrip('/')}/signals/{signal_id}"
    return notifications.notify(
        conn,
        preferences,
        notifications.SIGNAL_AWAITING_APPROVAL,
        config_id=config_id,
        title=f"Approve? {(action or '').upper()} {ticker or ''}".rstrip(),
        body=(
            f"A signal waits for your approval for {timeout_seconds} s, then expires.\n"
            f"Approve or reject it: {link}\nsignal_id {signal_id}"
        ),
        signal_id=signal_id,
    )


def notify_waiting(
    db: Database,
    *,
    config_id: uuid.UUID,
    signal_id: uuid.UUID,
    ticker: str | None,
    action: str | None,
    public_base_url: str = "",
) -> int:
    """Notify the owner of a signal intake stored ``awaiting_approval``, in its own transaction.

    Reads the config (its destinations and approval timeout) and calls ``notify_awaiting``; for
    the webhook's own URL and for each member of a webhook group alike, off intake's statement.
    """
    with db.transaction() as conn:
        config = webhook_configs_repo.get(conn, config_id)
        if config is None:
            return 0
        return notify_awaiting(
            conn,
            config["notification_preferences"],
            config_id=config_id,
            signal_id=signal_id,
            ticker=ticker,
            action=action,
            timeout_seconds=config["approval_timeout_seconds"],
            public_base_url=public_base_url,
        )


def register_approval_tasks(job_app: procrastinate.App, db: Database) -> None:
    """Register the periodic expiry sweep (``APPROVAL_EXPIRY_CRON``, maintenance queue)."""

    @job_app.periodic(cron=APPROVAL_EXPIRY_CRON, periodic_id="expire_approvals")
    @job_app.task(name=EXPIRE_APPROVALS, queue=MAINTENANCE_QUEUE, pass_context=False)
    def expire_approvals_task(timestamp: int | None = None) -> None:
        expired = expire_due(db)
        if expired:
            logger.info(
                "expired %s signal(s) not approved in time",
                expired,
                extra={"action": "approvals_expired", "counts": {"expired": expired}},
            )
