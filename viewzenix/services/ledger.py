"""The order ledger: the one writer of our books.

Our books are ``orders``, ``order_events``, ``fills``, ``positions`` and ``accounts``. Nothing
else writes them: broker adapters only report (``BrokerOrder``), and the ledger records what
they report. Every function runs on the caller's open transaction and makes no network call.

Recording is idempotent. An order is recorded once per client_order_id (unique per config); a
fill once per trade_id (unique per config); applying the same report twice changes nothing, so
a retried job, a repeated status sync and a reconciliation repair can all hand the ledger the
same report. Positions and cash move only from recorded fills, never from assumptions.

Event names are past tense: OrderInitialized (recorded as pending_new),
OrderDenied, OrderSubmitted, OrderAccepted, OrderPartiallyFilled, OrderFilled,
OrderCancelRequested, OrderCanceled, OrderRejected, OrderExpired, OrderRepaired
(reconciliation brought our side in line with the broker).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from viewzenix import notifications
from viewzenix.brokers.base import BrokerFill, BrokerOrder
from viewzenix.db import Connection
from viewzenix.domain.engine import Denial, OrderRequest
from viewzenix.domain.model import OrderSide, OrderStatus
from viewzenix.domain.positions import apply_fill, cash_delta
from viewzenix.repositories import accounts as accounts_repo
from viewzenix.repositories import anomalies as anomalies_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import positions as positions_repo

logger = logging.getLogger(__name__)

ORDER_INITIALIZED = "OrderInitialized"
ORDER_DENIED = "OrderDenied"
ORDER_SUBMITTED = "OrderSubmitted"
ORDER_ACCEPTED = "OrderAccepted"
ORDER_PARTIALLY_FILLED = "OrderPartiallyFilled"
ORDER_FILLED = "OrderFilled"
ORDER_CANCEL_REQUESTED = "OrderCancelRequested"
ORDER_CANCELED = "OrderCanceled"
ORDER_REJECTED = "OrderRejected"
ORDER_EXPIRED = "OrderExpired"
ORDER_REPAIRED = "OrderRepaired"

_TERMINAL_EVENTS = {
    OrderStatus.CANCELED: ORDER_CANCELED,
    OrderStatus.REJECTED: ORDER_REJECTED,
    OrderStatus.EXPIRED: ORDER_EXPIRED,
}
_WORKING = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)
# How far along an order is; a report never moves an open order back (it is a stale one).
_RANK = {
    OrderStatus.PENDING_NEW: 0,
    OrderStatus.SUBMITTED: 1,
    OrderStatus.HELD: 1,
    OrderStatus.ACCEPTED: 2,
    OrderStatus.PARTIALLY_FILLED: 3,
    **{status: 4 for status in OrderStatus if status.is_terminal},
}
# Order statuses whose arrival is notified (viewzenix.notifications).
_NOTIFIED = {
    OrderStatus.FILLED.value: notifications.ORDER_FILLED,
    OrderStatus.REJECTED.value: notifications.ORDER_REJECTED,
}
# A submitted order that ends canceled or expired was working first (IOC, DAY expiry).
_ENDED_AFTER_ACCEPT = (OrderStatus.CANCELED, OrderStatus.EXPIRED)
_LEGS = ("take_profit", "stop_loss")
# Impossible reports the ledger refuses (public.order_anomalies.kind).
OCO_BOTH_FILLED = "oco_both_filled"
TERMINAL_TO_TERMINAL = "terminal_to_terminal"
OVERFILL = "overfill"


@dataclass(frozen=True)
class Book:
    """Whose books: one webhook config (one broker account), its owner and its broker's name."""

    config_id: uuid.UUID
    user_id: uuid.UUID
    broker: str
    # The config's notification_preferences: who hears of fills, denials and rejections.
    notification_preferences: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def for_config(cls, config: dict[str, Any]) -> Book:
        """Build from a ``webhook_configs`` row."""
        return cls(
            config_id=config["id"],
            user_id=config["user_id"],
            broker=config["broker"],
            notification_preferences=config.get("notification_preferences"),
        )


