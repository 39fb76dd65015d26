"""The broker port: one protocol every broker adapter implements, its records and errors.

Adapters (``simulated``, later ``alpaca``) take ``OrderRequest``s planned by
``viewzenix.domain.engine`` and answer with ``BrokerOrder``s. Driver and vendor errors are
translated at the adapter edge into the exception tree below, whose docstrings are the default
messages (procrastinate style): a unique violation on ``client_order_id`` becomes
``DuplicateOrder``, Alpaca's 422 "client_order_id must be unique" too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from viewzenix.domain.model import AccountState, OrderStatus, PositionState

if TYPE_CHECKING:
    from viewzenix.domain.engine import OrderRequest

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerOrder",
    "BrokerUnavailable",
    "DuplicateOrder",
    "OrderNotCancelable",
    "OrderNotFound",
]


class BrokerError(Exception):
    """The broker refused or could not handle the request."""

    def __init__(self, message: str | None = None, *, client_order_id: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.client_order_id = client_order_id
        super().__init__(self.message)


class DuplicateOrder(BrokerError):
    """client_order_id must be unique.

    Alpaca: a client_order_id is unique per account forever, even after cancel. A retried
    submit that meets this has already been submitted: look the order up with ``get_order``.
    """


class OrderNotFound(BrokerError):
    """No order with this client_order_id at the broker."""


class OrderNotCancelable(BrokerError):
    """The order is not cancelable: it is already filled, rejected, denied or expired."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be reached or is not available for this config; retry later."""


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker reports it after a submit, cancel or look-up.

    ``filled_qty`` in shares (0 until filled); ``filled_avg_price`` in the quote currency, None
    until the first fill. ``status_code``/``status_message`` explain a REJECTED, CANCELED or
    EXPIRED status (e.g. ``no_market_price``). ``order_id`` is our ``orders.id`` when the
    adapter records orders, else None.
    """

    client_order_id: str
    broker_order_id: str | None
    status: OrderStatus
    filled_qty: Decimal = Decimal("0")
    filled_avg_price: Decimal | None = None
    status_code: str | None = None
    status_message: str | None = None
    order_id: uuid.UUID | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BrokerOrder:
        """Build from an ``orders`` row (dict)."""
        return cls(
            client_order_id=row["client_order_id"],
            broker_order_id=row["broker_order_id"],
            status=OrderStatus(row["status"]),
            filled_qty=Decimal(row["filled_qty"]),
            filled_avg_price=row["filled_avg_price"],
            status_code=row["status_code"],
            status_message=row["status_message"],
            order_id=row["id"],
        )


@runtime_checkable
class Broker(Protocol):
    """What the execution service needs from a broker (one account = one webhook config)."""

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        """Submit one order; return its state right after submission.

        Raises DuplicateOrder when ``request.client_order_id`` was used before on this account,
        BrokerUnavailable when the broker cannot be reached. A refusal by the broker itself is
        a BrokerOrder with status REJECTED, not an exception.
        """
        ...

    def cancel_order(self, client_order_id: str) -> BrokerOrder:
        """Cancel an open order; return it (canceling a canceled order returns it unchanged).

        Raises OrderNotFound, OrderNotCancelable (already filled, rejected, denied, expired).
        """
        ...

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """Return the order with this client_order_id, or None."""
        ...

    def get_positions(self) -> list[PositionState]:
        """Return the account's open (non-flat) positions, signed qty (short < 0)."""
        ...

    def get_account(self) -> AccountState:
        """Return the account's cash and equity, account currency."""
        ...
