"""A config's market-data settings through ``/api/webhook-configs``, and settings that cannot trade."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.db


def create(client, headers, **fields):
    return client.post("/api/webhook-configs", json={"name": "md", **fields}, headers=headers)


def test_a_new_config_takes_bars_from_tradingview_with_a_cash_account(client, auth_headers):
    data = create(client, auth_headers).json

    assert data["market_data_source"] == "tradingview"
    assert data["market_data_symbols"] == {}
    assert (data["margin_multiplier"], data["bracket_conflict"], data["max_quote_age_seconds"]) == (
        "1",
        "stop_first",
        None,
    )


def test_the_source_and_its_symbol_map_are_saved(client, auth_headers):
    data = create(
        client,
        auth_headers,
        market_data_source="ccxt:kraken",
        market_data_symbols={"BTCUSD": "BTC/USD"},
        max_quote_age_seconds=30,
        margin_multiplier="2",
        bracket_conflict="target_first",
    ).json

    again = client.get(f"/api/webhook-configs/{data['id']}", headers=auth_headers).json
    assert (again["market_data_source"], again["market_data_symbols"]) == (
        "ccxt:kraken",
        {"BTCUSD": "BTC/USD"},
    )
    assert (again["max_quote_age_seconds"], again["margin_multiplier"], again["bracket_conflict"]) == (
        30,
        "2",
        "target_first",
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"market_data_source": "bloomberg"}, "market_data_source"),
        ({"market_data_source": "ccxt:"}, "market_data_source"),
        ({"margin_multiplier": "5"}, "margin_multiplier"),
        ({"margin_multiplier": "0.5"}, "margin_multiplier"),
        ({"max_quote_age_seconds": 0}, "max_quote_age_seconds"),
        ({"bracket_conflict": "random"}, "bracket_conflict"),
        ({"starting_cash": "0"}, "starting_cash"),
    ],
)
def test_a_bad_setting_is_a_422_field_error(client, auth_headers, fields, field):
    response = create(client, auth_headers, **fields)

    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert field in response.json["errors"]["json"]


def test_a_percent_of_equity_beyond_the_margin_multiplier_cannot_trade(client, auth_headers):
    response = create(client, auth_headers, quantity_type="percent_of_equity", quantity="150")

    assert response.status_code == 422
    assert "margin multiplier 1 × 100" in response.json["errors"]["json"]["quantity"][0]
    assert (
        create(
            client, auth_headers, quantity_type="percent_of_equity", quantity="150", margin_multiplier="2"
        ).status_code
        == 201
    )


def test_an_update_is_checked_against_the_saved_settings(client, auth_headers):
    data = create(
        client, auth_headers, quantity_type="percent_of_equity", quantity="150", margin_multiplier="2"
    ).json

    response = client.patch(
        f"/api/webhook-configs/{data['id']}", json={"margin_multiplier": "1"}, headers=auth_headers
    )

    assert response.status_code == 422
    assert "quantity" in response.json["errors"]["json"]