@dataclass(frozen=True)
class Recorded:
    """What recording one report changed: the order row before and after, the new fills."""

    before: dict[str, Any]
    after: dict[str, Any]
    new_fills: tuple[BrokerFill, ...]

    @property
    def changed(self) -> bool:
        return bool(self.new_fills) or _state(self.before) != _state(self.after)


def open_account(conn: Connection, book: Book, starting_cash: Decimal) -> None:
    """Open our account for the config with ``starting_cash`` unless it exists (account currency)."""
    accounts_repo.open_account(
        conn, config_id=book.config_id, user_id=book.user_id, starting_cash=starting_cash
    )


def mark(conn: Connection, book: Book, symbol: str, price: Decimal, at: datetime | None = None) -> None:
    """Set our mark (``positions.last_price``, taken at ``at``) of ``symbol`` when we hold a row for it."""
    positions_repo.mark(conn, config_id=book.config_id, symbol=symbol, last_price=price, at=at)


def record_new_order(
    conn: Connection,
    book: Book,
    request: OrderRequest,
    *,
    signal_id: uuid.UUID | None,
    intent: str | None,
    at: datetime,
) -> dict[str, Any]:
    """Record an order we are about to send, as PENDING_NEW; return its row.

    Recording the same client_order_id again returns the existing row unchanged. Its
    ``parent_order_id`` is resolved from ``request.parent_client_order_id``.
    """
    # The order and its ORDER_INITIALIZED event in one statement (the event only when inserted).
    detail = {"qty": request.qty}
    initialized = _event_values(book, ORDER_INITIALIZED, None, OrderStatus.PENDING_NEW, detail, at)
    row = _insert(conn, book, request, signal_id, intent, OrderStatus.PENDING_NEW, event=initialized)
    if row is None:  # recorded before (unique per config)
        found = orders_repo.get_by_client_order_id(conn, book.config_id, request.client_order_id)
        assert found is not None
        return found
    return row


def record_denial(
    conn: Connection,
    book: Book,
    denial: Denial,
    *,
    signal_id: uuid.UUID | None,
    intent: str | None,
    at: datetime,
) -> dict[str, Any] | None:
    """Record an order our risk rules refused, as DENIED with its reason; return its row.

    Returns None when the denial has no order (refused before any order existed) or the order
    is already recorded (a retried job).
    """
    request = denial.order
    if request is None:
        return None
    row = _insert(
        conn,
        book,
        request,
        signal_id,
        intent,
        OrderStatus.DENIED,
        status_code=denial.code,
        status_message=denial.message,
    )
    if row is None:
        return None
    detail = {"status_code": denial.code, "status_message": denial.message}
    _event(conn, book, row, ORDER_DENIED, None, OrderStatus.DENIED, detail, at)
    notifications.order_event(conn, book.notification_preferences, notifications.ORDER_DENIED, row)
    logger.info(
        "order denied: %s",
        denial.code,
        extra={
            "action": "order_denied",
            "order_id": row["id"],
            "client_order_id": request.client_order_id,
            "signal_id": signal_id,
        },
    )
    return row


def request_cancel(
    conn: Connection,
    book: Book,
    row: dict[str, Any],
    *,
    signal_id: uuid.UUID | None,
    reason: str,
    at: datetime,
) -> None:
    """Record that ``signal_id`` decided to cancel an open order (before asking the broker)."""
    if row["cancel_requested_at"] is not None:
        return
    orders_repo.request_cancel(conn, row["id"], at, signal_id)
    status = row["status"]
    _event(conn, book, row, ORDER_CANCEL_REQUESTED, status, status, {"reason": reason}, at)


