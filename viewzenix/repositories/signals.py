"""SQL for stored signals (every alert that reached a known config: accepted, rejected, duplicate)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, LiteralString

from psycopg.types.json import Jsonb

from viewzenix.db import Connection
from viewzenix.repositories.paging import select_page

# The list view leaves out the bodies (raw_body, payload, signal); GET /api/signals/<id> has them.
LIST_COLUMNS = (
    "id, config_id, status, duplicate_of, reject_code, reject_message, outcome_message, ticker, "
    "action, content_type, source_ip, is_test, source, received_at, processed_at, approval_expires_at, "
    # The signal's orders in brief (the dashboard words its outcome from them), oldest first.
    "(select coalesce(json_agg(json_build_object('purpose', o.purpose, 'side', o.side, 'qty', o.qty, "
    "'symbol', o.symbol, 'order_type', o.order_type, 'status', o.status, 'filled_qty', o.filled_qty, "
    "'filled_avg_price', o.filled_avg_price, 'limit_price', o.limit_price, 'stop_price', o.stop_price, "
    "'status_code', o.status_code, 'status_message', o.status_message) order by o.created_at), '[]') "
    "from public.orders o where o.signal_id = signals.id) as order_brief"
)

INSERT_SIGNAL = """
insert into public.signals (
    id, user_id, config_id, status, reject_code, reject_message, reject_details,
    ticker, action, signal, payload, raw_body, content_type, source_ip, job_id, duplicate_of,
    approval_expires_at, alert_ticker, source
) values (
    %(id)s, %(user_id)s, %(config_id)s, %(status)s, %(reject_code)s, %(reject_message)s,
    %(reject_details)s, %(ticker)s, %(action)s, %(signal)s, %(payload)s, %(raw_body)s,
    %(content_type)s, %(source_ip)s, %(job_id)s, %(duplicate_of)s,
    now() + make_interval(secs => %(approval_timeout_seconds)s), %(alert_ticker)s, %(source)s
)
"""


def insert(
    conn: Connection,
    *,
    signal_id: uuid.UUID,
    user_id: uuid.UUID,
    config_id: uuid.UUID,
    status: str,
    raw_body: str,
    content_type: str | None,
    source_ip: str | None,
    signal: dict[str, Any] | None = None,
    payload: Any = None,
    ticker: str | None = None,
    action: str | None = None,
    reject_code: str | None = None,
    reject_message: str | None = None,
    reject_details: dict[str, Any] | None = None,
    job_id: int | None = None,
    duplicate_of: uuid.UUID | None = None,
    approval_timeout_seconds: int | None = None,
    alert_ticker: str | None = None,
    source: str = "tradingview",
) -> None:
    """Store one signal row (accepted, rejected, or duplicate of ``duplicate_of``).

    ``approval_timeout_seconds``: for an ``awaiting_approval`` signal, it expires that long from now.
    ``alert_ticker``: the alert's ticker when a symbol mapping replaced it by ``ticker``.
    ``source``: who sent it: ``tradingview`` (an alert), ``manual``, ``schedule``, ``loss_limit``.
    """
    conn.execute(
        INSERT_SIGNAL,
        {
            "id": signal_id,
            "user_id": user_id,
            "config_id": config_id,
            "status": status,
            "reject_code": reject_code,
            "reject_message": reject_message,
            "reject_details": Jsonb(reject_details) if reject_details else None,
            "ticker": ticker,
            "action": action,
            "signal": Jsonb(signal) if signal is not None else None,
            "payload": Jsonb(payload) if payload is not None else None,
            "raw_body": raw_body,
            "content_type": content_type,
            "source_ip": source_ip,
            "job_id": job_id,
            "duplicate_of": duplicate_of,
            "approval_timeout_seconds": approval_timeout_seconds,
            "alert_ticker": alert_ticker,
            "source": source,
        },
    )


# What the signal job reads of a signal (``s``): its row, ``recorded`` and ``has_account``.
FOR_EXECUTION_COLUMNS = """s.*,
    exists (select 1 from public.orders o where o.signal_id = s.id)
        or exists (select 1 from public.orders o where o.cancel_requested_by = s.id) as recorded,
    exists (select 1 from public.accounts a where a.config_id = s.config_id) as has_account"""

FOR_EXECUTION = f"""
select {FOR_EXECUTION_COLUMNS}
from public.signals s where s.id = %(signal_id)s
"""  # noqa: S608 (our own statement; values are bound)


def get_for_execution(conn: Connection, signal_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    """Return a signal row plus ``recorded`` (a run recorded its orders or cancels already) and
    ``has_account`` (its config's account exists in our books); lock the row when ``lock``."""
    query = FOR_EXECUTION + (" for update of s" if lock else "")
    return conn.execute(query, {"signal_id": signal_id}).fetchone()


def get_for_update(conn: Connection, signal_id: uuid.UUID) -> dict[str, Any] | None:
    """Lock and return a signal row (the worker's claim on it)."""
    return conn.execute("select * from public.signals where id = %s for update", (signal_id,)).fetchone()


def set_status(conn: Connection, signal_id: uuid.UUID, status: str) -> None:
    """Set a signal's status without finishing it (``submitting``)."""
    conn.execute("update public.signals set status = %s where id = %s", (status, signal_id))


def finish(conn: Connection, signal_id: uuid.UUID, status: str, outcome_message: str | None) -> None:
    """Record the execution outcome (a final SignalStatus value), its message and processed_at."""
    conn.execute(
        "update public.signals set status = %s, outcome_message = %s, processed_at = now() where id = %s",
        (status, outcome_message, signal_id),
    )


def mark_test(conn: Connection, signal_id: uuid.UUID) -> None:
    """Mark a stored signal as a test alert sent from the dashboard."""
    conn.execute("update public.signals set is_test = true where id = %s", (signal_id,))


def get(conn: Connection, signal_id: uuid.UUID) -> dict[str, Any] | None:
    return conn.execute("select * from public.signals where id = %s", (signal_id,)).fetchone()


def count_duplicates(conn: Connection, signal_id: uuid.UUID) -> int:
    """Return how many visible signals are duplicates of ``signal_id`` (resends of it)."""
    return conn.execute(
        "select count(*) as n from public.signals where duplicate_of = %s", (signal_id,)
    ).fetchone()["n"]


def list_page(
    conn: Connection,
    *,
    config_id: uuid.UUID | None,
    status: str | None,
    ticker: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    is_test: bool | None = None,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Return (rows, total) of visible signals matching the filters, newest first."""
    conditions: list[tuple[LiteralString, dict[str, Any]]] = []
    if since is not None:
        conditions.append(("received_at >= %(since)s", {"since": since}))
    if until is not None:
        conditions.append(("received_at < %(until)s", {"until": until}))
    return select_page(
        conn,
        table="signals",
        columns=LIST_COLUMNS,
        equals={"config_id": config_id, "status": status, "ticker": ticker, "is_test": is_test},
        conditions=conditions,
        order_by="received_at desc, id",
        limit=limit,
        offset=offset,
    )


# Alerts refused at intake past their retention, oldest first, a batch at a time (the partial
# index signals_refused_received_idx serves it). Refused at intake = rejected with a reject_code;
# a signal that ran and whose orders the broker rejected is 'rejected' too, without one: it is
# trade history (its orders point at it) and is kept.
DELETE_REFUSED_BEFORE = """
delete from public.signals where id in (
    select id from public.signals
    where status = 'rejected' and reject_code is not null and received_at < %(before)s
    order by received_at
    limit %(batch)s
)
"""


def delete_refused_before(conn: Connection, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` signals refused at intake received before ``before``; return how many."""
    return conn.execute(DELETE_REFUSED_BEFORE, {"before": before, "batch": batch}).rowcount
