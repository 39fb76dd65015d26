"""A FAKE of Alpaca's Trading REST API (v2), served over real HTTP on a loopback port.

Not Alpaca: a stand-in for tests and ``scripts/demo.py --broker alpaca-fake``, built from the
response shapes in Alpaca's API reference ("Orders", "Account", "Positions", "Trading API
errors") and alpaca-py's own test fixtures (``tests/trading/trading_client/test_order_routes.py``):
orders, account and positions come back as Alpaca's JSON (strings for numbers, ``Z`` timestamps,
``order_class``, ``legs`` when ``nested=true``), and errors as ``{"code": <8 digits>, "message"}``
with Alpaca's status codes. ``tests/contract/test_fake_alpaca_contract.py`` checks that every
answer parses with alpaca-py's models.

Served (``/v2`` prefix): ``POST /orders``, ``GET /orders`` (status open|closed|all, after, until,
direction, limit, nested, symbols), ``GET /orders/{id}`` (nested), ``GET
/orders:by_client_order_id``, ``DELETE /orders/{id}``, ``GET /account``, ``GET /positions``.
Every request must carry ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` matching the fake's keys
(else 401).

Its market: a price per symbol set by the test (``set_price``). With ``auto_fill`` (the default)
a market order, and a limit order its price crosses, fills whole at once at that price when
POSTed; otherwise orders stay ``new`` until the test calls ``fill`` (partial fills included),
``cancel``/``expire``/``reject``. Every change is also an event of Alpaca's trade_updates stream
(``events``; ``subscribers`` hear them: ``tests/fakes/alpaca_stream.py`` sends them on).
Bracket/OTO legs are ``held`` until their entry fills, then ``new``; a filled leg cancels its
sibling (OCO). No commissions, no slippage (Alpaca paper).
Buying power = cash (multiplier 1): a buy costing more is refused 403 "insufficient buying
power". Faults for tests: ``fail_next`` (any status, e.g. 429 with ``Retry-After``, 500, 504 —
optionally after the order was placed), ``hold_next_post`` (places the order, then holds the
answer until ``release`` so the client times out: "timeout after accept").
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

KEY_ID = "PKFAKEKEYID00000TEST"
SECRET_KEY = "fake-secret-key-for-tests-only"
ACCOUNT_ID = "1f2e3d4c-0000-4000-8000-00000000fa4e"
ACCOUNT_NUMBER = "PA3FAKE00001"
_CRYPTO_TIF = ("gtc", "ioc")


def _num(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _ts(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    type: str
    time_in_force: str
    order_class: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    extended_hours: bool
    created_at: datetime
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    updated_at: datetime | None = None
    parent_id: str | None = None
    legs: list[FakeOrder] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in ("new", "accepted", "pending_new", "partially_filled", "held", "pending_cancel")

    def to_json(self, *, nested: bool) -> dict[str, Any]:
        crypto = "/" in self.symbol
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": _ts(self.created_at),
            "updated_at": _ts(self.updated_at or self.created_at),
            "submitted_at": _ts(self.created_at),
            "filled_at": _ts(self.filled_at),
            "expired_at": _ts(self.expired_at),
            "canceled_at": _ts(self.canceled_at),
            "failed_at": _ts(self.failed_at),
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, self.symbol)),
            "symbol": self.symbol,
            "asset_class": "crypto" if crypto else "us_equity",
            "notional": None,
            "qty": _num(self.qty),
            "filled_qty": _num(self.filled_qty),
            "filled_avg_price": _num(self.filled_avg_price),
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": ("buy" if self.side == "buy" else "sell") + "_to_open",
            "time_in_force": self.time_in_force,
            "limit_price": _num(self.limit_price),
            "stop_price": _num(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": [leg.to_json(nested=False) for leg in self.legs] if nested and self.legs else None,
            "trail_percent": _num(self.trail_percent),
            "trail_price": _num(self.trail_price),
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at": None,
        }


@dataclass
class _Fault:
    status: int
    body: Any
    headers: dict[str, str]
    method: str | None
    path: str | None
    after_apply: bool


class FakeAlpacaApi:
    """The fake's state and its HTTP app. Use ``running()`` to serve it on 127.0.0.1.

    ``requests``: (method, path) of every request received, in order (faults included).
    """

    def __init__(
        self,
        *,
        key_id: str = KEY_ID,
        secret_key: str = SECRET_KEY,
        cash: Decimal = Decimal("100000"),
        auto_fill: bool = True,
        clock: Any = None,
    ) -> None:
        self.key_id = key_id
        self.secret_key = secret_key
        self.cash = cash
        self.auto_fill = auto_fill
        self.clock = clock or (lambda: datetime.now(UTC))
        self.prices: dict[str, Decimal] = {}
        self.orders: dict[str, FakeOrder] = {}
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}  # symbol → (signed qty, avg price)
        self.requests: list[tuple[str, str]] = []
        self.trading_blocked = False
        self._faults: list[_Fault] = []
        self._hold: threading.Event | None = None
        self._lock = threading.RLock()
        self.posted: list[str] = []  # raw bodies of POST /v2/orders
        self.url = ""
        # trade_updates: every event's ``data``, and who hears them (the fake stream).
        self.events: list[dict[str, Any]] = []
        self.subscribers: list[Any] = []

    # --- the test's controls -----------------------------------------------------------------

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        """Set the market price of ``symbol`` (market orders fill at it)."""
        with self._lock:
            self.prices[symbol] = Decimal(str(price))

    def fail_next(
        self,
        status: int,
        message: str = "",
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        headers: dict[str, str] | None = None,
        after_apply: bool = False,
        raw: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (Alpaca's error body).

        ``after_apply``: do the work first (a POST places the order), then answer the error —
        Alpaca timing out after it accepted. ``raw``: a non-JSON body (a proxy's 504 page).
        """
        body: Any = raw if raw is not None else {"code": status * 100000, "message": message or "error"}
        for _ in range(times):
            self._faults.append(_Fault(status, body, headers or {}, method, path, after_apply))

    def hold_next_post(self) -> threading.Event:
        """Place the next POSTed order, then hold its answer until the returned event is set."""
        self._hold = threading.Event()
        return self._hold

    def order(self, client_order_id: str) -> FakeOrder:
        """The order with this client_order_id, or this Alpaca id (a leg's). KeyError when none."""
        with self._lock:
            for order in self._all():
                if client_order_id in (order.client_order_id, order.id):
                    return order
        raise KeyError(client_order_id)

    def orders_of(self, symbol: str | None = None) -> list[FakeOrder]:
        """Top-level orders, oldest first."""
        with self._lock:
            return [o for o in self.orders.values() if symbol is None or o.symbol == symbol]

    def fill(
        self, client_order_id: str, qty: Decimal | str | None = None, price: Decimal | str | None = None
    ) -> None:
        """Fill ``qty`` (default: what is left) of an open order at ``price`` (default: the market)."""
        with self._lock:
            order = self.order(client_order_id)
            left = order.qty - order.filled_qty
            self._fill(order, Decimal(str(qty)) if qty is not None else left, self._price(order, price))

    def cancel(self, client_order_id: str) -> None:
        """Cancel an open order as Alpaca would on its own (with its held legs)."""
        with self._lock:
            self._cancel(self.order(client_order_id))

    def expire(self, client_order_id: str) -> None:
        with self._lock:
            order = self.order(client_order_id)
            order.status, order.expired_at = "expired", self.clock()
            order.updated_at = order.expired_at
            self._emit("expired", order)

    def reject(self, client_order_id: str) -> None:
        with self._lock:
            order = self.order(client_order_id)
            order.status, order.failed_at = "rejected", self.clock()
            order.updated_at = order.failed_at
            self._emit("rejected", order)

    @contextmanager
    def running(self) -> Iterator[FakeAlpacaApi]:
        """Serve on a free loopback port (``self.url``) in a thread until the block ends."""
        server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{server.server_port}"
        thread = threading.Thread(target=server.serve_forever, name="fake-alpaca", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            if self._hold is not None:
                self._hold.set()
            server.shutdown()
            thread.join(timeout=5)

    # --- HTTP --------------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        path = request.path
        self.requests.append((request.method, path))
        if (
            request.headers.get("APCA-API-KEY-ID") != self.key_id
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret_key
        ):
            return _error(401, 40110000, "request is not authorized")
        fault = self._take_fault(request.method, path)
        if fault is not None and not fault.after_apply:
            return _fault_response(fault)
        hold = self._hold if request.method == "POST" else None
        if hold is not None:
            self._hold = None
        with self._lock:
            response = self._route(request, path)
        if fault is not None:
            return _fault_response(fault)
        if hold is not None:
            hold.wait(timeout=30)
        return response

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if (fault.method is None or fault.method == method) and (
                    fault.path is None or path.startswith(fault.path)
                ):
                    return self._faults.pop(i)
        return None

    def _route(self, request: Request, path: str) -> Response:
        method = request.method
        if path == "/v2/account" and method == "GET":
            return _json(self._account())
        if path == "/v2/positions" and method == "GET":
            return _json([self._position(s) for s, (q, _) in sorted(self.positions.items()) if q != 0])
        if path == "/v2/orders" and method == "POST":
            self.posted.append(request.get_data(as_text=True))  # the raw body, as on the wire
            return self._post_order(request.get_json(silent=True) or {})
        if path == "/v2/orders" and method == "GET":
            return self._list_orders(request.args)
        if path == "/v2/orders:by_client_order_id" and method == "GET":
            cid = request.args.get("client_order_id", "")
            found = next((o for o in self._all() if o.client_order_id == cid), None)
            if found is None:
                return _error(404, 40410000, "order not found")
            return _json(found.to_json(nested=True))
        if path.startswith("/v2/orders/"):
            order = self._by_id(path.removeprefix("/v2/orders/"))
            if order is None:
                return _error(404, 40410000, "order not found")
            if method == "GET":
                return _json(order.to_json(nested=request.args.get("nested") == "true"))
            if method == "DELETE":
                if not order.is_open:
                    return _error(422, 42210000, f'order is already in "{order.status}" state')
                self._cancel(order)
                return Response(status=204)
        return _error(404, 40410000, "endpoint not found")

    # --- orders ------------------------------------------------------------------------------

    def _post_order(self, body: dict[str, Any]) -> Response:
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if any(o.client_order_id == cid for o in self._all()):
            return _error(422, 40010001, "client_order_id must be unique")
        symbol = body.get("symbol") or ""
        try:
            qty = Decimal(str(body["qty"]))
        except (KeyError, ArithmeticError, ValueError):
            return _error(422, 40010001, "qty is required")
        tif = body.get("time_in_force")
        if "/" in symbol and tif not in _CRYPTO_TIF:
            return _error(422, 42210000, f"invalid crypto time_in_force {tif}")
        side = body.get("side")
        price = self.prices.get(symbol)
        cost = qty * (Decimal(str(body.get("limit_price") or 0)) or price or Decimal(0))
        if side == "buy" and cost > self._buying_power():
            return _error(403, 40310000, "insufficient buying power")
        now = self.clock()
        order_class = body.get("order_class") or "simple"
        order = self._new_order(body, cid, symbol, qty, side, now, order_class)
        for kind, leg_body in (
            ("take_profit", body.get("take_profit")),
            ("stop_loss", body.get("stop_loss")),
        ):
            if not leg_body:
                continue
            leg_type = (
                "limit"
                if kind == "take_profit"
                else ("stop_limit" if leg_body.get("limit_price") else "stop")
            )
            leg = FakeOrder(
                id=str(uuid.uuid4()),
                client_order_id=str(uuid.uuid4()),
                symbol=symbol,
                side="sell" if side == "buy" else "buy",
                qty=qty,
                type=leg_type,
                time_in_force=tif,
                order_class=order_class,
                limit_price=_dec(leg_body.get("limit_price")),
                stop_price=_dec(leg_body.get("stop_price")),
                trail_price=None,
                trail_percent=None,
                extended_hours=False,
                created_at=now,
                status="held",
                parent_id=order.id,
            )
            order.legs.append(leg)
        self.orders[order.id] = order
        self._emit(order.status, order)  # Alpaca: "new" (routed) or "accepted" (not yet)
        if self.auto_fill:
            self._work(order)
        return _json(order.to_json(nested=True))

    def _new_order(
        self,
        body: dict[str, Any],
        cid: str,
        symbol: str,
        qty: Decimal,
        side: str,
        now: datetime,
        order_class: str,
    ) -> FakeOrder:
        return FakeOrder(
            id=str(uuid.uuid4()),
            client_order_id=cid,
            symbol=symbol,
            side=side,
            qty=qty,
            type=body.get("type") or "market",
            time_in_force=body.get("time_in_force") or "day",
            order_class=order_class,
            limit_price=_dec(body.get("limit_price")),
            stop_price=_dec(body.get("stop_price")),
            trail_price=_dec(body.get("trail_price")),
            trail_percent=_dec(body.get("trail_percent")),
            extended_hours=bool(body.get("extended_hours")),
            created_at=now,
            status="new" if self.auto_fill else "accepted",
        )

    def _work(self, order: FakeOrder) -> None:
        """auto_fill: fill a market order, or a limit order the price crosses, at the price."""
        price = self.prices.get(order.symbol)
        if price is None:
            return
        marketable = order.type == "market" or (
            order.type == "limit"
            and order.limit_price is not None
            and (price <= order.limit_price if order.side == "buy" else price >= order.limit_price)
        )
        if marketable:
            self._fill(order, order.qty - order.filled_qty, price)

    def _fill(self, order: FakeOrder, qty: Decimal, price: Decimal) -> None:
        if not order.is_open or order.status == "held":
            raise ValueError(f"order {order.client_order_id} is {order.status}: it cannot fill")
        qty = min(qty, order.qty - order.filled_qty)
        now = self.clock()
        total = (order.filled_avg_price or Decimal(0)) * order.filled_qty + price * qty
        order.filled_qty += qty
        order.filled_avg_price = total / order.filled_qty
        order.status = "filled" if order.filled_qty == order.qty else "partially_filled"
        order.updated_at = now
        if order.status == "filled":
            order.filled_at = now
        signed = qty if order.side == "buy" else -qty
        held, avg = self.positions.get(order.symbol, (Decimal(0), Decimal(0)))
        after = held + signed
        if held == 0 or (held > 0) == (signed > 0):
            avg = (abs(held) * avg + qty * price) / abs(after)
        elif after != 0 and (after > 0) != (held > 0):
            avg = price
        self.positions[order.symbol] = (after, avg if after != 0 else Decimal(0))
        self.prices.setdefault(order.symbol, price)
        self.cash -= signed * price
        self._emit(
            "fill" if order.status == "filled" else "partial_fill",
            order,
            execution_id=str(uuid.uuid4()),
            price=_num(price),
            qty=_num(qty),
            position_qty=_num(after),
        )
        if order.status == "filled":
            for leg in order.legs:
                if leg.status == "held":
                    leg.status, leg.updated_at = "new", now
                    self._emit("new", leg)
        if order.parent_id is not None:  # OCO: a leg filling cancels its sibling
            parent = self.orders[order.parent_id]
            for sibling in parent.legs:
                if sibling is not order and sibling.is_open:
                    self._cancel(sibling)

    def _cancel(self, order: FakeOrder) -> None:
        now = self.clock()
        order.status, order.canceled_at, order.updated_at = "canceled", now, now
        self._emit("canceled", order)
        for leg in order.legs:
            if leg.is_open:
                leg.status, leg.canceled_at, leg.updated_at = "canceled", now, now
                self._emit("canceled", leg)

    def _emit(self, event: str, order: FakeOrder, **execution: Any) -> None:
        """One trade_updates event (Alpaca's "Websocket Streaming" example shape), to subscribers."""
        data = {
            "event": event,
            **execution,
            "timestamp": _ts(order.updated_at or order.created_at),
            "order": order.to_json(nested=False),
        }
        self.events.append(data)
        for subscriber in list(self.subscribers):
            subscriber(data)

    def _list_orders(self, args: Any) -> Response:
        status = args.get("status", "open")
        nested = args.get("nested") == "true"
        symbols = set(filter(None, (args.get("symbols") or "").split(",")))
        after = _parse_ts(args.get("after"))
        until = _parse_ts(args.get("until"))
        limit = min(int(args.get("limit") or 50), 500)
        candidates = list(self.orders.values()) if nested else list(self._all())
        chosen = []
        for order in sorted(candidates, key=lambda o: o.created_at):
            open_ = order.is_open or any(leg.is_open for leg in order.legs)
            if (status == "open" and not open_) or (status == "closed" and open_):
                continue
            if symbols and order.symbol not in symbols:
                continue
            if after is not None and order.created_at <= after:
                continue
            if until is not None and order.created_at > until:
                continue
            chosen.append(order)
        if args.get("direction", "desc") == "desc":
            chosen.reverse()
        return _json([o.to_json(nested=nested) for o in chosen[:limit]])

    def _all(self) -> Iterator[FakeOrder]:
        for order in list(self.orders.values()):
            yield order
            yield from order.legs

    def _by_id(self, order_id: str) -> FakeOrder | None:
        return next((o for o in self._all() if o.id == order_id), None)

    def _price(self, order: FakeOrder, price: Decimal | str | None) -> Decimal:
        if price is not None:
            return Decimal(str(price))
        if order.symbol in self.prices:
            return self.prices[order.symbol]
        raise ValueError(f"no price for {order.symbol}: call set_price first")

    # --- account and positions ---------------------------------------------------------------

    def _market_value(self) -> tuple[Decimal, Decimal]:
        long_value = short_value = Decimal(0)
        for symbol, (qty, avg) in self.positions.items():
            value = qty * self.prices.get(symbol, avg)
            if qty > 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def _buying_power(self) -> Decimal:
        return self.cash

    def _account(self) -> dict[str, Any]:
        long_value, short_value = self._market_value()
        equity = self.cash + long_value + short_value
        return {
            "id": ACCOUNT_ID,
            "account_number": ACCOUNT_NUMBER,
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": _num(self._buying_power()),
            "regt_buying_power": _num(self._buying_power()),
            "non_marginable_buying_power": _num(self._buying_power()),
            "options_buying_power": _num(self._buying_power()),
            "cash": _num(self.cash),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "portfolio_value": _num(equity),
            "pattern_day_trader": False,
            "trading_blocked": self.trading_blocked,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2026-01-05T14:30:00.000000Z",
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": True,
            "equity": _num(equity),
            "last_equity": _num(equity),
            "long_market_value": _num(long_value),
            "short_market_value": _num(short_value),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "options_approved_level": 0,
            "options_trading_level": 0,
        }

    def _position(self, symbol: str) -> dict[str, Any]:
        qty, avg = self.positions[symbol]
        price = self.prices.get(symbol, avg)
        crypto = "/" in symbol
        market_value = qty * price
        cost_basis = qty * avg
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)),
            "symbol": symbol.replace("/", "") if crypto else symbol,
            "exchange": "CRYPTO" if crypto else "NASDAQ",
            "asset_class": "crypto" if crypto else "us_equity",
            "asset_marginable": not crypto,
            "qty": _num(qty),
            "avg_entry_price": _num(avg),
            "side": "long" if qty > 0 else "short",
            "market_value": _num(market_value),
            "cost_basis": _num(cost_basis),
            "unrealized_pl": _num(market_value - cost_basis),
            "unrealized_plpc": "0",
            "unrealized_intraday_pl": _num(market_value - cost_basis),
            "unrealized_intraday_plpc": "0",
            "current_price": _num(price),
            "lastday_price": _num(price),
            "change_today": "0",
            "qty_available": _num(qty),
        }


def _dec(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _error(status: int, code: int, message: str) -> Response:
    return _json({"code": code, "message": message}, status)


def _fault_response(fault: _Fault) -> Response:
    if isinstance(fault.body, str):
        return Response(fault.body, status=fault.status, headers=fault.headers, mimetype="text/html")
    response = _json(fault.body, fault.status)
    response.headers.update(fault.headers)
    return response