def record_report(
    conn: Connection, book: Book, report: BrokerOrder, at: datetime, *, repair: str | None = None
) -> Recorded | None:
    """Record what the broker reported of one of our orders; return what changed.

    New fills (by ``trade_id``) are recorded and applied to the position and our account;
    status, filled quantity and average price, broker ids and timestamps follow the report;
    each step gets its event. A report whose ``filled_qty`` exceeds the recorded fills and that
    carries no fills (brokers that report fills apart from orders) is recorded as one fill of
    the difference at the implied price. A fill that says its ``cumulative_qty`` (a stream's
    execution) is recorded only if it adds to the recorded quantity; when executions before it
    are missing it becomes that implied fill, so poll and stream never count a fill twice.
    Returns None when we have no order with this
    client_order_id (reconciliation reports that as "missing on our side"). ``repair``: a
    reconciliation note; the change is then also recorded as an OrderRepaired event.
    """
    # The order, and its position with it when the report may add fills.
    reported_qty = max(report.filled_qty, sum((f.qty for f in report.fills), Decimal(0)))
    before, position_row = orders_repo.lock_for_fills(
        conn, book.config_id, report.client_order_id, reported_qty
    )
    position = None if position_row is None else positions_repo.PositionRecord.from_row(position_row)
    events: list[dict[str, Any]] = []  # written together at the end, in order (one round trip)
    if before is None:
        return None
    current = OrderStatus(before["status"])
    row = before
    if current is OrderStatus.DENIED:
        return Recorded(before, before, ())  # never sent: nothing a broker says applies
    # A reconciliation repair (``repair``) aligns with the broker on purpose: it is not refused.
    anomaly = None if repair is not None else _impossible(conn, before, report)
    if anomaly is not None:
        _record_anomaly(conn, book, before, report, *anomaly)
        return Recorded(before, before, ())
    reported = report.status
    # Acknowledgement: pending_new → submitted (or held), then accepted once working.
    if current is OrderStatus.PENDING_NEW:
        acknowledged = OrderStatus.HELD if reported is OrderStatus.HELD else OrderStatus.SUBMITTED
        detail = {"broker_order_id": report.broker_order_id}
        _event(events, book, row, ORDER_SUBMITTED, current, acknowledged, detail, report.submitted_at or at)
        current = acknowledged
    working = reported in _WORKING or bool(report.fills) or report.filled_qty > 0
    if (current is OrderStatus.SUBMITTED and (working or reported in _ENDED_AFTER_ACCEPT)) or (
        current is OrderStatus.HELD and working
    ):
        _event(events, book, row, ORDER_ACCEPTED, current, OrderStatus.ACCEPTED, {}, at)
        current = OrderStatus.ACCEPTED

    new_fills = _record_fills(conn, book, before, report, at, position)
    for fill, cumulative in new_fills:
        to = OrderStatus.FILLED if cumulative >= before["qty"] else OrderStatus.PARTIALLY_FILLED
        event = ORDER_FILLED if to is OrderStatus.FILLED else ORDER_PARTIALLY_FILLED
        detail = {
            "trade_id": fill.trade_id,
            "last_qty": fill.qty,
            "last_px": fill.price,
            "commission": fill.commission,
        }
        _event(events, book, row, event, current, to, detail, fill.filled_at)
        current = to

    status_code, status_message = report.status_code, report.status_message
    if reported is OrderStatus.CANCELED and before["cancel_requested_by"] is not None:
        status_code = "canceled_by_signal"
        status_message = f"canceled by signal {before['cancel_requested_by']}"
    if reported in _TERMINAL_EVENTS and current is not reported:
        detail = {"status_code": status_code, "status_message": status_message}
        _event(events, book, row, _TERMINAL_EVENTS[reported], current, reported, detail, at)
        current = reported
    elif not current.is_terminal and _RANK[reported] >= _RANK[current]:
        current = reported  # e.g. a fill status without new fills; never back (a stale report)

    # A report older than what we hold (broker calls run outside transactions, so answers can
    # arrive late) never moves the fill figures back.
    newer_fill = report.filled_qty > before["filled_qty"]
    current_fill = report.filled_qty >= before["filled_qty"]
    values = {
        "status": current.value,
        "broker_order_id": report.broker_order_id or before["broker_order_id"],
        "status_code": status_code or before["status_code"],
        "status_message": status_message or before["status_message"],
        "filled_qty": max(report.filled_qty, before["filled_qty"]),
        "filled_avg_price": report.filled_avg_price
        if current_fill and report.filled_avg_price is not None
        else before["filled_avg_price"],
        "submitted_at": before["submitted_at"] or report.submitted_at,
        "filled_at": report.filled_at if newer_fill and report.filled_at else before["filled_at"],
        "canceled_at": before["canceled_at"] or report.canceled_at,
        "stop_price": report.stop_price if report.stop_price is not None else before["stop_price"],
    }
    if all(before[k] == v for k, v in values.items()):
        after = before  # nothing new: no write (updated_at stays)
        orders_repo.insert_events(conn, events)
    else:  # the order's new state and its events in one statement
        after = orders_repo.apply_report(conn, before["id"], events=events, **values)
    if after["status"] != before["status"] and after["status"] in _NOTIFIED:
        notifications.order_event(conn, book.notification_preferences, _NOTIFIED[after["status"]], after)
    recorded = Recorded(before, after, tuple(f for f, _ in new_fills))
    if repair is not None and recorded.changed:
        detail = {"note": repair, "before": _state_detail(before), "after": _state_detail(after)}
        _event(conn, book, after, ORDER_REPAIRED, before["status"], after["status"], detail, at)
    if recorded.changed:
        logger.info(
            "order %s: %s → %s",
            report.client_order_id,
            before["status"],
            after["status"],
            extra={
                "action": "order_recorded",
                "order_id": after["id"],
                "client_order_id": report.client_order_id,
                "signal_id": after["signal_id"],
            },
        )
    return recorded


