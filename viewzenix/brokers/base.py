"""The broker port: one protocol every broker adapter implements, its records and errors.

Adapters (``simulated``, later ``alpaca``) take ``OrderRequest``s planned by
``viewzenix.domain.engine`` and answer with ``BrokerOrder`` reports. An adapter never writes
our books (``orders``, ``order_events``, ``fills``, ``positions``, ``accounts``): it only
reports, and the ledger (``viewzenix.services.ledger``) records what it reports. Every port call
may be a network call, so the execution service makes none inside a database transaction.

Driver and vendor errors are translated at the adapter edge into the exception tree below,
whose docstrings are the default messages (procrastinate style): Alpaca's 422
"client_order_id must be unique" becomes ``DuplicateOrder``, a timeout or a 5xx
``BrokerUnavailable``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from viewzenix.domain.model import AccountState, OrderStatus, PositionState

if TYPE_CHECKING:
    from viewzenix.domain.engine import OrderRequest

__all__ = [
    "BarDriven",
    "BracketResult",
    "Broker",
    "BrokerError",
    "BrokerFill",
    "BrokerName",
    "BrokerOrder",
    "BrokerUnavailable",
    "DuplicateOrder",
    "NativeBrackets",
    "OrderNotCancelable",
    "OrderNotFound",
    "OrderShapeRefused",
    "PriceDriven",
]


class BrokerName(enum.StrEnum):
    """Which adapter a webhook config trades through (``webhook_configs.broker``)."""

    SIMULATED = "simulated"
    ALPACA = "alpaca"


class BrokerError(Exception):
    """The broker refused or could not handle the request."""

    def __init__(self, message: str | None = None, *, client_order_id: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip().splitlines()[0]
        self.client_order_id = client_order_id
        super().__init__(self.message)


class DuplicateOrder(BrokerError):
    """client_order_id must be unique.

    Alpaca: a client_order_id is unique per account forever, even after cancel. A retried
    submit that meets this has already been submitted: look the order up with
    ``get_order_by_client_order_id`` and record what it says.
    """


class OrderNotFound(BrokerError):
    """No order with this client_order_id at the broker."""


class OrderNotCancelable(BrokerError):
    """The order is not cancelable: it is already filled, rejected or expired."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be reached or did not answer; retry later.

    Raised for timeouts, connection errors and 5xx answers. After a timeout the broker may
    still have accepted the order: the caller must look it up before submitting again.
    """


class OrderNotVisibleYet(BrokerUnavailable):
    """The broker refused this client_order_id as a duplicate but does not show the order yet.

    Alpaca's reads can lag its writes (FACTS.md): the order exists. Transient: the job is retried
    with backoff and looks the order up first.
    """


class OrderShapeRefused(BrokerError):
    """The broker cannot take an order of this shape; it was refused before sending.

    ``code`` says which rule (e.g. ``crypto_time_in_force``), the message says why and how to
    fix it. The execution service records the order as DENIED with both: nothing was sent.
    """

    def __init__(self, code: str, message: str, *, client_order_id: str | None = None) -> None:
        self.code = code
        super().__init__(message, client_order_id=client_order_id)


@dataclass(frozen=True)
class BrokerFill:
    """One execution of an order, as the broker reports it.

    ``trade_id`` is unique per account (the ledger records each fill once by it); ``qty`` in
    shares (> 0), ``price`` and ``commission`` in the quote currency, ``filled_at`` UTC.
    ``cumulative_qty``: the order's filled quantity once this execution is counted, when the
    broker says it (Alpaca's trade_updates): the ledger then records the fill only if it adds to
    what is recorded, so a fill also recorded from a poll is never counted twice.
    ``fee_qty``: the asset a crypto buy's fee took from the coins received (Alpaca charges crypto
    fees in the asset received); the position grows by ``qty - fee_qty``, the cash pays for
    ``qty``. A sell's fee is in its ``commission``.
    """

    trade_id: str
    qty: Decimal
    price: Decimal
    commission: Decimal
    filled_at: datetime
    cumulative_qty: Decimal | None = None
    fee_qty: Decimal = Decimal(0)


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker reports it after a submit, cancel or look-up.

    ``status`` uses our vocabulary (the adapter maps the broker's: Alpaca ``accepted`` →
    SUBMITTED, ``new`` → ACCEPTED, ``held`` → HELD, ``done_for_day`` → ACCEPTED, ...).
    ``filled_qty`` in shares (0 until filled); ``filled_avg_price`` in the quote currency, None
    until the first fill.
    ``status_code``/``status_message`` explain a REJECTED, CANCELED or EXPIRED status (e.g.
    ``no_market_price``). ``fills``: every execution so far when the broker reports them with
    the order (the paper broker does; an adapter that cannot leaves it empty and the ledger
    records the ``filled_qty`` change as one fill). ``stop_price``: the current trigger
    (a trailing stop's moves with the market).
    """

    client_order_id: str
    broker_order_id: str | None
    status: OrderStatus
    symbol: str
    side: str
    qty: Decimal
    filled_qty: Decimal = Decimal("0")
    filled_avg_price: Decimal | None = None
    status_code: str | None = None
    status_message: str | None = None
    submitted_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    stop_price: Decimal | None = None
    parent_client_order_id: str | None = None
    fills: tuple[BrokerFill, ...] = ()
    order_type: str = "market"
    time_in_force: str = "day"
    limit_price: Decimal | None = None


