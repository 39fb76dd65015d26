"""Contract: every answer and stream event of the FAKE Alpaca API parses with alpaca-py's own models.

The fake (``tests/fakes/alpaca_api.py``) stands in for Alpaca in every other test; if its JSON
drifted from what alpaca-py reads, those tests would prove nothing. Each endpoint is called over
HTTP with plain ``requests`` and its body validated with alpaca-py's pydantic models (``Order``,
``TradeAccount``, ``Position``) and its error bodies with ``APIError``'s ``code``/``message``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderClass, OrderStatus, TradeEvent
from alpaca.trading.models import Order, Position, TradeAccount, TradeUpdate
from fakes.alpaca_api import KEY_ID, SECRET_KEY, FakeAlpacaApi
from pydantic import TypeAdapter

HEADERS = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET_KEY}


@pytest.fixture()
def fake():
    api = FakeAlpacaApi()
    api.set_price("AAPL", "190.50")
    api.set_price("BTC/USD", "65000")
    with api.running():
        yield api


def call(fake: FakeAlpacaApi, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{fake.url}/v2{path}", headers=HEADERS, timeout=5, **kwargs)


def post(fake: FakeAlpacaApi, **body) -> requests.Response:
    return call(fake, "POST", "/orders", json=body)


def api_error(response: requests.Response) -> APIError:
    try:
        response.raise_for_status()
    except requests.HTTPError as http_error:
        return APIError(response.text, http_error)
    raise AssertionError(f"expected an error, got {response.status_code}")


def test_every_order_answer_parses_as_alpaca_py_orders(fake):
    filled = post(
        fake,
        symbol="AAPL",
        qty="10",
        side="buy",
        type="market",
        time_in_force="day",
        client_order_id="c-market",
    )
    resting = post(
        fake,
        symbol="AAPL",
        qty="5",
        side="sell",
        type="limit",
        limit_price="250",
        time_in_force="gtc",
        client_order_id="c-limit",
    )
    bracket = post(
        fake,
        symbol="AAPL",
        qty="3",
        side="buy",
        type="limit",
        limit_price="100",
        time_in_force="day",
        order_class="bracket",
        client_order_id="c-bracket",
        take_profit={"limit_price": "120"},
        stop_loss={"stop_price": "90", "limit_price": "89"},
    )
    crypto = post(
        fake,
        symbol="BTC/USD",
        qty="0.01",
        side="buy",
        type="market",
        time_in_force="gtc",
        client_order_id="c-crypto",
    )
    trailing = post(
        fake,
        symbol="AAPL",
        qty="1",
        side="sell",
        type="trailing_stop",
        trail_percent="2",
        time_in_force="day",
        client_order_id="c-trail",
    )

    orders = [Order(**r.json()) for r in (filled, resting, bracket, crypto, trailing)]

    assert [o.status for o in orders] == [
        OrderStatus.FILLED,
        OrderStatus.NEW,
        OrderStatus.NEW,
        OrderStatus.FILLED,
        OrderStatus.NEW,
    ]
    assert orders[0].filled_avg_price == "190.5" and orders[0].filled_qty == "10"
    assert orders[2].order_class is OrderClass.BRACKET
    assert [leg.status for leg in orders[2].legs] == [OrderStatus.HELD, OrderStatus.HELD]
    assert [leg.type.value for leg in orders[2].legs] == ["limit", "stop_limit"]
    assert orders[3].symbol == "BTC/USD" and orders[3].qty == "0.01"

    listed = TypeAdapter(list[Order]).validate_python(
        call(fake, "GET", "/orders", params={"status": "all", "nested": "true", "direction": "asc"}).json()
    )
    assert [o.client_order_id for o in listed] == ["c-market", "c-limit", "c-bracket", "c-crypto", "c-trail"]
    open_flat = TypeAdapter(list[Order]).validate_python(call(fake, "GET", "/orders").json())
    assert {o.client_order_id for o in open_flat} >= {"c-limit", "c-bracket", "c-trail"}
    by_cid = Order(
        **call(fake, "GET", "/orders:by_client_order_id", params={"client_order_id": "c-bracket"}).json()
    )
    by_id = Order(**call(fake, "GET", f"/orders/{by_cid.id}", params={"nested": "true"}).json())
    assert by_id.legs is not None and len(by_id.legs) == 2
    assert call(fake, "DELETE", f"/orders/{by_cid.id}").status_code == 204
    canceled = Order(**call(fake, "GET", f"/orders/{by_cid.id}", params={"nested": "true"}).json())
    assert canceled.status is OrderStatus.CANCELED
    assert {leg.status for leg in canceled.legs} == {OrderStatus.CANCELED}


def test_account_and_positions_parse_as_alpaca_py_models(fake):
    post(fake, symbol="AAPL", qty="10", side="buy", type="market", time_in_force="day")
    post(fake, symbol="BTC/USD", qty="0.5", side="buy", type="market", time_in_force="gtc")
    fake.set_price("AAPL", "200")

    account = TradeAccount(**call(fake, "GET", "/account").json())
    positions = TypeAdapter(list[Position]).validate_python(call(fake, "GET", "/positions").json())

    assert account.account_number == "PA3FAKE00001"
    assert Decimal(account.cash) == Decimal("100000") - Decimal("1905") - Decimal("32500")
    assert Decimal(account.equity) == Decimal(account.cash) + Decimal("2000") + Decimal("32500")
    assert [(p.symbol, p.qty, p.side.value) for p in positions] == [
        ("AAPL", "10", "long"),
        ("BTCUSD", "0.5", "long"),
    ]


def test_error_bodies_carry_alpacas_code_and_message(fake):
    post(fake, symbol="AAPL", qty="1", side="buy", type="market", time_in_force="day", client_order_id="dup")
    duplicate = post(
        fake, symbol="AAPL", qty="1", side="buy", type="market", time_in_force="day", client_order_id="dup"
    )
    poor = post(fake, symbol="AAPL", qty="100000", side="buy", type="market", time_in_force="day")
    missing = call(fake, "GET", "/orders:by_client_order_id", params={"client_order_id": "nope"})
    unauthorized = requests.get(f"{fake.url}/v2/account", headers={"APCA-API-KEY-ID": "x"}, timeout=5)
    fake.fail_next(429, "rate limit exceeded", headers={"Retry-After": "1"})
    limited = call(fake, "GET", "/account")

    for response, status, code, message in [
        (duplicate, 422, 40010001, "client_order_id must be unique"),
        (poor, 403, 40310000, "insufficient buying power"),
        (missing, 404, 40410000, "order not found"),
        (unauthorized, 401, 40110000, "request is not authorized"),
        (limited, 429, 42900000, "rate limit exceeded"),
    ]:
        error = api_error(response)
        assert (error.status_code, error.code, error.message) == (status, code, message)
    assert limited.headers["Retry-After"] == "1"


def test_every_trade_updates_event_of_the_fake_parses_as_alpaca_py_trade_updates(fake):
    fake.auto_fill = False
    limit = {"symbol": "AAPL", "side": "buy", "type": "limit", "time_in_force": "day", "limit_price": "180"}
    post(fake, qty="10", client_order_id="parts", **limit)
    post(fake, qty="1", client_order_id="gone", **limit)
    post(fake, qty="1", client_order_id="late", **limit)
    post(fake, qty="1", client_order_id="no", **limit)
    bracket = {"take_profit": {"limit_price": "200"}, "stop_loss": {"stop_price": "170"}}
    post(fake, qty="2", client_order_id="bracket", order_class="bracket", **limit, **bracket)
    fake.fill("parts", "4", "180")
    fake.fill("parts")
    fake.cancel("gone")
    fake.expire("late")
    fake.reject("no")
    fake.fill("bracket")

    updates = [TradeUpdate(**data) for data in fake.events]

    assert [u.event for u in updates] == [
        TradeEvent.ACCEPTED,  # not yet routed: the fake without auto_fill
        TradeEvent.ACCEPTED,
        TradeEvent.ACCEPTED,
        TradeEvent.ACCEPTED,
        TradeEvent.ACCEPTED,
        TradeEvent.PARTIAL_FILL,
        TradeEvent.FILL,
        TradeEvent.CANCELED,
        TradeEvent.EXPIRED,
        TradeEvent.REJECTED,
        TradeEvent.FILL,
        TradeEvent.NEW,  # the bracket's legs, once their entry filled
        TradeEvent.NEW,
    ]
    partial = updates[5]
    assert (partial.qty, partial.price, partial.position_qty) == (4.0, 180.0, 4.0)
    assert partial.execution_id is not None and partial.order.filled_qty == "4"
    assert partial.order.status == OrderStatus.PARTIALLY_FILLED