def adopt_order(
    conn: Connection, book: Book, report: BrokerOrder, request: OrderRequest, at: datetime
) -> Recorded | None:
    """Record an order the broker has and our books lack (reconciliation), then its report.

    ``request`` carries the order's shape as the broker reported it. Recorded as PENDING_NEW
    with an OrderRepaired note, then brought to the reported state by ``record_report``.
    """
    row = _insert(conn, book, request, None, None, OrderStatus.PENDING_NEW)
    if row is None:
        return None
    detail = {"note": "missing on our side: recorded from the broker's books"}
    _event(conn, book, row, ORDER_REPAIRED, None, OrderStatus.PENDING_NEW, detail, at)
    return record_report(conn, book, report, at)


def force_state(
    conn: Connection, book: Book, row: dict[str, Any], report: BrokerOrder, note: str, at: datetime
) -> None:
    """Set an order's status, filled quantity and average price to the broker's (reconciliation).

    For what ``record_report`` will not do on its own: move a terminal status, or lower a
    filled quantity. Fills we recorded stay as history; the position is repaired apart.
    """
    columns = ("broker_order_id", "submitted_at", "filled_at", "canceled_at", "stop_price")
    after = orders_repo.apply_report(
        conn,
        row["id"],
        **{name: row[name] for name in columns},
        status=report.status.value,
        filled_qty=report.filled_qty,
        filled_avg_price=report.filled_avg_price,
        status_code=report.status_code,
        status_message=report.status_message,
    )
    detail = {"note": note, "before": _state_detail(row), "after": _state_detail(after)}
    _event(conn, book, after, ORDER_REPAIRED, row["status"], after["status"], detail, at)


def close_unsent(
    conn: Connection,
    book: Book,
    row: dict[str, Any],
    code: str,
    message: str,
    at: datetime,
    *,
    repair: bool = False,
) -> bool:
    """Close an order the broker never had as CANCELED with ``code`` and ``message``; return whether.

    Execution closes the PENDING_NEW orders it will not send (an OrderCanceled event);
    reconciliation, with ``repair``, the ones the broker does not have (an OrderRepaired event).
    The order is locked and re-read first: when its ``version`` is no longer that of ``row`` (a
    fill or a broker's answer was recorded since it was read), or it has fills, nothing changes.
    """
    current = orders_repo.lock_for_report(conn, book.config_id, row["client_order_id"])
    if current is None or current["version"] != row["version"] or current["recorded_fill_qty"] > 0:
        return False  # changed since it was read (a fill, a broker's answer): left as it now is
    after = orders_repo.update_status(
        conn, row["id"], OrderStatus.CANCELED.value, status_code=code, status_message=message, canceled_at=at
    )
    if repair:
        detail = {"note": message, "before": _state_detail(row), "after": _state_detail(after)}
        _event(conn, book, after, ORDER_REPAIRED, row["status"], after["status"], detail, at)
    else:
        detail = {"status_code": code, "status_message": message}
        _event(conn, book, after, ORDER_CANCELED, row["status"], OrderStatus.CANCELED, detail, at)
    return True


