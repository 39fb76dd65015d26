"""Notifications, the low half: event names, who wants what, and deferring the send jobs.

Imported by the code that records events (intake, the ledger, the attempt recorder,
reconciliation); imports nothing of ours above ``db`` and not apprise. Each function takes the
config's ``notification_preferences`` (already in hand: no query), returns at once when no
destination wants the event, and otherwise defers one ``viewzenix.notify`` job per destination
on the caller's connection, inside its open transaction (an outbox: the job exists if and only
if the event was committed). The worker sends them (``viewzenix.notifications.sending``); a
destination that is down is retried with backoff there and never touches the trade.

Preferences shape (stored in ``webhook_configs.notification_preferences``)::

    {"destinations": [{"id": "<uuid>", "service": "Telegram", "url_encrypted": "<Fernet token>",
                       "url_masked": "tgram://1...G/-100123", "events": ["order_denied", ...],
                       "level": "all" | "failures" | "off"}]}
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from procrastinate import jobs as procrastinate_jobs
from procrastinate import manager as procrastinate_manager
from procrastinate import sync_psycopg_connector

if TYPE_CHECKING:
    import procrastinate

    from viewzenix.db import Connection

logger = logging.getLogger(__name__)

NOTIFY = "viewzenix.notify"
NOTIFICATIONS_QUEUE = "notifications"

ORDER_FILLED = "order_filled"
ORDER_DENIED = "order_denied"  # by our risk rules
ORDER_REJECTED = "order_rejected"  # by the broker
SIGNAL_REFUSED = "signal_refused"  # at intake
JOB_FAILED = "job_failed"  # after its last retry
DRIFT_FOUND = "drift_found"  # reconciliation
ORDER_ANOMALY = "order_anomaly"  # a broker report the ledger refused as impossible
LOSS_LIMIT_REACHED = "loss_limit_reached"  # a config's daily loss limit, once per session
SIGNAL_AWAITING_APPROVAL = "signal_awaiting_approval"  # approval mode: a signal waits for a click
EVENTS = (
    ORDER_FILLED,
    ORDER_DENIED,
    ORDER_REJECTED,
    SIGNAL_REFUSED,
    JOB_FAILED,
    DRIFT_FOUND,
    ORDER_ANOMALY,
    LOSS_LIMIT_REACHED,
    SIGNAL_AWAITING_APPROVAL,
)
FAILURE_EVENTS = frozenset(EVENTS) - {ORDER_FILLED}
LEVELS = ("all", "failures", "off")

# Defers on a connection it is given; never opens one of its own (so it needs no database URL).
_manager = procrastinate_manager.JobManager(sync_psycopg_connector.SyncPsycopgConnector())


def wanted_by(preferences: dict[str, Any] | None, event: str) -> list[str]:
    """Return the ids of the destinations in ``preferences`` that want ``event`` (level and events)."""
    if not preferences:
        return []
    out = []
    destinations = preferences.get("destinations") if isinstance(preferences, dict) else None
    for destination in destinations if isinstance(destinations, list) else ():
        if not isinstance(destination, dict) or "id" not in destination or "url_encrypted" not in destination:
            continue  # not saved through the API (free-form preferences from before): nothing to send
        level = destination.get("level", "all")
        if level == "off" or (level == "failures" and event not in FAILURE_EVENTS):
            continue
        if event in destination.get("events", EVENTS):
            out.append(destination["id"])
    return out


def _jobs(config_id: Any, destinations: list[str], event: str, title: str, body: str, ids: dict[str, Any]):
    kwargs = {k: str(v) for k, v in ids.items() if v is not None}
    return [
        procrastinate_jobs.Job(
            queue=NOTIFICATIONS_QUEUE,
            lock=None,
            queueing_lock=None,
            task_name=NOTIFY,
            task_kwargs={
                "config_id": str(config_id),
                "destination_id": destination_id,
                "event": event,
                "title": title,
                "body": body,
                **kwargs,
            },
        )
        for destination_id in destinations
    ]


def notify(
    conn: Connection,
    preferences: dict[str, Any] | None,
    event: str,
    *,
    config_id: uuid.UUID | str,
    title: str,
    body: str,
    **ids: Any,
) -> int:
    """Defer one send job per destination wanting ``event`` on ``conn``; return how many.

    ``ids`` (``signal_id``, ``order_id``...) are kept on the job and the delivery record.
    """
    destinations = wanted_by(preferences, event)
    if not destinations:
        return 0
    try:
        with conn.transaction():  # a savepoint: a failure here never aborts the event's transaction
            _manager.batch_defer_jobs(
                _jobs(config_id, destinations, event, title, body, ids), connection=conn
            )
    except Exception:
        logger.exception(
            "could not defer the %s notification",
            event,
            extra={"action": "notify_unqueued", "config_id": config_id},
        )
        return 0
    return len(destinations)


async def notify_async(
    app: procrastinate.App,
    preferences: dict[str, Any] | None,
    event: str,
    *,
    config_id: uuid.UUID | str,
    title: str,
    body: str,
    **ids: Any,
) -> int:
    """``notify`` for async code on procrastinate's own pool (its own transaction)."""
    destinations = wanted_by(preferences, event)
    if not destinations:
        return 0
    await app.job_manager.batch_defer_jobs_async(_jobs(config_id, destinations, event, title, body, ids))
    return len(destinations)


