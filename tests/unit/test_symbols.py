"""One canonical symbol per instrument (issue 15 item 5): TradingView's, Alpaca's and feeds' spellings."""

from __future__ import annotations

import pytest

from viewzenix.domain.symbols import canonical_symbol, is_crypto


@pytest.mark.parametrize(
    ("spelled", "canonical"),
    [
        ("BTCUSD", "BTC/USD"),  # TradingView
        ("BTC/USD", "BTC/USD"),  # Alpaca's orders
        ("btc/usd", "BTC/USD"),
        ("BTC-USD", "BTC/USD"),
        ("BTCUSDT", "BTC/USDT"),  # TradingView on an exchange: Tether, its own pair
        ("ETHBTC", "ETH/BTC"),
        ("AAPL", "AAPL"),
        ("BRK.B", "BRK.B"),
        ("ZUSD", "ZUSD"),  # as short as a US equity ticker: a ticker stays a ticker
    ],
)
def test_every_spelling_of_an_instrument_has_one_canonical_symbol(spelled, canonical):
    assert canonical_symbol(spelled) == canonical


def test_crypto_is_recognised_in_any_spelling():
    assert is_crypto("BTCUSD") and is_crypto("BTC/USD") and not is_crypto("AAPL")