def record_not_found(
    conn: Connection,
    book: Book,
    row: dict[str, Any],
    at: datetime,
    *,
    answers_needed: int,
    grace: timedelta,
) -> bool:
    """Count the broker's "not found" answer for a PENDING_NEW order; close it once it is final.

    Closed as CANCELED ``never_submitted`` only when the broker has answered "not found"
    ``answers_needed`` times, the last at least ``grace`` after the first (a broker whose reads
    lag its writes, as Alpaca's do, may not show an order it has: FACTS.md). Locked and re-read
    first: an order that moved meanwhile is left alone. Returns whether it was closed.
    """
    current = orders_repo.lock_for_report(conn, book.config_id, row["client_order_id"])
    if (
        current is None
        or current["status"] != OrderStatus.PENDING_NEW
        or current["version"] != row["version"]
    ):
        return False
    counted = orders_repo.note_not_found(conn, current["id"], at)
    if counted["not_found_count"] < answers_needed or at - counted["first_not_found_at"] < grace:
        return False
    message = (
        f"never sent: the broker answered not found {counted['not_found_count']} times "
        f"since {counted['first_not_found_at'].isoformat()}"
    )
    return close_unsent(conn, book, counted, "never_submitted", message, at)


def deny_unsent(
    conn: Connection, book: Book, row: dict[str, Any], code: str, message: str, at: datetime
) -> None:
    """Close an order the adapter refused before sending (a shape its broker cannot take) as DENIED.

    Only a PENDING_NEW order moves (a retry finding it closed already changes nothing); an
    OrderDenied event carries ``code`` and ``message``, and it is notified as any denial is.
    """
    current = orders_repo.lock_for_report(conn, book.config_id, row["client_order_id"])
    if current is None or current["status"] != OrderStatus.PENDING_NEW:
        return
    after = orders_repo.update_status(
        conn, current["id"], OrderStatus.DENIED.value, status_code=code, status_message=message
    )
    detail = {"status_code": code, "status_message": message}
    _event(conn, book, after, ORDER_DENIED, current["status"], OrderStatus.DENIED, detail, at)
    notifications.order_event(conn, book.notification_preferences, notifications.ORDER_DENIED, after)
    logger.info(
        "order refused before sending: %s",
        code,
        extra={
            "action": "order_denied",
            "order_id": after["id"],
            "client_order_id": row["client_order_id"],
            "signal_id": after["signal_id"],
        },
    )


def set_position(
    conn: Connection, book: Book, symbol: str, qty: Decimal, avg_entry_price: Decimal, note: str
) -> None:
    """Overwrite our position in ``symbol`` with the broker's (reconciliation repair).

    Used only when the orders agree and the position still does not: the broker is the source
    of truth for what is held. Realised P&L is kept.
    """
    position = positions_repo.lock(conn, config_id=book.config_id, user_id=book.user_id, symbol=symbol)
    positions_repo.save(conn, replace(position, qty=qty, avg_entry_price=avg_entry_price))
    logger.warning(
        "position %s set to %s @ %s: %s",
        symbol,
        qty,
        avg_entry_price,
        note,
        extra={"action": "position_repaired", "config_id": book.config_id},
    )


# --- internals ------------------------------------------------------------------------------


def _insert(
    conn: Connection,
    book: Book,
    request: OrderRequest,
    signal_id: uuid.UUID | None,
    intent: str | None,
    status: OrderStatus,
    **extra: Any,
) -> dict[str, Any] | None:
    parent = None
    if request.parent_client_order_id is not None:
        parent = orders_repo.get_by_client_order_id(conn, book.config_id, request.parent_client_order_id)
    return orders_repo.insert(
        conn,
        user_id=book.user_id,
        config_id=book.config_id,
        signal_id=signal_id,
        parent_order_id=None if parent is None else parent["id"],
        broker=book.broker,
        intent=intent,
        **orders_repo.request_columns(request),
        status=status.value,
        **extra,
    )