@runtime_checkable
class Broker(Protocol):
    """What the execution service needs from a broker (one account = one webhook config).

    Every method may do network I/O: call none of them inside a database transaction.
    """

    name: BrokerName
    # Whether a read may not show a write yet (Alpaca: True). A broker that reads its own books
    # (the paper broker) is believed at its first "not found"; a lagging one only after
    # repeated answers past a grace period (services.accounts). Absent: taken as True.
    reads_lag: bool

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        """Submit one order with ``request.client_order_id``; return it as the broker reports.

        Raises DuplicateOrder when the client_order_id was used before on this account,
        BrokerUnavailable when the broker cannot be reached or did not answer (the order may
        have been placed all the same). A refusal by the broker itself (buying power, an order
        shape it cannot take) is a BrokerOrder with status REJECTED, not an exception. A shape
        the adapter knows the broker cannot take is refused before sending: OrderShapeRefused.
        """
        ...

    def cancel_order(self, client_order_id: str) -> BrokerOrder:
        """Cancel an open order (and any legs it holds); return it.

        Canceling a canceled order returns it unchanged. Raises OrderNotFound,
        OrderNotCancelable (filled, rejected, expired), BrokerUnavailable.
        """
        ...

    def get_order_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        """Return the order with this client_order_id, or None. Raises BrokerUnavailable.

        Alpaca: ``GET /v2/orders:by_client_order_id`` (alpaca-py ``get_order_by_client_id``).
        """
        ...

    def list_open_orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        """Return the account's open orders (held to partially filled), oldest first."""
        ...

    def list_orders(self, after: datetime | None = None) -> list[BrokerOrder]:
        """Return the account's orders, open and closed, submitted after ``after``, oldest first.

        For reconciliation. Alpaca: ``GET /v2/orders?status=all&after=…&direction=asc``, paged.
        """
        ...

    def get_positions(self) -> list[PositionState]:
        """Return the account's open (non-flat) positions, signed qty (short < 0)."""
        ...

    def get_account(self) -> AccountState:
        """Return the account's cash and equity, account currency."""
        ...


@dataclass(frozen=True)
class BracketResult:
    """What one submission of an entry with its legs gave: reports, and legs refused unsent.

    ``reports``: the entry first, then each leg sent, under our client_order_ids.
    ``refused``: client_order_id → (code, message) of each leg the broker cannot take (it was
    not sent; the entry went without it).
    """

    reports: tuple[BrokerOrder, ...]
    refused: dict[str, tuple[str, str]]


@runtime_checkable
class NativeBrackets(Protocol):
    """The optional capability of a broker that attaches take-profit/stop-loss legs to their entry.

    Alpaca takes an entry and its legs in one request (order class ``bracket`` with both legs,
    ``oto`` with one) and cannot attach a leg to an order sent before, so the execution service
    sends an entry and its legs together through this method instead of one by one.
    """

    def submit_with_legs(self, entry: OrderRequest, legs: list[OrderRequest]) -> BracketResult:
        """Submit ``entry`` with ``legs`` (each with ``parent_client_order_id`` = the entry's).

        Raises OrderShapeRefused when the entry itself cannot be taken (nothing sent),
        DuplicateOrder, BrokerUnavailable, as ``submit_order``.
        """
        ...


@runtime_checkable
class PriceDriven(Protocol):
    """The optional capability of a simulator: it learns prices only from alerts.

    A real broker has market data; the paper broker works its resting orders against the
    prices alerts carry.
    """

    def process_price(self, symbol: str, price: Decimal, at: datetime) -> list[BrokerOrder]:
        """Mark ``symbol`` at ``price`` (time ``at``, UTC) and work its resting orders against it.

        Returns the orders whose state changed (filled, triggered legs, OCO cancels, expiries).
        """
        ...


@runtime_checkable
class SessionDriven(Protocol):
    """The optional capability of a simulator: it is told when a trading session closes.

    A real broker expires its own ``day`` orders at the close (Alpaca: canceled/expired after
    16:00 New York); the paper broker learns of the close from the worker's periodic task.
    """

    def expire_day_orders(self, session_close: datetime, at: datetime) -> list[BrokerOrder]:
        """Expire the working ``day`` orders submitted before ``session_close`` (UTC).

        Symbols without a session (crypto) are left alone. ``at``: UTC time of the expiry.
        Returns the orders whose state changed (the expired ones, their canceled held legs).
        """
        ...


@runtime_checkable
class BarDriven(Protocol):
    """The optional capability of a simulator: it works its resting orders on each new bar.

    A real broker sees the market itself; the paper broker is handed each bar of its config's
    market data (``viewzenix.services.bars``), in order with the symbol's signals.
    """

    def process_bar(self, bar: Any) -> list[BrokerOrder]:
        """Work ``bar.symbol``'s resting orders against ``bar`` (a ``viewzenix.marketdata.Bar``).

        Returns the orders whose state changed; a bar not newer than the last one worked
        changes nothing (returns []).
        """
        ...
