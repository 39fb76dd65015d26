"""The main job end to end: a TradingView alert over HTTP becomes a filled paper order.

Alert → intake (stored + job deferred) → worker (procrastinate) → engine → simulated broker →
orders, fills, positions and the paper account, read back through the REST API.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

TEMPLATE = json.dumps(
    {
        "ticker": "{{ticker}}",
        "action": "{{strategy.order.action}}",
        "sentiment": "{{strategy.market_position}}",
        "quantity": "{{strategy.order.contracts}}",
        "price": "{{close}}",
        "time": "{{timenow}}",
        "interval": "{{interval}}",
    }
)


def render(**values: str) -> str:
    body = TEMPLATE
    for key, value in values.items():
        body = body.replace("{{" + key + "}}", value)
    return body


def alert(action: str, position: str, contracts: str, close: str) -> str:
    return render(
        **{
            "ticker": "GOOG",
            "strategy.order.action": action,
            "strategy.market_position": position,
            "strategy.order.contracts": contracts,
            "close": close,
            "timenow": "2013-03-01T20:00:00Z",
            "interval": "1D",
        }
    )


@pytest.fixture()
def config(client, auth_headers):
    data = client.post(
        "/api/webhook-configs",
        json={"name": "e2e", "commission_rate": "0.002", "starting_cash": "100000"},
        headers=auth_headers,
    ).json
    return {**data, "headers": auth_headers, "url": f"/webhooks/{data['id']}/{data['token']}"}


def post(client, config, body):
    response = client.post(config["url"], data=body, content_type="application/json")
    assert response.status_code == 200, response.json
    return response.json["signal_id"]


def test_strategy_long_then_reversal_to_short_then_exit(client, config, jobs):
    headers = config["headers"]
    first = post(client, config, alert("buy", "long", "10", "100.00"))
    jobs()
    signal = client.get(f"/api/signals/{first}", headers=headers).json
    assert signal["status"] == "executed"
    assert [(o["side"], o["qty"], o["status"]) for o in signal["orders"]] == [("buy", "10", "filled")]

    reversal = post(client, config, alert("sell", "short", "20", "110.00"))
    jobs()
    orders = client.get(f"/api/signals/{reversal}", headers=headers).json["orders"]
    assert sorted((o["purpose"], o["side"], o["qty"], o["status"]) for o in orders) == [
        ("entry", "sell", "10", "filled"),
        ("exit", "sell", "10", "filled"),
    ]
    positions = client.get(f"/api/positions?config_id={config['id']}", headers=headers).json
    assert [(p["symbol"], p["side"], Decimal(p["qty"])) for p in positions] == [
        ("GOOG", "short", Decimal(-10))
    ]
    assert Decimal(positions[0]["realized_pnl"]) == Decimal("100.00")  # (110 − 100) × 10

    post(client, config, alert("exit", "flat", "10", "105.00"))
    jobs()
    account = client.get(f"/api/account?config_id={config['id']}", headers=headers).json
    # Realised: +100 on the long, +50 on the short. Commission 0.2 % on each of 4 fills:
    # 0.002 × (1000 + 1100 + 1100 + 1050) = 8.50.
    assert Decimal(account["realized_pnl"]) == Decimal("150.00")
    assert Decimal(account["equity"]) == Decimal("100141.50")
    assert Decimal(account["cash"]) == Decimal("100141.50")

    order = client.get(f"/api/orders?config_id={config['id']}&page_size=50", headers=headers).json[0]
    detail = client.get(f"/api/orders/{order['id']}", headers=headers).json
    assert [e["event_type"] for e in detail["events"]][-1] == "OrderFilled"
    assert len(detail["fills"]) == 1


def test_refused_by_risk_rule_is_a_denied_order_with_reason(client, config, jobs):
    headers = config["headers"]
    client.patch(f"/api/webhook-configs/{config['id']}", json={"allowed_symbols": ["AAPL"]}, headers=headers)
    signal_id = post(client, config, alert("buy", "long", "10", "100.00"))
    jobs()
    signal = client.get(f"/api/signals/{signal_id}", headers=headers).json
    assert signal["status"] == "denied"
    assert [(o["status"], o["status_code"]) for o in signal["orders"]] == [("denied", "symbol_not_allowed")]


def test_jobs_of_one_symbol_run_one_at_a_time_in_arrival_order(client, config, jobs):
    """With 4 concurrent worker slots, alternating buy/sell alerts still execute in order:
    out of order, a sell-to-flat would find no position and be ignored."""
    prices = ["100", "101", "102", "103", "104", "105", "106", "107"]
    for i, price in enumerate(prices):
        buy = i % 2 == 0
        body = {
            "ticker": "GOOG",
            "action": "buy" if buy else "sell",
            "sentiment": "long" if buy else "flat",
            "quantity": "5",
            "price": price,
        }
        post(client, config, json.dumps(body))
    jobs(concurrency=4)
    orders = client.get(f"/api/orders?config_id={config['id']}&page_size=50", headers=config["headers"]).json
    orders.sort(key=lambda o: o["created_at"])
    assert [(o["side"], o["reference_price"], o["status"]) for o in orders] == [
        ("buy" if i % 2 == 0 else "sell", price, "filled") for i, price in enumerate(prices)
    ]
    positions = client.get(f"/api/positions?config_id={config['id']}", headers=config["headers"]).json
    assert positions == []  # flat
