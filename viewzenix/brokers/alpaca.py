"""The Alpaca adapter: the broker port on alpaca-py's ``TradingClient`` (one config = one account).

Paper (``https://paper-api.alpaca.markets``) unless the config's credentials say ``live``
(``https://api.alpaca.markets``); paper and live keys are separate. Alpaca's rules below are from
its docs ("Orders at Alpaca", "Working with /orders", "Trading API errors", "Rate limit") and
alpaca-py 0.44 (``alpaca/trading/requests.py``, ``alpaca/common/rest.py``).

Order shapes (the engine's ``OrderRequest`` → Alpaca), refused *before sending* with
``OrderShapeRefused`` (recorded DENIED) when Alpaca cannot take them:

- types market, limit, stop, stop_limit, trailing_stop (``trail_price`` xor ``trail_percent``);
  ``qty`` always (the engine sizes in shares; ``notional`` is never sent, so never both).
- crypto (a symbol with ``/``, e.g. ``BTC/USD``): time in force gtc or ioc only
  (``crypto_time_in_force``); market, limit, stop_limit only (``crypto_order_type``); no legs
  (``crypto_legs``: crypto orders are simple); ``extended_hours`` does not apply and is not sent.
- stocks with a fractional qty: market + day only (``fractional_order``), no legs.
- ``extended_hours``: limit + day only (``extended_hours_order``).
- opg / cls: market or limit only (``auction_order_type``).
- legs: a take-profit (limit) and a stop-loss (stop or stop_limit) go with their entry in one
  request, order class ``bracket`` (both) or ``oto`` (one); entry time in force day or gtc
  (``bracket_time_in_force``); entry not a trailing stop (``bracket_entry_type``). A trailing-stop
  stop-loss cannot be a bracket leg (``bracket_trailing_stop``): that leg is refused and the
  entry goes without it. A leg can only go with its entry (``leg_without_entry``).
  Alpaca gives legs ids of its own; we report them under our ids (``vzx-<signal>-tp``/``-sl``
  for the entry ``vzx-<signal>-en``), finding them in the entry's ``legs`` (``nested=true``).
- Refusals by Alpaca (403 insufficient buying power, 422 invalid order) come back as a
  REJECTED report with Alpaca's message, except 422 "client_order_id must be unique", which
  raises DuplicateOrder (the caller looks the order up: never a second order).

Transport:

- alpaca-py retries 429 and 504 three times by default, POSTs included (its RESTClient): a 504 may have
  placed the order. Its retries are switched off here (``_TradingClient``). A 429 (nothing was
  done) is retried here after the wait Alpaca names (``Retry-After``, else
  ``X-RateLimit-Reset``; else 1, 2, 4 … s), at most ``MAX_RATE_LIMIT_RETRIES`` times; every call
  first takes a slot of the account's budget (200 requests per rolling minute, ``RequestBudget``,
  per key id in this process). 5xx, timeouts (``REQUEST_TIMEOUT`` s) and network errors raise
  BrokerUnavailable: the job fails and is retried, and its retry looks the order up first.
- 401/403 on anything but an order refusal (wrong keys, paper keys on the live address) raise
  BrokerAuthFailed with Alpaca's message.

Fills: Alpaca's order carries ``filled_qty`` and ``filled_avg_price``, not its executions; the
ledger records each increase of ``filled_qty`` as one fill (``trade_id`` =
``<client_order_id>-q<cumulative qty>``, the price implied by the averages), so polling and the
trade_updates stream record the same fill under the same id. Commission 0 (Alpaca charges none
on stocks).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading import enums as alpaca_enums
from alpaca.trading.client import TradingClient
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from pydantic import ValidationError

from viewzenix.brokers.base import (
    BracketResult,
    BrokerError,
    BrokerName,
    BrokerOrder,
    BrokerUnavailable,
    DuplicateOrder,
    OrderNotCancelable,
    OrderNotFound,
    OrderShapeRefused,
)
from viewzenix.domain.engine import MAX_CLIENT_ORDER_ID_LENGTH, OrderPurpose
from viewzenix.domain.model import AccountState, OrderStatus, OrderType, PositionState, TimeInForce
from viewzenix.domain.symbols import canonical_symbol, is_crypto

if TYPE_CHECKING:
    from viewzenix.domain.engine import OrderRequest

__all__ = [
    "LIVE_URL",
    "PAPER_URL",
    "AlpacaBroker",
    "AlpacaCredentials",
    "BrokerAuthFailed",
    "RequestBudget",
    "check_order",
    "to_broker_order",
]

logger = logging.getLogger(__name__)

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
REQUESTS_PER_MINUTE = 200  # Alpaca: 200 requests per minute per account
REQUEST_TIMEOUT = 10.0  # seconds, connect and read
MAX_RATE_LIMIT_RETRIES = 5
MAX_RATE_LIMIT_WAIT = 60.0  # seconds
PAGE_SIZE = 500  # Alpaca: GET /v2/orders limit ≤ 500
DUPLICATE_CLIENT_ORDER_ID = "client_order_id must be unique"
INSUFFICIENT_BUYING_POWER = 40310000
_ENTRY_ID = re.compile(r"^(vzx-[0-9a-f]{32})-en$")
_LEG_ID = re.compile(r"^(vzx-[0-9a-f]{32})-(tp|sl)$")
_ZERO = Decimal(0)
T = TypeVar("T")


class BrokerAuthFailed(BrokerError):
    """Alpaca refused the API keys: check the key id and secret, and paper vs live."""


@dataclass(frozen=True)
class AlpacaCredentials:
    """One Alpaca account's API key id and secret; ``live`` False = paper.

    ``api_url`` overrides the address (the single-tenant seed's ALPACA_API_URL, a test fake).
    """

    key_id: str
    secret_key: str
    live: bool = False
    api_url: str | None = None

    @property
    def base_url(self) -> str:
        return (self.api_url or (LIVE_URL if self.live else PAPER_URL)).rstrip("/")

    def __repr__(self) -> str:  # never print the secret
        return f"AlpacaCredentials(key_id=…{self.key_id[-4:]}, live={self.live}, base_url={self.base_url})"


class RequestBudget:
    """At most ``limit`` requests per rolling ``period`` seconds, shared by this process's threads.

    ``acquire`` waits (``sleep``) until a slot is free. One budget per Alpaca account (key id):
    ``for_account``.
    """

    _accounts: dict[str, RequestBudget] = {}
    _accounts_lock = threading.Lock()
    default_limit = REQUESTS_PER_MINUTE  # ALPACA_REQUESTS_PER_MINUTE (viewzenix.runtime)

    def __init__(
        self,
        limit: int = REQUESTS_PER_MINUTE,
        period: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.period = period
        self.clock = clock
        self.sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    @classmethod
    def for_account(cls, key_id: str) -> RequestBudget:
        with cls._accounts_lock:
            budget = cls._accounts.get(key_id)
            if budget is None or budget.limit != cls.default_limit:
                budget = cls._accounts[key_id] = cls(cls.default_limit)
            return budget

    def acquire(self) -> float:
        """Take a slot, waiting first if the budget is spent; return the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self.clock()
                while self._sent and self._sent[0] <= now - self.period:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return waited
                pause = self._sent[0] + self.period - now
                self.sleep(pause)
                waited += pause


class _TradingClient(TradingClient):
    """alpaca-py's TradingClient with a request timeout and without its own retries.

    alpaca-py would resend a POST after a 504 (the order may exist) and wait a fixed 3 s on 429;
    ``AlpacaBroker`` handles both itself.
    """

    def __init__(self, credentials: AlpacaCredentials, timeout: float) -> None:
        super().__init__(
            api_key=credentials.key_id,
            secret_key=credentials.secret_key,
            paper=not credentials.live,
            url_override=credentials.base_url,
        )
        self._retry = 0  # alpaca.common.rest.RESTClient: attempts after the first
        self._timeout = timeout

    def _one_request(self, method: str, url: str, opts: dict, retry: int) -> dict:
        return super()._one_request(method, url, {**opts, "timeout": self._timeout}, retry)


# --- order shapes --------------------------------------------------------------------------


def _is_crypto(symbol: str) -> bool:
    return is_crypto(symbol)


def _fractional(qty: Decimal) -> bool:
    return qty != qty.to_integral_value()


def check_order(request: OrderRequest) -> tuple[str, str] | None:
    """Return (code, message) when Alpaca cannot take ``request`` as a simple order, else None.

    The rules are in this module's docstring.
    """
    if request.qty <= 0:
        return "invalid_quantity", f"qty {request.qty} is not positive"
    if len(request.client_order_id) > MAX_CLIENT_ORDER_ID_LENGTH:
        return "client_order_id_too_long", "Alpaca: client_order_id has at most 48 characters"
    order_type, tif = request.order_type, request.time_in_force
    if _is_crypto(request.symbol):
        if tif not in (TimeInForce.GTC, TimeInForce.IOC):
            return (
                "crypto_time_in_force",
                f"Alpaca takes crypto orders ({request.symbol}) with time in force gtc or ioc only, "
                f"not {tif}: set timeInForce to gtc",
            )
        if order_type not in (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT):
            return (
                "crypto_order_type",
                f"Alpaca takes crypto orders ({request.symbol}) as market, limit or stop_limit, "
                f"not {order_type}",
            )
        return None
    if _fractional(request.qty) and (order_type is not OrderType.MARKET or tif is not TimeInForce.DAY):
        return (
            "fractional_order",
            f"Alpaca takes fractional stock orders (qty {request.qty}) as market + day only, "
            f"not {order_type} + {tif}: use whole shares or a market day order",
        )
    if request.extended_hours and (order_type is not OrderType.LIMIT or tif is not TimeInForce.DAY):
        return (
            "extended_hours_order",
            f"Alpaca takes extended-hours orders as limit + day only, not {order_type} + {tif}",
        )
    if tif in (TimeInForce.OPG, TimeInForce.CLS) and order_type not in (OrderType.MARKET, OrderType.LIMIT):
        return (
            "auction_order_type",
            f"Alpaca takes {tif} (auction) orders as market or limit only, not {order_type}",
        )
    return None


def _check_bracket(entry: OrderRequest, legs: list[OrderRequest]) -> tuple[str, str] | None:
    """Why ``entry`` cannot carry legs at Alpaca, or None."""
    if _is_crypto(entry.symbol):
        return "crypto_legs", f"Alpaca takes crypto orders ({entry.symbol}) without legs (simple only)"
    if _fractional(entry.qty):
        return "fractional_order", f"Alpaca takes fractional orders (qty {entry.qty}) without legs"
    if entry.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
        return (
            "bracket_time_in_force",
            f"Alpaca takes an entry with take-profit/stop-loss legs with time in force day or gtc, "
            f"not {entry.time_in_force}",
        )
    if entry.order_type is OrderType.TRAILING_STOP:
        return "bracket_entry_type", "Alpaca takes no take-profit/stop-loss legs on a trailing_stop entry"
    if entry.extended_hours:
        return "extended_hours_order", "Alpaca takes no take-profit/stop-loss legs on an extended-hours order"
    return None


def _check_leg(leg: OrderRequest) -> tuple[str, str] | None:
    if leg.purpose is OrderPurpose.TAKE_PROFIT and leg.order_type is not OrderType.LIMIT:
        return "bracket_leg_type", f"Alpaca's take-profit leg is a limit order, not {leg.order_type}"
    if leg.purpose is OrderPurpose.STOP_LOSS and leg.order_type is OrderType.TRAILING_STOP:
        return (
            "bracket_trailing_stop",
            "Alpaca cannot attach a trailing-stop stop-loss to an entry (bracket legs are a limit "
            "take-profit and a stop or stop_limit stop-loss): use stopLoss.type stop",
        )
    if leg.purpose is OrderPurpose.STOP_LOSS and leg.order_type not in (OrderType.STOP, OrderType.STOP_LIMIT):
        return "bracket_leg_type", f"Alpaca's stop-loss leg is a stop or stop_limit, not {leg.order_type}"
    return None


def _alpaca_request(request: OrderRequest, legs: list[OrderRequest] = ()) -> Any:  # type: ignore[assignment]
    """Build alpaca-py's order request (pydantic) for a checked ``request`` and its legs."""
    fields: dict[str, Any] = {
        "symbol": canonical_symbol(request.symbol),
        "qty": float(request.qty),  # alpaca-py's field type; it serialises the number as given
        "side": alpaca_enums.OrderSide(request.side.value),
        "time_in_force": alpaca_enums.TimeInForce(request.time_in_force.value),
        "client_order_id": request.client_order_id,
    }
    if request.extended_hours and not _is_crypto(request.symbol):
        fields["extended_hours"] = True
    take_profit = next((leg for leg in legs if leg.purpose is OrderPurpose.TAKE_PROFIT), None)
    stop_loss = next((leg for leg in legs if leg.purpose is OrderPurpose.STOP_LOSS), None)
    if take_profit is not None:
        fields["take_profit"] = TakeProfitRequest(limit_price=float(take_profit.limit_price))
    if stop_loss is not None:
        fields["stop_loss"] = StopLossRequest(
            stop_price=float(stop_loss.stop_price),
            limit_price=None if stop_loss.limit_price is None else float(stop_loss.limit_price),
        )
    if take_profit is not None and stop_loss is not None:
        fields["order_class"] = alpaca_enums.OrderClass.BRACKET
    elif take_profit is not None or stop_loss is not None:
        fields["order_class"] = alpaca_enums.OrderClass.OTO
    order_type = request.order_type
    if order_type is OrderType.MARKET:
        return MarketOrderRequest(**fields)
    if order_type is OrderType.LIMIT:
        return LimitOrderRequest(**fields, limit_price=float(request.limit_price))
    if order_type is OrderType.STOP:
        return StopOrderRequest(**fields, stop_price=float(request.stop_price))
    if order_type is OrderType.STOP_LIMIT:
        return StopLimitOrderRequest(
            **fields, stop_price=float(request.stop_price), limit_price=float(request.limit_price)
        )
    trail = {"trail_price": float(request.trail_price)} if request.trail_price is not None else {}
    if request.trail_percent is not None:
        trail = {"trail_percent": float(request.trail_percent)}
    return TrailingStopOrderRequest(**fields, **trail)


QTY_PLACES = Decimal("0.000000001")  # Alpaca: quantities to 9 decimal places (fractional, crypto)


def plain_decimal(value: Decimal) -> str:
    """Render ``value`` as Alpaca's JSON takes a number: a plain decimal string (``"0.00005"``).

    Never a float: ``float(Decimal("0.00005"))`` serialises as ``5e-05``, and past about 15
    significant digits a float changes the digits. Alpaca's API reference types ``qty``,
    ``notional``, ``limit_price``, ``stop_price``, ``trail_price``, ``trail_percent`` as
    ``string <number>``.
    """
    text = f"{value.normalize():f}"
    return text


def wire_body(request: OrderRequest, legs: list[OrderRequest], model: Any) -> dict[str, Any]:
    """The POST /v2/orders body: alpaca-py's checked fields, numbers as plain decimal strings.

    The quantity is cut to Alpaca's 9 decimal places (down, never more than asked).
    """
    body = model.to_request_fields()
    body["qty"] = plain_decimal(request.qty.quantize(QTY_PLACES, rounding=ROUND_DOWN))
    for name in ("limit_price", "stop_price", "trail_price", "trail_percent"):
        value = getattr(request, name, None)
        if value is not None and name in body:
            body[name] = plain_decimal(value)
    take_profit = next((leg for leg in legs if leg.purpose is OrderPurpose.TAKE_PROFIT), None)
    stop_loss = next((leg for leg in legs if leg.purpose is OrderPurpose.STOP_LOSS), None)
    if take_profit is not None and "take_profit" in body:
        body["take_profit"]["limit_price"] = plain_decimal(take_profit.limit_price)
    if stop_loss is not None and "stop_loss" in body:
        body["stop_loss"]["stop_price"] = plain_decimal(stop_loss.stop_price)
        if stop_loss.limit_price is not None:
            body["stop_loss"]["limit_price"] = plain_decimal(stop_loss.limit_price)
    return body


# --- Alpaca's order → our report -----------------------------------------------------------

_STATUS = {
    "pending_new": OrderStatus.SUBMITTED,
    "accepted": OrderStatus.SUBMITTED,
    "accepted_for_bidding": OrderStatus.SUBMITTED,
    "pending_review": OrderStatus.SUBMITTED,
    "suspended": OrderStatus.SUBMITTED,
    "held": OrderStatus.HELD,
    "new": OrderStatus.ACCEPTED,
    "done_for_day": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_OPEN_WORKING = (OrderStatus.ACCEPTED, OrderStatus.SUBMITTED)


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def _value(enum_or_str: Any) -> str | None:
    if enum_or_str is None:
        return None
    return getattr(enum_or_str, "value", enum_or_str)


def to_broker_order(
    order: AlpacaOrder, *, client_order_id: str | None = None, parent_client_order_id: str | None = None
) -> BrokerOrder:
    """Map one Alpaca order (without its legs) to our report, under ``client_order_id`` if given.

    Status: Alpaca ``pending_new``/``accepted`` → SUBMITTED (not yet working), ``new`` →
    ACCEPTED, ``held`` → HELD, ``replaced`` → CANCELED, a working status with a partial fill
    → PARTIALLY_FILLED, ``calculated`` with the whole qty → FILLED (see ``_STATUS``).
    """
    raw_status = _value(order.status) or ""
    status = _STATUS.get(raw_status, OrderStatus.ACCEPTED)
    qty = _dec(order.qty) or _ZERO
    filled_qty = _dec(order.filled_qty) or _ZERO
    if status in _OPEN_WORKING and filled_qty > 0:
        status = OrderStatus.PARTIALLY_FILLED
    if raw_status == "calculated" and qty and filled_qty >= qty:
        status = OrderStatus.FILLED
    filled_avg_price = _dec(order.filled_avg_price) if filled_qty > 0 else None
    code = message = None
    if status is OrderStatus.CANCELED:
        code, message = ("replaced", "replaced at Alpaca") if raw_status == "replaced" else ("canceled", None)
    elif status is OrderStatus.EXPIRED:
        code, message = "expired", f"expired at Alpaca ({_value(order.time_in_force)})"
    elif status is OrderStatus.REJECTED:
        code, message = "rejected_by_alpaca", "rejected by Alpaca"
    order_type = _value(order.type or order.order_type) or "market"
    return BrokerOrder(
        client_order_id=client_order_id or order.client_order_id,
        broker_order_id=str(order.id),
        status=status,
        symbol=order.symbol or "",
        side=_value(order.side) or "",
        qty=qty,
        filled_qty=filled_qty,
        filled_avg_price=filled_avg_price,
        status_code=code,
        status_message=message,
        submitted_at=order.submitted_at,
        filled_at=order.filled_at,
        canceled_at=order.canceled_at or order.expired_at or order.failed_at,
        stop_price=_dec(order.stop_price),
        parent_client_order_id=parent_client_order_id,
        fills=(),
        order_type=order_type,
        time_in_force=_value(order.time_in_force) or "day",
        limit_price=_dec(order.limit_price),
    )


def _leg_id(parent_client_order_id: str, leg: AlpacaOrder) -> str:
    """Our client_order_id of an Alpaca leg: ``-tp`` (limit) or ``-sl`` of our entry's id."""
    match = _ENTRY_ID.match(parent_client_order_id)
    if match is None:
        return leg.client_order_id  # not an order of ours: keep Alpaca's id
    kind = _value(leg.type or leg.order_type)
    return f"{match.group(1)}-{'tp' if kind == 'limit' else 'sl'}"


def _flatten(order: AlpacaOrder) -> list[BrokerOrder]:
    """The order's report, then one per leg under our leg ids."""
    reports = [to_broker_order(order)]
    for leg in order.legs or ():
        reports.append(
            to_broker_order(
                leg,
                client_order_id=_leg_id(order.client_order_id, leg),
                parent_client_order_id=order.client_order_id,
            )
        )
    return reports


# --- the adapter ---------------------------------------------------------------------------


class AlpacaBroker:
    """Trade one Alpaca account (paper by default) through the broker port.

    Implements ``Broker`` and ``NativeBrackets``. ``sleep`` waits on 429 (tests record the
    waits instead); ``budget`` is the account's request budget (default: the process-wide one
    of the key id). Raises, besides the port's errors, BrokerAuthFailed.
    """

    name = BrokerName.ALPACA
    reads_lag = True  # Alpaca: a look-up right after a write may not show it (FACTS.md)

    def __init__(
        self,
        credentials: AlpacaCredentials,
        *,
        timeout: float = REQUEST_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        budget: RequestBudget | None = None,
        config_id: Any = None,
    ) -> None:
        self.credentials = credentials
        self.client = _TradingClient(credentials, timeout)
        self.sleep = sleep
        self.budget = budget or RequestBudget.for_account(credentials.key_id)
        self.config_id = config_id

    # --- Broker ------------------------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        """Submit one simple order (POST /v2/orders); return Alpaca's answer as our report.

        Raises OrderShapeRefused before sending (see the module docstring), DuplicateOrder,
        BrokerUnavailable, BrokerAuthFailed. Alpaca's own refusals (403, 422) are a REJECTED
        report with Alpaca's message.
        """
        if request.parent_client_order_id is not None:
            raise OrderShapeRefused(
                "leg_without_entry",
                "Alpaca attaches a take-profit/stop-loss leg only to its entry, in the same "
                "request; this leg's entry was sent without it",
                client_order_id=request.client_order_id,
            )
        problem = check_order(request)
        if problem is not None:
            raise OrderShapeRefused(*problem, client_order_id=request.client_order_id)
        return self._post(request, _alpaca_request(request))[0]

    def submit_with_legs(self, entry: OrderRequest, legs: list[OrderRequest]) -> BracketResult:
        """Submit an entry with its take-profit/stop-loss legs in one request (bracket or OTO).

        Legs Alpaca cannot attach are refused (``BracketResult.refused``) and the entry goes
        without them. Raises OrderShapeRefused for the entry itself (nothing sent),
        DuplicateOrder, BrokerUnavailable, BrokerAuthFailed.
        """
        problem = check_order(entry)
        if problem is not None:
            raise OrderShapeRefused(*problem, client_order_id=entry.client_order_id)
        refused: dict[str, tuple[str, str]] = {}
        bracket_problem = _check_bracket(entry, legs) if legs else None
        sendable = []
        for leg in legs:
            leg_problem = bracket_problem or _check_leg(leg)
            if leg_problem is not None:
                refused[leg.client_order_id] = leg_problem
            else:
                sendable.append(leg)
        reports = self._post(entry, _alpaca_request(entry, sendable), sendable)
        return BracketResult(reports=tuple(reports), refused=refused)

    def cancel_order(self, client_order_id: str) -> BrokerOrder:
        """Cancel an open order (DELETE /v2/orders/{id}; Alpaca cancels a bracket's legs with it).

        Returns the order as Alpaca reports it after the request (``pending_cancel`` is still
        ACCEPTED; the sync job records the final ``canceled``). Canceling a canceled order
        returns it unchanged. Raises OrderNotFound, OrderNotCancelable, BrokerUnavailable.
        """
        found = self.get_order_by_client_order_id(client_order_id)
        if found is None:
            raise OrderNotFound(client_order_id=client_order_id)
        if found.status is OrderStatus.CANCELED:
            return found
        if found.status.is_terminal:
            raise OrderNotCancelable(
                f"order {client_order_id} is {found.status} at Alpaca and cannot be canceled",
                client_order_id=client_order_id,
            )
        try:
            self._call(lambda: self.client.cancel_order_by_id(found.broker_order_id))
        except APIError as error:
            status, message = _error_parts(error)
            if status == 404:
                raise OrderNotFound(message, client_order_id=client_order_id) from error
            if status == 422:
                raise OrderNotCancelable(message, client_order_id=client_order_id) from error
            raise self._unexpected(error) from error
        after = self.get_order_by_client_order_id(client_order_id)
        return after or found

    def get_order_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        """Return the order with this client_order_id, or None. Raises BrokerUnavailable.

        Alpaca: ``GET /v2/orders:by_client_order_id``. A leg of ours (``…-tp``/``…-sl``) is found
        in its entry's legs (``GET /v2/orders/{id}?nested=true``).
        """
        leg = _LEG_ID.match(client_order_id)
        if leg is None:
            order = self._get_by_client_id(client_order_id)
            return None if order is None else to_broker_order(order)
        entry = self._get_by_client_id(f"{leg.group(1)}-en")
        if entry is None:
            return None
        if entry.legs is None and entry.order_class not in (None, alpaca_enums.OrderClass.SIMPLE):
            entry = self._get_nested(entry)
        for report in _flatten(entry)[1:]:
            if report.client_order_id == client_order_id:
                return report
        return None

    def list_open_orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        """Return the open orders (legs included, under our ids), of one symbol or all, oldest first.

        Alpaca: ``GET /v2/orders?status=open&nested=true&direction=asc``. Raises BrokerUnavailable.
        """
        query = GetOrdersRequest(
            status=alpaca_enums.QueryOrderStatus.OPEN,
            nested=True,
            direction="asc",
            limit=PAGE_SIZE,
            symbols=[symbol] if symbol else None,
        )
        orders = self._list(query)
        return [r for o in orders for r in _flatten(o) if r.status.is_open]

    def list_orders(self, after: datetime | None = None) -> list[BrokerOrder]:
        """Return every order submitted after ``after`` (UTC), legs included, oldest first.

        Alpaca: ``GET /v2/orders?status=all&nested=true&direction=asc&after=…``, paged by
        ``after``, which is exclusive: the next page starts one microsecond before the last
        order's ``submitted_at`` (orders already seen are skipped by id), so orders sharing the
        page's last timestamp are never skipped. Raises BrokerUnavailable.
        """
        reports: list[BrokerOrder] = []
        seen: set[str] = set()
        cursor = after
        while True:
            query = GetOrdersRequest(
                status=alpaca_enums.QueryOrderStatus.ALL,
                nested=True,
                direction="asc",
                limit=PAGE_SIZE,
                after=cursor,
            )
            page = self._list(query)
            new = [order for order in page if str(order.id) not in seen]
            for order in new:
                seen.add(str(order.id))
                reports.extend(_flatten(order))
            if len(page) < PAGE_SIZE or not new:  # not new: a whole page shares one microsecond
                return reports
            cursor = page[-1].submitted_at - timedelta(microseconds=1)

    def get_positions(self) -> list[PositionState]:
        """Return the open positions: signed qty (short < 0), average entry price. GET /v2/positions."""
        positions = self._call(self.client.get_all_positions)
        out = []
        for p in positions:
            symbol = _crypto_symbol(p.symbol) if _value(p.asset_class) == "crypto" else p.symbol
            qty = abs(Decimal(str(p.qty)))
            if _value(p.side) == "short":
                qty = -qty
            entry_price = Decimal(str(p.avg_entry_price))
            out.append(PositionState(symbol=symbol, qty=qty, avg_entry_price=entry_price))
        return out

    def get_account(self) -> AccountState:
        """Return the account's cash and equity (USD). GET /v2/account."""
        account = self._call(self.client.get_account)
        return AccountState(cash=_dec(account.cash) or _ZERO, equity=_dec(account.equity) or _ZERO)

    def check_connection(self) -> dict[str, Any]:
        """Read the account once; return what a user needs to see that the keys work.

        ``{account_number, status, currency, cash, equity, buying_power, trading_blocked,
        live}``. Raises BrokerAuthFailed (wrong keys, or paper keys on the live address or the
        reverse), BrokerUnavailable.
        """
        account = self._call(self.client.get_account)
        return {
            "account_number": account.account_number,
            "status": _value(account.status),
            "currency": account.currency,
            "cash": _dec(account.cash),
            "equity": _dec(account.equity),
            "buying_power": _dec(account.buying_power),
            "trading_blocked": bool(account.trading_blocked or account.account_blocked),
            "live": self.credentials.live,
        }

    # --- calls -------------------------------------------------------------------------------

    def _post(
        self,
        request: OrderRequest,
        alpaca_request: Any,
        legs: list[OrderRequest] = (),  # type: ignore[assignment]
    ) -> list[BrokerOrder]:
        """POST the order; map a refusal to a REJECTED report and a duplicate id to DuplicateOrder.

        alpaca-py's request model checks the shape; the body sent carries quantities and prices
        as plain decimal strings (``wire_body``), never floats.
        """
        extra = {
            "action": "alpaca_submit",
            "client_order_id": request.client_order_id,
            "config_id": self.config_id,
        }
        try:
            body = wire_body(request, legs, alpaca_request)
            order = self._call(lambda: AlpacaOrder(**self.client.post("/orders", body)))
        except APIError as error:
            status, message = _error_parts(error)
            if status == 422 and DUPLICATE_CLIENT_ORDER_ID in message.lower():
                raise DuplicateOrder(client_order_id=request.client_order_id) from error
            if status in (403, 422) and not _auth_problem(status, message):
                logger.info("alpaca refused order %s: %s", request.client_order_id, message, extra=extra)
                return [_rejected(request, message, _error_code(error))]
            raise self._unexpected(error) from error
        logger.info("alpaca order %s: %s", request.client_order_id, _value(order.status), extra=extra)
        return _flatten(order)

    def _get_by_client_id(self, client_order_id: str) -> AlpacaOrder | None:
        try:
            return self._call(lambda: self.client.get_order_by_client_id(client_order_id))
        except APIError as error:
            if _error_parts(error)[0] == 404:
                return None
            raise self._unexpected(error) from error

    def _get_nested(self, order: AlpacaOrder) -> AlpacaOrder:
        try:
            return self._call(lambda: self.client.get_order_by_id(order.id, GetOrderByIdRequest(nested=True)))
        except APIError as error:
            raise self._unexpected(error) from error

    def _list(self, query: GetOrdersRequest) -> list[AlpacaOrder]:
        try:
            return self._call(lambda: self.client.get_orders(query))
        except APIError as error:
            raise self._unexpected(error) from error

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one request within the account's budget; wait and retry on 429.

        Raises APIError for other HTTP errors below 500 (the caller maps them),
        BrokerUnavailable for 5xx, timeouts, network errors and unreadable answers,
        BrokerAuthFailed for 401.
        """
        for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
            self.budget.acquire()
            try:
                return fn()
            except APIError as error:
                status, message = _error_parts(error)
                if status == 429 and attempt < MAX_RATE_LIMIT_RETRIES:
                    wait = _rate_limit_wait(error, attempt)
                    logger.warning(
                        "alpaca rate limit: waiting %.1f s before retrying",
                        wait,
                        extra={"action": "alpaca_rate_limited", "config_id": self.config_id},
                    )
                    self.sleep(wait)
                    continue
                if status == 429:
                    message = f"Alpaca rate limit still exceeded after {attempt} retries"
                    raise BrokerUnavailable(message) from error
                if status is None or status >= 500:
                    raise BrokerUnavailable(f"Alpaca answered {status}: {message}") from error
                if status == 401:
                    raise BrokerAuthFailed(f"Alpaca refused the API keys ({status}): {message}") from error
                raise
            except requests.exceptions.RequestException as error:
                message = f"Alpaca could not be reached: {type(error).__name__}: {error}"
                raise BrokerUnavailable(message) from error
            except (ValidationError, ValueError) as error:
                raise BrokerUnavailable(f"Alpaca's answer could not be read: {error}") from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _unexpected(self, error: APIError) -> BrokerError:
        status, message = _error_parts(error)
        if _auth_problem(status, message):
            return BrokerAuthFailed(f"Alpaca refused the API keys ({status}): {message}")
        return BrokerError(f"Alpaca answered {status}: {message}")


def _crypto_symbol(symbol: str) -> str:
    """Alpaca reports crypto positions as ``BTCUSD``; orders (and our books) say ``BTC/USD``."""
    if "/" in symbol:
        return symbol
    canonical = canonical_symbol(symbol)
    if "/" in canonical:
        return canonical
    for quote in ("USDT", "USDC", "USD", "BTC"):  # a pair whose base we do not list
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}/{quote}"
    return symbol


def _error_parts(error: APIError) -> tuple[int | None, str]:
    """(HTTP status, Alpaca's message) of an APIError; the message falls back to the raw body."""
    status = error.status_code
    text = str(error)
    try:
        message = json.loads(text).get("message") or text
    except (ValueError, AttributeError):
        message = text
    return status, str(message)


def _error_code(error: APIError) -> int | None:
    try:
        return int(json.loads(str(error)).get("code"))
    except (ValueError, TypeError, AttributeError):
        return None


def _auth_problem(status: int | None, message: str) -> bool:
    """True for 401, and a 403 that is about the keys rather than the order."""
    text = message.lower()
    return status == 401 or (status == 403 and ("forbidden" == text.strip() or "not authorized" in text))


def _rejected(request: OrderRequest, message: str, code: int | None) -> BrokerOrder:
    status_code = "insufficient_buying_power" if code == INSUFFICIENT_BUYING_POWER else "rejected_by_alpaca"
    if "buying power" in message.lower():
        status_code = "insufficient_buying_power"
    return BrokerOrder(
        client_order_id=request.client_order_id,
        broker_order_id=None,
        status=OrderStatus.REJECTED,
        symbol=request.symbol,
        side=request.side.value,
        qty=request.qty,
        status_code=status_code,
        status_message=f"Alpaca: {message}",
        order_type=request.order_type.value,
        time_in_force=request.time_in_force.value,
        limit_price=request.limit_price,
    )


def _rate_limit_wait(error: APIError, attempt: int) -> float:
    """Seconds to wait after a 429: Retry-After, else X-RateLimit-Reset, else 1, 2, 4 … (≤ 60)."""
    response = error.response
    headers = response.headers if response is not None else {}
    wait: float | None = None
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            wait = float(retry_after)
        except ValueError:
            try:
                wait = (parsedate_to_datetime(retry_after) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                wait = None
    reset = headers.get("X-RateLimit-Reset")
    if wait is None and reset:
        try:
            wait = float(reset) - time.time()
        except ValueError:
            wait = None
    if wait is None:
        wait = float(2**attempt)
    return min(max(wait, 0.0), MAX_RATE_LIMIT_WAIT)
