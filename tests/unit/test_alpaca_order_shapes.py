"""Which order shapes Alpaca takes (viewzenix.brokers.alpaca.check_order), refused before sending."""

from __future__ import annotations

from decimal import Decimal

import pytest

from viewzenix.brokers.alpaca import check_order
from viewzenix.domain.engine import OrderPurpose, OrderRequest
from viewzenix.domain.model import OrderSide, OrderType, TimeInForce

D = Decimal


def order(**fields) -> OrderRequest:
    values = {
        "client_order_id": "vzx-0123456789abcdef0123456789abcdef-en",
        "symbol": "AAPL",
        "side": OrderSide.BUY,
        "qty": D("10"),
        "order_type": OrderType.MARKET,
        "time_in_force": TimeInForce.DAY,
        "purpose": OrderPurpose.ENTRY,
        **fields,
    }
    return OrderRequest(**values)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"order_type": OrderType.LIMIT, "limit_price": D("100"), "extended_hours": True},
        {"order_type": OrderType.TRAILING_STOP, "trail_percent": D("2"), "time_in_force": TimeInForce.GTC},
        {"qty": D("0.5")},
        {"symbol": "BTC/USD", "qty": D("0.01"), "time_in_force": TimeInForce.GTC},
        {
            "symbol": "ETH/USD",
            "order_type": OrderType.STOP_LIMIT,
            "stop_price": D("1"),
            "limit_price": D("1"),
            "time_in_force": TimeInForce.IOC,
        },
        {"order_type": OrderType.LIMIT, "limit_price": D("100"), "time_in_force": TimeInForce.OPG},
    ],
)
def test_shapes_alpaca_takes(fields):
    assert check_order(order(**fields)) is None


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"symbol": "BTC/USD", "time_in_force": TimeInForce.DAY}, "crypto_time_in_force"),
        (
            {
                "symbol": "BTC/USD",
                "time_in_force": TimeInForce.GTC,
                "order_type": OrderType.STOP,
                "stop_price": D("1"),
            },
            "crypto_order_type",
        ),
        ({"qty": D("0.5"), "order_type": OrderType.LIMIT, "limit_price": D("1")}, "fractional_order"),
        ({"qty": D("0.5"), "time_in_force": TimeInForce.GTC}, "fractional_order"),
        ({"extended_hours": True}, "extended_hours_order"),
        (
            {
                "extended_hours": True,
                "order_type": OrderType.LIMIT,
                "limit_price": D("1"),
                "time_in_force": TimeInForce.GTC,
            },
            "extended_hours_order",
        ),
        (
            {"time_in_force": TimeInForce.CLS, "order_type": OrderType.STOP, "stop_price": D("1")},
            "auction_order_type",
        ),
        ({"qty": D("0")}, "invalid_quantity"),
    ],
)
def test_shapes_alpaca_refuses_are_named(fields, code):
    refused = check_order(order(**fields))
    assert refused is not None and refused[0] == code
    assert "Alpaca" in refused[1] or code == "invalid_quantity"
