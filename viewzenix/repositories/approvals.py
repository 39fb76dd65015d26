"""SQL for approval mode: signals waiting as ``awaiting_approval``, and the one decision on each.

Every decision is a conditional UPDATE on ``status = 'awaiting_approval'``: two at the same
moment (approve vs reject vs the expiry sweep) queue on the row's lock, and the second finds the
status changed and updates nothing. So exactly one wins, whichever runs first.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from viewzenix.db import Connection

EXPIRED_MESSAGE = "not approved in time: expired"
REJECTED_MESSAGE = "rejected by its owner"

# Each statement returns a signal's approval state: id, config_id, user_id, status, ticker,
# action, job_id, reject_code, reject_message, approval_expires_at, approval_decision,
# approval_decided_at.


def approve(
    conn: Connection, signal_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> dict[str, Any] | None:
    """Move the user's waiting, unexpired signal to ``accepted``; return it, or None (not waiting,
    expired at ``now``, or not theirs)."""
    return conn.execute(
        """
        update public.signals
        set status = 'accepted', approval_decision = 'approved', approval_decided_at = %(now)s
        where id = %(id)s and user_id = %(user_id)s and status = 'awaiting_approval'
          and approval_expires_at > %(now)s
        returning id, config_id, user_id, status, ticker, action, job_id, reject_code, reject_message,
    approval_expires_at, approval_decision, approval_decided_at
        """,
        {"id": signal_id, "user_id": user_id, "now": now},
    ).fetchone()


def set_job(conn: Connection, signal_id: uuid.UUID, job_id: int) -> None:
    """Record the execution job deferred for an approved signal."""
    conn.execute("update public.signals set job_id = %s where id = %s", (job_id, signal_id))


def reject(
    conn: Connection, signal_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> dict[str, Any] | None:
    """Reject the user's waiting, unexpired signal (``rejected``, ``approval_rejected``); return it,
    or None."""
    return conn.execute(
        """
        update public.signals
        set status = 'rejected', reject_code = 'approval_rejected', reject_message = %(message)s,
            approval_decision = 'rejected', approval_decided_at = %(now)s, processed_at = %(now)s
        where id = %(id)s and user_id = %(user_id)s and status = 'awaiting_approval'
          and approval_expires_at > %(now)s
        returning id, config_id, user_id, status, ticker, action, job_id, reject_code, reject_message,
    approval_expires_at, approval_decision, approval_decided_at
        """,
        {"id": signal_id, "user_id": user_id, "now": now, "message": REJECTED_MESSAGE},
    ).fetchone()


# Waiting signals past their time, oldest first, a batch at a time; rows another transaction is
# deciding right now are skipped (the next sweep sees them, if they are still waiting).
EXPIRE_DUE = """
update public.signals
set status = 'rejected', reject_code = 'approval_expired', reject_message = %(message)s,
    approval_decision = 'expired', approval_decided_at = %(now)s, processed_at = %(now)s
where id in (
    select id from public.signals
    where status = 'awaiting_approval' and approval_expires_at <= %(now)s
      and (%(id)s::uuid is null or id = %(id)s::uuid)
    order by approval_expires_at
    limit %(batch)s
    for update skip locked
) and status = 'awaiting_approval'
returning id, config_id, user_id, status, ticker, action, job_id, reject_code, reject_message,
    approval_expires_at, approval_decision, approval_decided_at
"""


def expire_due(
    conn: Connection, now: datetime, *, batch: int = 500, signal_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    """Expire up to ``batch`` waiting signals whose time is up at ``now`` (or just ``signal_id``);
    return them (``rejected``, ``approval_expired``)."""
    return conn.execute(
        EXPIRE_DUE, {"now": now, "batch": batch, "id": signal_id, "message": EXPIRED_MESSAGE}
    ).fetchall()


def get(conn: Connection, signal_id: uuid.UUID) -> dict[str, Any] | None:
    """Return a signal's approval state, or None when not visible."""
    return conn.execute(
        """
        select id, config_id, user_id, status, ticker, action, job_id, reject_code, reject_message,
            approval_expires_at, approval_decision, approval_decided_at
        from public.signals where id = %s
        """,
        (signal_id,),
    ).fetchone()