def _record_fills(
    conn: Connection,
    book: Book,
    row: dict[str, Any],
    report: BrokerOrder,
    at: datetime,
    position: positions_repo.PositionRecord | None,
) -> list[tuple[BrokerFill, Decimal]]:
    """Record the report's fills we lack; apply each to position and cash. Returns (fill, cumulative).

    ``position``: the order's position, locked already (``orders.lock_for_fills``); None: it is
    locked (created at zero when missing) before the first fill.
    """
    fills = list(report.fills)
    recorded_qty = row["recorded_fill_qty"]
    if not fills and report.filled_qty > recorded_qty and report.filled_avg_price is not None:
        fills = [_implied_fill(row, report, recorded_qty, at)]
    out: list[tuple[BrokerFill, Decimal]] = []
    cumulative = recorded_qty
    side = OrderSide(row["side"])
    for fill in sorted(fills, key=lambda f: (f.filled_at, f.trade_id)):
        if fill.cumulative_qty is not None:
            if fill.cumulative_qty <= cumulative:
                continue  # already counted (a poll recorded this quantity, maybe with others)
            if fill.cumulative_qty - fill.qty != cumulative:
                if report.filled_avg_price is None:
                    continue  # no price to record the missed executions at: a later report has one
                # Executions before it were missed: one fill up to its cumulative quantity, as a
                # poll would record it (same trade_id).
                fill = _implied_fill(row, report, cumulative, fill.filled_at)
        if cumulative + fill.qty > row["qty"]:
            continue  # recorded already, or more than the order's quantity: never overfill
        if position is None:
            position = positions_repo.lock(
                conn, config_id=book.config_id, user_id=book.user_id, symbol=row["symbol"]
            )
        # A crypto buy's fee is taken from the coins received (BrokerFill.fee_qty): the position
        # grows by qty - fee_qty while the cash pays for qty; its value counts as commission paid.
        received = fill.qty - fill.fee_qty if side is OrderSide.BUY else fill.qty
        after = apply_fill(position, side, received, fill.price, fill.filled_at)
        inserted = positions_repo.record_fill_and_save(
            conn,
            {
                "order_id": row["id"],
                "user_id": book.user_id,
                "config_id": book.config_id,
                "trade_id": fill.trade_id,
                "symbol": row["symbol"],
                "side": row["side"],
                "last_qty": fill.qty,
                "last_px": fill.price,
                "commission": fill.commission,
                "filled_at": fill.filled_at,
                "fee_qty": fill.fee_qty,
            },
            after,
            cash_delta(side, fill.qty, fill.price, fill.commission),
            fill.commission + fill.fee_qty * fill.price,
        )
        if not inserted:
            continue
        position = after
        cumulative += fill.qty
        out.append((fill, cumulative))
    return out


def _implied_fill(
    row: dict[str, Any], report: BrokerOrder, recorded_qty: Decimal, at: datetime
) -> BrokerFill:
    """One fill for the quantity a report adds without fills (its executions are not known).

    Its price is backed out of the averages (filled_avg_price × filled_qty less what our fills
    cost) only while the broker's rounding of its average cannot move the result by more than
    one unit of the average's own precision: filled_qty ≤ 2 × the new quantity. Past that the
    rounding is multiplied by filled/new quantity (99 @ 100.00 + 1 @ 100.51, average rounded to
    100.01, would give 1 @ 101.00), so the fill is recorded at the reported average, the one
    price the broker stated, rather than at a fabricated one.
    """
    qty = report.filled_qty - recorded_qty
    average = report.filled_avg_price
    assert average is not None and average > 0
    price = average
    if report.filled_qty <= 2 * qty:
        total = average * report.filled_qty
        before = (row["filled_avg_price"] or Decimal(0)) * recorded_qty
        if total > before:
            price = (total - before) / qty
    return BrokerFill(
        trade_id=f"{report.client_order_id}-q{report.filled_qty.normalize():f}",
        qty=qty,
        price=price,
        commission=Decimal(0),
        filled_at=report.filled_at or at,
    )


