"""Execute one stored signal: plan its orders and carry them out through the config's broker.

The job ``viewzenix.execute_signal`` calls ``execute_signal``. Everything a signal does — fills
of resting orders its price crosses, cancels, orders, denials, fills, positions, cash, and the
signal's outcome — commits in ONE transaction on the backend role, or not at all. Jobs for one
(config, symbol) already run one at a time (procrastinate lock); the position row lock taken
here serialises them again inside Postgres.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from viewzenix.brokers.base import (
    BrokerOrder,
    DuplicateOrder,
    OrderNotCancelable,
    OrderNotFound,
)
from viewzenix.brokers.simulated import ORDER_DENIED, SimulatedBroker
from viewzenix.db import Connection, Database
from viewzenix.domain.engine import Denial, OrderRequest, Plan, is_stale, plan_signal
from viewzenix.domain.model import OrderStatus, SignalStatus
from viewzenix.domain.serialization import signal_from_dict
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import positions as positions_repo
from viewzenix.repositories import signals as signals_repo
from viewzenix.repositories.webhook_configs import get as get_config
from viewzenix.repositories.webhook_configs import trading_settings

logger = logging.getLogger(__name__)

NOT_FOUND = "not_found"
BROKER_NOT_AVAILABLE = (
    "{broker} broker not available yet: this config trades through {broker}, and that adapter "
    "is not built yet; switch the config's broker to simulated to paper-trade"
)


def execute_signal(
    db: Database,
    signal_id: uuid.UUID,
    job_id: int | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
) -> str:
    """Execute a stored signal once; return its final status (executed, ignored, failed).

    Runs only a signal still ``accepted`` — or ``failed`` when ``job_id`` is the signal's own
    job, i.e. procrastinate retrying after an error — so a duplicate or late call does nothing
    and returns the current status (``not_found`` when the signal is gone). An unexpected
    exception rolls everything back, marks the signal ``failed`` with the error text in a new
    transaction, and is re-raised for procrastinate to retry. ``clock``: UTC now (tests).
    """
    ids = {"signal_id": signal_id, "job_id": job_id}
    try:
        with db.transaction() as conn:
            return _execute(conn, signal_id, job_id, (clock or _utc_now)())
    except Exception as error:
        logger.exception("signal execution failed: %s", error, extra={"action": "signal_failed", **ids})
        try:
            _record_failure(db, signal_id, job_id, error)
        except Exception:
            logger.exception(
                "could not mark the signal failed",
                extra={"action": "signal_fail_unrecorded", **ids},
            )
        raise


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _runnable(row: dict[str, Any], job_id: int | None) -> bool:
    if row["status"] == SignalStatus.ACCEPTED:
        return True
    return row["status"] == SignalStatus.FAILED and job_id is not None and row["job_id"] == job_id


def _execute(conn: Connection, signal_id: uuid.UUID, job_id: int | None, now: datetime) -> str:
    ids = {"signal_id": signal_id, "job_id": job_id}
    row = signals_repo.get_for_update(conn, signal_id)
    if row is None:
        logger.warning("signal not found", extra={"action": "signal_not_found", **ids})
        return NOT_FOUND
    if not _runnable(row, job_id):
        logger.info(
            "signal already %s; nothing to do",
            row["status"],
            extra={"action": "signal_already_processed", **ids},
        )
        return row["status"]
    config = get_config(conn, row["config_id"])
    settings = trading_settings(config)
    if settings.broker != SimulatedBroker.name:
        message = BROKER_NOT_AVAILABLE.format(broker=settings.broker)
        signals_repo.finish(conn, signal_id, SignalStatus.FAILED.value, message)
        logger.warning(message, extra={"action": "broker_not_available", **ids})
        return SignalStatus.FAILED.value

    signal = signal_from_dict(row["signal"] or {})
    symbol = signal.ticker
    broker = SimulatedBroker(
        conn,
        config_id=config["id"],
        user_id=config["user_id"],
        settings=settings,
        signal_id=signal_id,
        clock=lambda: now,
    )
    # Lock the position first (creating it at zero): position before account, everywhere.
    positions_repo.lock(conn, config_id=config["id"], user_id=config["user_id"], symbol=symbol)
    crossed: list[BrokerOrder] = []
    if signal.signal_price is not None and not is_stale(signal, settings, now):
        crossed = broker.process_price(symbol, signal.signal_price, now)
    position = positions_repo.lock(
        conn, config_id=config["id"], user_id=config["user_id"], symbol=symbol
    ).state()
    plan = plan_signal(
        signal=signal,
        signal_id=signal_id,
        position=position,
        account=broker.get_account(),
        open_orders=broker.open_orders(),
        settings=settings,
        now=now,
    )
    broker = broker.for_signal(signal_id, None if plan.intent is None else str(plan.intent))
    status, message = _carry_out(conn, broker, plan, crossed, ids)
    signals_repo.finish(conn, signal_id, status, message)
    logger.info("signal %s: %s", status, message, extra={"action": f"signal_{status}", **ids})
    return status


def _carry_out(
    conn: Connection,
    broker: SimulatedBroker,
    plan: Plan,
    crossed: list[BrokerOrder],
    ids: dict[str, Any],
) -> tuple[str, str]:
    """Cancel, submit in order, record denials; return (signal status, outcome message)."""
    notes = [
        f"price filled resting order {o.client_order_id}" for o in crossed if o.status == OrderStatus.FILLED
    ]
    if plan.ignored_reason is not None:
        return SignalStatus.IGNORED.value, "; ".join([plan.ignored_reason, *notes])

    canceled = 0
    for client_order_id in plan.cancel_client_order_ids:
        try:
            broker.cancel_order(
                client_order_id,
                status_code="canceled_by_signal",
                status_message=f"canceled by signal {ids['signal_id']} ({plan.intent})",
            )
            canceled += 1
        except (OrderNotFound, OrderNotCancelable) as error:
            logger.warning(
                "could not cancel %s: %s",
                client_order_id,
                error,
                extra={"action": "cancel_failed", "client_order_id": client_order_id, **ids},
            )
            notes.append(f"could not cancel {client_order_id}: {error}")

    placed: list[str] = []
    for request in plan.orders:
        try:
            result = broker.submit_order(request)
        except DuplicateOrder:
            # Already submitted (Alpaca: a retried POST may have placed it): look it up.
            result = broker.get_order(request.client_order_id)
            logger.info(
                "order %s was already submitted",
                request.client_order_id,
                extra={
                    "action": "order_already_submitted",
                    "client_order_id": request.client_order_id,
                    **ids,
                },
            )
        placed.append(_describe(request, result))

    denied = [f"denied {d.code}: {d.message}" for d in plan.denials]
    for denial in plan.denials:
        if denial.order is not None:
            _record_denial(conn, broker, denial, ids)

    if not (placed or denied or canceled):
        return SignalStatus.IGNORED.value, "; ".join(["nothing to do", *notes])
    body = [*placed, *denied]
    if canceled:
        body.append(f"canceled {canceled} open order(s)")
    message = "; ".join(body + notes)
    if plan.intent is not None:
        message = f"{plan.intent}: {message}"
    return SignalStatus.EXECUTED.value, message


def _record_denial(conn: Connection, broker: SimulatedBroker, denial: Denial, ids: dict[str, Any]) -> None:
    """Store a refused order with status DENIED and its reason, plus an OrderDenied event."""
    request = denial.order
    assert request is not None
    parent = None
    if request.parent_client_order_id is not None:
        parent = orders_repo.get_by_client_order_id(conn, broker.config_id, request.parent_client_order_id)
    row = orders_repo.insert(
        conn,
        user_id=broker.user_id,
        config_id=broker.config_id,
        signal_id=broker.signal_id,
        parent_order_id=None if parent is None else parent["id"],
        broker=broker.name,
        intent=broker.intent,
        **orders_repo.request_columns(request),
        status=OrderStatus.DENIED.value,
        status_code=denial.code,
        status_message=denial.message,
    )
    if row is None:
        return  # a retried job: already recorded
    orders_repo.insert_event(
        conn,
        order_id=row["id"],
        user_id=broker.user_id,
        event_type=ORDER_DENIED,
        from_status=None,
        to_status=OrderStatus.DENIED.value,
        detail={"status_code": denial.code, "status_message": denial.message},
        created_at=broker.clock(),
    )
    logger.info(
        "order denied: %s",
        denial.code,
        extra={
            "action": "order_denied",
            "order_id": row["id"],
            "client_order_id": request.client_order_id,
            **ids,
        },
    )


def _describe(request: OrderRequest, result: BrokerOrder | None) -> str:
    text = f"{request.purpose} {request.side} {_fmt(request.qty)} {request.symbol} {request.order_type}"
    if result is None:
        return text
    text += f" {result.status}"
    if result.status == OrderStatus.FILLED and result.filled_avg_price is not None:
        text += f" @ {_fmt(result.filled_avg_price)}"
    if result.status_code and result.status != OrderStatus.FILLED:
        text += f" ({result.status_code}: {result.status_message})"
    return text


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _record_failure(db: Database, signal_id: uuid.UUID, job_id: int | None, error: BaseException) -> None:
    """In a new transaction, mark the signal failed with the error text (if still runnable)."""
    with db.transaction() as conn:
        row = signals_repo.get_for_update(conn, signal_id)
        if row is None or not _runnable(row, job_id):
            return
        message = f"execution failed: {type(error).__name__}: {error}"
        signals_repo.finish(conn, signal_id, SignalStatus.FAILED.value, message[:2000])
