"""The FAKE Kraken public API answers as Kraken does: ccxt's own kraken parsers read every answer.

Then ``ExchangeMarketData`` (our ccxt adapter, source ``ccxt:kraken``) is checked against it over
real HTTP: quote from the ticker, last trade, candles as bars, polled new bars.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import ccxt
import pytest
from fakes.kraken_public import PAIR, FakeKrakenPublic

from viewzenix.marketdata import MarketData, MarketDataUnavailable
from viewzenix.marketdata.exchanges import ExchangeMarketData, ccxt_timeframe

AT = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)
T = int(AT.timestamp())


@pytest.fixture()
def fake():
    fake = FakeKrakenPublic()
    fake.set_ticker(bid="97000.5", ask="97010.2", last="97005.0")
    fake.candles = [
        [T, "97000.0", "97100.0", "96950.0", "97050.0", "97020.0", "1.5", 10],
        [T + 60, "97050.0", "97200.0", "97040.0", "97150.0", "97100.0", "2.5", 12],
    ]
    fake.trades = [["97005.00000", "0.01000000", T + 30.25, "b", "m", "", 4242]]
    with fake.running():
        yield fake


@pytest.fixture()
def adapter(fake) -> ExchangeMarketData:
    return ExchangeMarketData(
        "kraken", api_url=fake.url, clock=lambda: AT + timedelta(minutes=2, seconds=1), rate_limit=False
    )


class TestTheFakeSpeaksKraken:
    def test_ccxt_parses_the_fakes_ticker_candles_and_trades(self, fake):
        kraken = ccxt.kraken()
        ticker = kraken.parse_ticker(fake.answer("/0/public/Ticker", {"pair": [PAIR]})[1]["result"][PAIR])
        candles = fake.answer("/0/public/OHLC", {"pair": [PAIR]})[1]["result"][PAIR]
        trade = fake.answer("/0/public/Trades", {"pair": [PAIR]})[1]["result"][PAIR][0]

        assert (ticker["bid"], ticker["ask"], ticker["last"]) == (97000.5, 97010.2, 97005.0)
        assert kraken.parse_ohlcv(candles[0]) == [T * 1000, 97000.0, 97100.0, 96950.0, 97050.0, 1.5]
        assert kraken.parse_trade(trade)["price"] == 97005.0

    def test_an_unknown_pair_is_kraken_s_error(self, fake):
        assert fake.answer("/0/public/Ticker", {"pair": ["NOPE"]})[1] == {
            "error": ["EQuery:Unknown asset pair"]
        }


class TestTheAdapter:
    def test_it_is_a_market_data_port_named_by_its_exchange(self, adapter):
        assert isinstance(adapter, MarketData)
        assert adapter.name == "ccxt:kraken"

    def test_the_quote_is_the_tickers_bid_and_ask(self, adapter, fake):
        quote = adapter.latest_quote("BTCUSD")

        assert (quote.symbol, quote.bid, quote.ask) == ("BTCUSD", Decimal("97000.5"), Decimal("97010.2"))
        assert fake.requests[-1] == ("/0/public/Ticker", {"pair": [PAIR]})
        assert adapter.exchange.markets["BTC/USD"]["id"] == PAIR  # ccxt read the fake's AssetPairs

    def test_the_last_trade(self, adapter):
        trade = adapter.latest_trade("BTCUSD")

        assert (trade.price, trade.size, trade.at) == (
            Decimal("97005.0"),
            Decimal("0.01"),
            AT + timedelta(seconds=30, microseconds=250000),
        )

    def test_candles_are_bars(self, adapter):
        bars = adapter.bars("BTCUSD", AT, AT + timedelta(minutes=5), "1")

        assert [(b.start, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
            (
                AT,
                Decimal("97000.0"),
                Decimal("97100.0"),
                Decimal("96950.0"),
                Decimal("97050.0"),
                Decimal("1.5"),
            ),
            (
                AT + timedelta(minutes=1),
                Decimal("97050.0"),
                Decimal("97200.0"),
                Decimal("97040.0"),
                Decimal("97150.0"),
                Decimal("2.5"),
            ),
        ]

    def test_an_unknown_symbol_is_market_data_unavailable(self, adapter):
        with pytest.raises(MarketDataUnavailable):
            adapter.latest_quote("DOGEUSD")

    def test_polling_hands_on_each_closed_bar_once(self, adapter):
        seen = []
        two = threading.Event()
        adapter.poll_seconds = 0.05

        def on_bar(bar):
            seen.append(bar.start)
            if len(seen) >= 2:
                two.set()

        poller = adapter.subscribe(["BTCUSD"], on_bar)
        try:
            assert two.wait(10)
            two.wait(0.3)  # a few more polls: nothing again
        finally:
            poller.close()

        assert seen == [AT, AT + timedelta(minutes=1)]


def test_intervals_map_to_ccxt_timeframes():
    assert [ccxt_timeframe(i) for i in ("1", "15", "60", "240", "1D", "1W")] == [
        "1m",
        "15m",
        "1h",
        "4h",
        "1d",
        "1w",
    ]


def test_a_config_with_a_ccxt_source_gets_that_exchanges_adapter(db):
    from viewzenix.brokers import market_data_for

    adapter = market_data_for(
        {"id": None, "market_data_source": "ccxt:kraken", "market_data_symbols": {"X": "Y"}}
    )

    assert (adapter.name, adapter.unified("X"), adapter.unified("BTCUSD")) == ("ccxt:kraken", "Y", "BTC/USD")
    assert market_data_for({"id": None, "market_data_source": "tradingview"}) is None