def _impossible(
    conn: Connection, row: dict[str, Any], report: BrokerOrder
) -> tuple[str, str, dict[str, Any]] | None:
    """Return (kind, message, detail) when the report cannot be true of this order, else None.

    Impossible: a fill beyond the order's quantity; a terminal order reported in another
    terminal status without a new fill (filled, then canceled); a take-profit or stop-loss leg
    filling while its sibling (one-cancels-other) already filled the quantity.
    """
    current = OrderStatus(row["status"])
    reported = report.status
    new_qty = report.filled_qty - row["recorded_fill_qty"]
    if (
        report.filled_qty > row["qty"]
        or sum((f.qty for f in report.fills if f.cumulative_qty is None), Decimal(0)) > row["qty"]
    ):
        message = f"reported filled {report.filled_qty} of an order for {row['qty']}"
        return OVERFILL, message, {"qty": row["qty"], "reported_filled_qty": report.filled_qty}
    if current.is_terminal and reported.is_terminal and reported is not current and new_qty <= 0:
        message = f"reported {reported} of an order already {current}"
        return TERMINAL_TO_TERMINAL, message, {"ours": current.value, "reported": reported.value}
    if new_qty > 0 and row["purpose"] in _LEGS and row["parent_order_id"] is not None:
        sibling = orders_repo.sibling_leg_filled(conn, row["id"], row["parent_order_id"])
        if sibling > 0 and sibling + report.filled_qty > row["qty"]:
            message = f"{row['purpose']} filled {report.filled_qty} while its sibling leg filled {sibling}"
            return OCO_BOTH_FILLED, message, {"sibling_filled_qty": sibling, "reported": report.filled_qty}
    return None


def _record_anomaly(
    conn: Connection,
    book: Book,
    row: dict[str, Any],
    report: BrokerOrder,
    kind: str,
    message: str,
    detail: dict[str, Any],
) -> None:
    """Record a refused report as an anomaly (once per report), log and notify it."""
    fingerprint = f"{kind}:{row['client_order_id']}:{report.status}:{report.filled_qty.normalize():f}"
    anomaly = anomalies_repo.insert(
        conn,
        config_id=book.config_id,
        user_id=book.user_id,
        order_id=row["id"],
        client_order_id=row["client_order_id"],
        kind=kind,
        detail={"message": message, **{k: _json_value(v) for k, v in detail.items()}},
        fingerprint=fingerprint,
    )
    if anomaly is None:
        return  # the same report again
    notifications.order_anomaly(conn, book.notification_preferences, anomaly)
    logger.warning(
        "broker report refused (%s): %s",
        kind,
        message,
        extra={
            "action": "order_anomaly",
            "config_id": book.config_id,
            "order_id": row["id"],
            "client_order_id": row["client_order_id"],
        },
    )


def _event(
    conn: Connection | list[dict[str, Any]],
    book: Book,
    row: dict[str, Any],
    event_type: str,
    from_status: OrderStatus | str | None,
    to_status: OrderStatus | str,
    detail: dict[str, Any] | None,
    at: datetime,
) -> None:
    """Record one event now, or append it to ``conn`` when that is a list (written later)."""
    event = {"order_id": row["id"], **_event_values(book, event_type, from_status, to_status, detail, at)}
    if isinstance(conn, list):
        conn.append(event)
    else:
        orders_repo.insert_event(conn, **event)


def _event_values(
    book: Book,
    event_type: str,
    from_status: OrderStatus | str | None,
    to_status: OrderStatus | str,
    detail: dict[str, Any] | None,
    at: datetime,
) -> dict[str, Any]:
    """An order event's columns but its ``order_id`` (keys of ``orders.insert_event``)."""
    return {
        "user_id": book.user_id,
        "event_type": event_type,
        "from_status": None if from_status is None else str(from_status),
        "to_status": str(to_status),
        "detail": {k: _json_value(v) for k, v in (detail or {}).items() if v is not None},
        "created_at": at,
    }


def _state(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["status"], row["filled_qty"], row["filled_avg_price"], row["broker_order_id"])


def _state_detail(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": row["status"],
        "filled_qty": _json_value(row["filled_qty"]),
        "filled_avg_price": _json_value(row["filled_avg_price"]),
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value
