"""The FAKE Alpaca market data answers as Alpaca does: alpaca-py's own models parse every answer.

Then ``AlpacaMarketData`` (our adapter) is checked against the fake over real HTTP and the
websocket: quotes, trades and bars of a stock on the IEX feed and of a crypto pair.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from alpaca.data.models import BarSet, Quote, Trade
from alpaca.data.models.bars import Bar as AlpacaBar
from fakes.alpaca_data import FakeAlpacaMarketData

from viewzenix.marketdata import MarketData, MarketDataUnavailable
from viewzenix.marketdata.alpaca import AlpacaMarketData, alpaca_symbol, timeframe

AT = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)


@pytest.fixture()
def fake():
    fake = FakeAlpacaMarketData()
    fake.set_quote("AAPL", 190.98, 191.02, AT)
    fake.set_trade("AAPL", 191.0, 100, AT)
    fake.add_bar("AAPL", AT, 190.5, 191.25, 190.1, 191.0)
    fake.add_bar("AAPL", AT + timedelta(minutes=1), 191.0, 191.5, 190.9, 191.4)
    fake.set_quote("BTC/USD", 97000.5, 97010.25, AT)
    fake.set_trade("BTC/USD", 97005.0, 0.01, AT)
    fake.add_bar("BTC/USD", AT, 97000, 97100, 96950, 97050, 1.5)
    with fake.running():
        yield fake


@pytest.fixture()
def adapter(fake) -> AlpacaMarketData:
    return AlpacaMarketData(fake.key_id, fake.secret_key, url_override=fake.url, stream_url=fake.stream_url)


class TestTheFakeSpeaksAlpaca:
    def test_latest_quotes_and_trades_parse_with_alpaca_py_models(self, fake):
        status, quotes = fake.answer(
            "/v2/stocks/quotes/latest", {"symbols": ["AAPL"], "feed": ["iex"]}, _keys(fake)
        )
        _, trades = fake.answer(
            "/v2/stocks/trades/latest", {"symbols": ["AAPL"], "feed": ["iex"]}, _keys(fake)
        )

        quote = Quote("AAPL", quotes["quotes"]["AAPL"])
        trade = Trade("AAPL", trades["trades"]["AAPL"])
        assert status == 200
        assert (quote.bid_price, quote.ask_price, quote.timestamp) == (190.98, 191.02, AT)
        assert (trade.price, trade.size) == (191.0, 100)

    def test_bars_parse_as_a_barset(self, fake):
        _, body = fake.answer("/v1beta3/crypto/us/bars", {"symbols": ["BTC/USD"]}, _keys(fake))

        bars = BarSet(body["bars"])
        assert isinstance(bars["BTC/USD"][0], AlpacaBar)
        assert bars["BTC/USD"][0].close == 97050

    def test_the_sip_feed_is_refused_as_for_a_free_account(self, fake):
        status, body = fake.answer("/v2/stocks/bars", {"symbols": ["AAPL"], "feed": ["sip"]}, _keys(fake))

        assert (status, body["message"]) == (403, "subscription does not permit querying recent SIP data")


def _keys(fake) -> dict[str, str]:
    return {"APCA-API-KEY-ID": fake.key_id, "APCA-API-SECRET-KEY": fake.secret_key}


class TestTheAdapter:
    def test_it_is_a_market_data_port(self, adapter):
        assert isinstance(adapter, MarketData)

    def test_a_stock_quote_and_trade_on_the_iex_feed(self, adapter, fake):
        quote = adapter.latest_quote("AAPL")
        trade = adapter.latest_trade("AAPL")

        assert (quote.bid, quote.ask, quote.at) == (Decimal("190.98"), Decimal("191.02"), AT)
        assert (trade.price, trade.at) == (Decimal("191.0"), AT)
        assert all(query["feed"] == ["iex"] for path, query in fake.requests if path.startswith("/v2/stocks"))

    def test_a_tradingview_crypto_ticker_is_asked_as_alpacas_pair(self, adapter, fake):
        quote = adapter.latest_quote("BTCUSD")

        assert (quote.symbol, quote.bid, quote.ask) == ("BTCUSD", Decimal("97000.5"), Decimal("97010.25"))
        assert fake.requests[-1][0] == "/v1beta3/crypto/us/latest/quotes"

    def test_bars_for_a_range(self, adapter):
        bars = adapter.bars("AAPL", AT, AT + timedelta(minutes=5), "1")

        assert [(b.start, b.close, b.end) for b in bars] == [
            (AT, Decimal("191.0"), AT + timedelta(minutes=1)),
            (AT + timedelta(minutes=1), Decimal("191.4"), AT + timedelta(minutes=2)),
        ]

    def test_an_unknown_symbol_has_no_quote(self, adapter):
        assert adapter.latest_quote("MSFT") is None

    def test_wrong_keys_are_market_data_unavailable(self, fake):
        adapter = AlpacaMarketData("WRONG", "KEYS", url_override=fake.url)

        with pytest.raises(MarketDataUnavailable):
            adapter.latest_trade("AAPL")

    def test_the_stream_delivers_new_bars(self, adapter, fake):
        seen = []
        arrived = threading.Event()

        def on_bar(bar):
            seen.append(bar)
            arrived.set()

        subscription = adapter.subscribe(["AAPL"], on_bar)
        try:
            assert fake.subscribed.wait(10)
            fake.publish_bar("AAPL", AT, 190.5, 191.25, 190.1, 191.0)
            assert arrived.wait(10)
        finally:
            subscription.close()

        assert [(b.symbol, b.start, b.close, b.interval) for b in seen] == [
            ("AAPL", AT, Decimal("191.0"), "1")
        ]


@pytest.mark.parametrize(
    ("ours", "theirs"), [("BTCUSD", "BTC/USD"), ("ETHUSDT", "ETH/USDT"), ("AAPL", "AAPL")]
)
def test_symbols_map_to_alpacas(ours, theirs):
    assert alpaca_symbol(ours) == theirs
    assert alpaca_symbol(ours, {ours: "X"}) == "X"


def test_intervals_map_to_timeframes():
    assert str(timeframe("1").value) == "1Min"
    assert str(timeframe("60").value) == "1Hour"
    assert str(timeframe("1D").value) == "1Day"
    with pytest.raises(ValueError):
        timeframe("30S")
