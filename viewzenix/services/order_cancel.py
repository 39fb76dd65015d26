"""Cancel one of your open orders at its broker (``POST /api/orders/<id>/cancel``).

The order is read as the caller (RLS: only your own), the broker is called outside any
transaction (also outside an Idempotency-Key's: canceling twice is harmless), and its answer is
recorded through the ledger. Alpaca may answer ``pending_cancel`` first; the order sync job
records the final ``canceled``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from viewzenix.brokers import BrokerNotAvailable
from viewzenix.brokers.base import BrokerError, BrokerUnavailable, OrderNotCancelable, OrderNotFound
from viewzenix.db import Database
from viewzenix.domain.model import OrderStatus
from viewzenix.exceptions import NotFound, ViewzenixError
from viewzenix.repositories import orders as orders_repo
from viewzenix.services import ledger
from viewzenix.services.accounts import Accounts, accounts_for
from viewzenix.services.common import Caller

logger = logging.getLogger(__name__)


class OrderNotOpen(ViewzenixError):
    """This order is not open, so there is nothing to cancel."""

    status = 409
    code = "order_not_open"


class OrderBeingSubmitted(ViewzenixError):
    """This order is being sent to the broker right now; retry in a few seconds."""

    status = 409
    code = "order_being_submitted"


class BrokerRefusedCancel(ViewzenixError):
    """The broker could not cancel this order."""

    status = 409
    code = "cancel_refused"


class BrokerDown(ViewzenixError):
    """The broker did not answer; nothing was changed. Retry later."""

    status = 503
    code = "broker_unavailable"


def cancel_order(
    db: Database,
    caller: Caller,
    order_id: uuid.UUID,
    *,
    now: datetime | None = None,
    accounts: Accounts | None = None,
) -> uuid.UUID:
    """Cancel the caller's open order at its broker and record the answer; return the order id.

    Raises NotFound (also another user's order), OrderNotOpen (terminal), OrderBeingSubmitted
    (still ``pending_new``: its job is sending it), BrokerRefusedCancel (the broker no longer
    has it open, or has no such order; what it says is recorded), BrokerDown, and
    BrokerRefusedCancel with code ``broker_not_available`` when the config's broker cannot be used.
    """
    at = now or datetime.now(UTC)
    accounts = accounts_for(db, accounts)
    with db.transaction(caller.claims) as conn:
        row = orders_repo.get(conn, order_id)
    if row is None:
        raise NotFound("No order with this id.")
    status = OrderStatus(row["status"])
    if status.is_terminal:
        raise OrderNotOpen(f"Order {row['client_order_id']} is {status}: nothing to cancel.")
    if status is OrderStatus.PENDING_NEW:
        raise OrderBeingSubmitted()
    with db.detached():
        config = accounts.config(row["config_id"])
        try:
            account = accounts.account(config)
        except BrokerNotAvailable as error:
            raise BrokerRefusedCancel(error.message, code="broker_not_available") from error
        with db.transaction() as conn:
            ledger.request_cancel(
                conn, account.book, row, signal_id=None, reason="canceled through the API", at=at
            )
        report = _cancel_at_broker(account.broker, row["client_order_id"])
        accounts.record(account.book, [report], at)
    logger.info(
        "order %s cancel requested through the API: %s",
        row["client_order_id"],
        report.status,
        extra={"action": "order_cancel_api", "order_id": order_id, "client_order_id": row["client_order_id"]},
    )
    return order_id


def _cancel_at_broker(broker: Any, client_order_id: str) -> Any:
    try:
        return broker.cancel_order(client_order_id)
    except OrderNotFound as error:
        raise BrokerRefusedCancel(f"The broker has no order {client_order_id}: {error.message}") from error
    except OrderNotCancelable as error:
        raise BrokerRefusedCancel(error.message) from error
    except BrokerUnavailable as error:
        raise BrokerDown(f"The broker did not answer: {error.message}") from error
    except BrokerError as error:
        raise BrokerRefusedCancel(error.message) from error