# --- one call per event kind, for the code that records the event ---------------------------


def _num(value: Any) -> str:
    return f"{value.normalize():f}" if isinstance(value, Decimal) else str(value)


def order_event(
    conn: Connection, preferences: dict[str, Any] | None, event: str, order: dict[str, Any]
) -> int:
    """Notify ``event`` (filled, denied, rejected) for an ``orders`` row, on ``conn``."""
    if not preferences or not preferences.get("destinations"):
        return 0
    what = f"{order['side'].upper()} {_num(order['qty'])} {order['symbol']}"
    if event == ORDER_FILLED:
        title = f"Filled: {what}"
        body = f"{what} filled at {_num(order['filled_avg_price'])}."
    else:
        title = ("Denied by your rules: " if event == ORDER_DENIED else "Rejected by the broker: ") + what
        body = f"{what}: {order.get('status_code') or event} — {order.get('status_message') or ''}".rstrip(
            " —"
        )
    body += f"\nclient_order_id {order['client_order_id']}"
    return notify(
        conn,
        preferences,
        event,
        config_id=order["config_id"],
        title=title,
        body=body,
        order_id=order["id"],
        signal_id=order.get("signal_id"),
    )


def signal_refused(
    conn: Connection,
    preferences: dict[str, Any] | None,
    *,
    config_id: uuid.UUID,
    signal_id: uuid.UUID,
    code: str,
    message: str,
) -> int:
    """Notify an alert refused at intake (stored as a rejected signal), on ``conn``."""
    if not preferences or not preferences.get("destinations"):
        return 0
    return notify(
        conn,
        preferences,
        SIGNAL_REFUSED,
        config_id=config_id,
        title=f"Alert refused: {code}",
        body=f"{message[:500]}\nsignal_id {signal_id}",
        signal_id=signal_id,
    )


def drift_found(conn: Connection, preferences: dict[str, Any] | None, run: dict[str, Any]) -> int:
    """Notify a reconciliation run (a ``reconciliations`` row) that found drift, on ``conn``."""
    if not preferences or not preferences.get("destinations"):
        return 0
    cash = (run.get("counts") or {}).get("cash_differs", 0)
    if not (run["orders_in_drift"] or run["positions_in_drift"] or cash):
        return 0
    return notify(
        conn,
        preferences,
        DRIFT_FOUND,
        config_id=run["config_id"],
        title="Drift between our books and the broker's",
        body=(
            f"{run['orders_in_drift']} of {run['orders_compared']} order(s) and "
            f"{run['positions_in_drift']} position(s) differ ({_num(run['drift_rate'])} %)."
            + (" Cash differs." if cash else "")
        ),
        reconciliation_id=run.get("id"),
    )


def order_anomaly(conn: Connection, preferences: dict[str, Any] | None, anomaly: dict[str, Any]) -> int:
    """Notify a broker report the ledger refused (an ``order_anomalies`` row), on ``conn``."""
    if not preferences or not preferences.get("destinations"):
        return 0
    return notify(
        conn,
        preferences,
        ORDER_ANOMALY,
        config_id=anomaly["config_id"],
        title=f"Impossible broker report refused: {anomaly['kind']}",
        body=f"client_order_id {anomaly['client_order_id']}: {anomaly['detail'].get('message', '')}",
        order_id=anomaly["order_id"],
    )


JOB_CONFIG = """
select c.id, c.notification_preferences
from public.signals s join public.webhook_configs c on c.id = s.config_id
where s.id = %(signal_id)s
"""


async def job_failed(app: procrastinate.App, job: procrastinate_jobs.Job, error: str) -> int:
    """Notify a job of a signal that failed after its last retry (one query to find its config)."""
    signal_id = job.task_kwargs.get("signal_id")
    if job.task_name == NOTIFY or not signal_id:
        return 0
    rows = await app.connector.execute_query_all_async(JOB_CONFIG, signal_id=signal_id)
    if not rows:
        return 0
    row = rows[0]
    return await notify_async(
        app,
        row["notification_preferences"],
        JOB_FAILED,
        config_id=row["id"],
        title=f"Job failed after its last retry: {job.task_name}",
        body=f"{error[:500]}\nsignal_id {signal_id}, job {job.id}",
        signal_id=signal_id,
        job_id=job.id,
    )
