"""FakeBroker: an in-memory test double of the broker port (not a real broker, not the paper one).

It keeps its own orders in memory and can misbehave the ways real brokers do:

- ``timeout_after_accept``: the order is placed, then the call raises BrokerUnavailable, as a
  504 or a read timeout after Alpaca accepted it;
- ``refuse``: the broker refuses the order (REJECTED with a code and a message, as Alpaca's
  403 "insufficient buying power");
- ``partial_fill``: only this fraction of the quantity fills at once (PARTIALLY_FILLED);
- ``down``: every call raises BrokerUnavailable;
- ``crash_after_submit``: the order is placed, then a ``Crash`` (a BaseException, like SIGKILL
  for the code under test: nothing after it runs, no handler records a failure) is raised;
- ``lagging_reads``: reads lag writes, as Alpaca's do — the next N look-ups by client_order_id
  do not show orders placed so far (``reads_lag`` then says so, as the Alpaca
  adapter's does).

``calls`` lists every port call as ``(method, client_order_id)``; ``probe`` (optional) runs at
the start of every call, e.g. to check that no database transaction is open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from builders import NOW

from viewzenix.brokers.base import (
    BrokerFill,
    BrokerName,
    BrokerOrder,
    BrokerUnavailable,
    DuplicateOrder,
    OrderNotCancelable,
    OrderNotFound,
)
from viewzenix.domain.engine import OrderRequest
from viewzenix.domain.model import AccountState, OrderStatus, OrderType, PositionState


class Crash(BaseException):
    """The process died here (the test's stand-in for SIGKILL)."""


class FakeBroker:
    """In-memory broker double for one account; market orders fill at the reference price."""

    name = BrokerName.SIMULATED

    def __init__(self, *, cash: Decimal = Decimal("100000")) -> None:
        self.orders: dict[str, BrokerOrder] = {}
        self.cash = cash
        self.calls: list[tuple[str, str | None]] = []
        self.timeout_after_accept = False
        self.refuse: tuple[str, str] | None = None
        self.partial_fill: Decimal | None = None
        self.down = False
        self.crash_after_submit = False
        self.duplicate_on_submit = False
        self.probe: Callable[[str], None] | None = None
        self.reads_lag = False
        self.lagging_reads = 0
        self._trades = 0

    # --- the port ---------------------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self._call("submit_order", request.client_order_id)
        if request.client_order_id in self.orders:
            raise DuplicateOrder(client_order_id=request.client_order_id)
        order = self._place(request)
        self.orders[request.client_order_id] = order
        if self.duplicate_on_submit:
            self.duplicate_on_submit = False
            raise DuplicateOrder(client_order_id=request.client_order_id)
        if self.timeout_after_accept:
            self.timeout_after_accept = False
            raise BrokerUnavailable("read timed out (the fake accepted the order first)")
        if self.crash_after_submit:
            self.crash_after_submit = False
            raise Crash("killed after submit, before recording")
        return order

    def cancel_order(self, client_order_id: str) -> BrokerOrder:
        self._call("cancel_order", client_order_id)
        order = self.orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(client_order_id=client_order_id)
        if order.status is OrderStatus.CANCELED:
            return order
        if order.status.is_terminal:
            raise OrderNotCancelable(client_order_id=client_order_id)
        order = replace(order, status=OrderStatus.CANCELED, status_code="canceled", canceled_at=NOW)
        self.orders[client_order_id] = order
        return order

    def get_order_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        self._call("get_order_by_client_order_id", client_order_id)
        if self.lagging_reads > 0:
            self.lagging_reads -= 1
            return None
        return self.orders.get(client_order_id)

    def list_open_orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        self._call("list_open_orders", None)
        return [
            o for o in self.orders.values() if o.status.is_open and (symbol is None or o.symbol == symbol)
        ]

    def list_orders(self, after: datetime | None = None) -> list[BrokerOrder]:
        self._call("list_orders", None)
        return [o for o in self.orders.values() if after is None or (o.submitted_at or NOW) > after]

    def get_positions(self) -> list[PositionState]:
        self._call("get_positions", None)
        held: dict[str, Decimal] = {}
        for order in self.orders.values():
            signed = order.filled_qty if order.side == "buy" else -order.filled_qty
            held[order.symbol] = held.get(order.symbol, Decimal(0)) + signed
        return [PositionState(symbol=s, qty=q) for s, q in sorted(held.items()) if q != 0]

    def get_account(self) -> AccountState:
        self._call("get_account", None)
        cash = self.cash  # the deposit; each filled order moves it by its notional
        for order in self.orders.values():
            notional = order.filled_qty * (order.filled_avg_price or Decimal(0))
            cash += -notional if order.side == "buy" else notional
        return AccountState(cash=cash, equity=cash)

    # --- helpers ----------------------------------------------------------------------------

    def submits(self, client_order_id: str | None = None) -> int:
        """How many submit_order calls (for one client_order_id, or all) the fake received."""
        return sum(1 for m, c in self.calls if m == "submit_order" and client_order_id in (None, c))

    def _call(self, method: str, client_order_id: str | None) -> None:
        self.calls.append((method, client_order_id))
        if self.probe is not None:
            self.probe(method)
        if self.down:
            raise BrokerUnavailable("connection refused (the fake is down)")

    def _place(self, request: OrderRequest) -> BrokerOrder:
        base = BrokerOrder(
            client_order_id=request.client_order_id,
            broker_order_id=f"fake-{len(self.orders) + 1}",
            status=OrderStatus.ACCEPTED,
            symbol=request.symbol,
            side=str(request.side),
            qty=request.qty,
            submitted_at=NOW,
            parent_client_order_id=request.parent_client_order_id,
        )
        if self.refuse is not None:
            code, message = self.refuse
            return replace(base, status=OrderStatus.REJECTED, status_code=code, status_message=message)
        if request.order_type is not OrderType.MARKET or request.reference_price is None:
            return base
        qty = request.qty if self.partial_fill is None else (request.qty * self.partial_fill)
        self._trades += 1
        fill = BrokerFill(
            trade_id=f"fake-trade-{self._trades}",
            qty=qty,
            price=request.reference_price,
            commission=Decimal("0"),
            filled_at=NOW,
        )
        status = OrderStatus.FILLED if qty == request.qty else OrderStatus.PARTIALLY_FILLED
        return replace(
            base,
            status=status,
            filled_qty=qty,
            filled_avg_price=request.reference_price,
            filled_at=NOW,
            fills=(fill,),
        )
