"""Alpaca market data through alpaca-py: stocks on the free IEX feed, and crypto.

Latest quote, last trade and bars over REST (``StockHistoricalDataClient`` /
``CryptoHistoricalDataClient``), new bars and trades over the websocket stream
(``StockDataStream`` / ``CryptoDataStream``). FACTS.md: the free stock feed is IEX; crypto
symbols are pairs (``BTC/USD``). Our tickers map to Alpaca's by the config's symbol map, else a
crypto ticker without a slash (TradingView's ``BTCUSD``) gets one before its quote currency.
alpaca-py's float prices become ``Decimal`` through their shortest text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from viewzenix.domain.sessions import is_crypto
from viewzenix.marketdata import Bar, MarketDataUnavailable, Quote, Trade, source_symbol
from viewzenix.marketdata.bar_message import interval_seconds

__all__ = ["AlpacaMarketData", "alpaca_symbol"]

_QUOTES = ("USDT", "USDC", "USD", "BTC", "ETH")


def alpaca_symbol(symbol: str, mapping: Mapping[str, str] | None = None) -> str:
    """Return Alpaca's spelling of our ticker: the map's, else ``BTCUSD`` → ``BTC/USD``, else itself."""
    mapped = source_symbol(symbol, mapping)
    if mapped != symbol or "/" in symbol or not is_crypto(symbol):
        return mapped
    name = symbol.rsplit(":", 1)[-1].upper()
    for quote in _QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            return f"{name[: -len(quote)]}/{quote}"
    return name


def _decimal(value: float | None) -> Decimal:
    return Decimal(repr(float(value or 0)))


def timeframe(interval: str) -> Any:
    """alpaca-py's ``TimeFrame`` for a TradingView interval. Raises ValueError for seconds or odd ones."""
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    seconds = interval_seconds(interval)
    if seconds is None or seconds < 60:
        raise ValueError(f"Alpaca has no {interval} bars (minute bars at the finest)")
    minutes = seconds // 60
    if minutes < 60:
        return TimeFrame(minutes, TimeFrameUnit.Minute)
    if minutes < 1440 and minutes % 60 == 0 and minutes // 60 <= 23:
        return TimeFrame(minutes // 60, TimeFrameUnit.Hour)
    if seconds == 86400:
        return TimeFrame(1, TimeFrameUnit.Day)
    if seconds == 7 * 86400:
        return TimeFrame(1, TimeFrameUnit.Week)
    if seconds % (31 * 86400) == 0 and seconds // (31 * 86400) in (1, 2, 3, 4, 6, 12):
        return TimeFrame(seconds // (31 * 86400), TimeFrameUnit.Month)
    raise ValueError(f"Alpaca has no {interval} bars")


class _StreamSubscription:
    def __init__(self, stream: Any, thread: threading.Thread) -> None:
        self.stream = stream
        self.thread = thread

    def close(self) -> None:
        self.stream.stop()
        self.thread.join(timeout=10)


class AlpacaMarketData:
    """Alpaca's market data for one account's keys; implements ``MarketData``.

    ``url_override`` / ``stream_url``: another base URL (a fake in tests). ``symbols``: our
    ticker → Alpaca's symbol. Each REST call raises ``MarketDataUnavailable`` when Alpaca does
    not answer (alpaca-py's APIError, a connection error).
    """

    name = "alpaca"

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        url_override: str | None = None,
        stream_url: str | None = None,
        symbols: Mapping[str, str] | None = None,
    ) -> None:
        from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient

        self.api_key = api_key
        self.secret_key = secret_key
        self.stream_url = stream_url
        self.symbols = dict(symbols or {})
        self.stocks = StockHistoricalDataClient(api_key, secret_key, url_override=url_override)
        self.crypto = CryptoHistoricalDataClient(api_key, secret_key, url_override=url_override)

    def _call(self, function: Callable[[], Any]) -> Any:
        import requests
        from alpaca.common.exceptions import APIError

        try:
            return function()
        except (APIError, requests.RequestException) as error:
            raise MarketDataUnavailable(f"Alpaca market data did not answer: {error}") from error

    def latest_quote(self, symbol: str) -> Quote | None:
        """The latest quote (stocks: IEX), or None when Alpaca has none for the symbol."""
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import CryptoLatestQuoteRequest, StockLatestQuoteRequest

        theirs = alpaca_symbol(symbol, self.symbols)
        if is_crypto(symbol):
            found = self._call(
                lambda: self.crypto.get_crypto_latest_quote(
                    CryptoLatestQuoteRequest(symbol_or_symbols=theirs)
                )
            )
        else:
            request = StockLatestQuoteRequest(symbol_or_symbols=theirs, feed=DataFeed.IEX)
            found = self._call(lambda: self.stocks.get_stock_latest_quote(request))
        quote = found.get(theirs)
        if quote is None:
            return None
        return Quote(
            symbol=symbol, bid=_decimal(quote.bid_price), ask=_decimal(quote.ask_price), at=quote.timestamp
        )

    def latest_trade(self, symbol: str) -> Trade | None:
        """The last trade (stocks: IEX), or None."""
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import CryptoLatestTradeRequest, StockLatestTradeRequest

        theirs = alpaca_symbol(symbol, self.symbols)
        if is_crypto(symbol):
            found = self._call(
                lambda: self.crypto.get_crypto_latest_trade(
                    CryptoLatestTradeRequest(symbol_or_symbols=theirs)
                )
            )
        else:
            request = StockLatestTradeRequest(symbol_or_symbols=theirs, feed=DataFeed.IEX)
            found = self._call(lambda: self.stocks.get_stock_latest_trade(request))
        trade = found.get(theirs)
        if trade is None:
            return None
        return Trade(
            symbol=symbol, price=_decimal(trade.price), at=trade.timestamp, size=_decimal(trade.size)
        )

    def bars(self, symbol: str, start: datetime, end: datetime, interval: str) -> list[Bar]:
        """Bars opening in [start, end), oldest first. Raises ValueError for an interval Alpaca lacks."""
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest

        frame = timeframe(interval)
        theirs = alpaca_symbol(symbol, self.symbols)
        if is_crypto(symbol):
            request: Any = CryptoBarsRequest(symbol_or_symbols=theirs, timeframe=frame, start=start, end=end)
            found = self._call(lambda: self.crypto.get_crypto_bars(request))
        else:
            request = StockBarsRequest(
                symbol_or_symbols=theirs, timeframe=frame, start=start, end=end, feed=DataFeed.IEX
            )
            found = self._call(lambda: self.stocks.get_stock_bars(request))
        seconds = interval_seconds(interval)
        assert seconds is not None
        rows = found.data.get(theirs, [])
        return [self._bar(symbol, interval, seconds, row) for row in rows if start <= row.timestamp < end]

    @staticmethod
    def _bar(symbol: str, interval: str, seconds: int, row: Any) -> Bar:
        return Bar(
            symbol=symbol,
            interval=interval,
            start=row.timestamp,
            interval_seconds=seconds,
            open=_decimal(row.open),
            high=_decimal(row.high),
            low=_decimal(row.low),
            close=_decimal(row.close),
            volume=_decimal(row.volume),
        )

    def subscribe(
        self,
        symbols: list[str],
        on_bar: Callable[[Bar], None],
        on_trade: Callable[[Trade], None] | None = None,
    ) -> _StreamSubscription:
        """Stream minute bars (and trades) of ``symbols`` on a thread; ``close()`` stops it.

        Stocks on the IEX stream, crypto on the crypto stream (one stream per call: all
        ``symbols`` must be of one kind). Alpaca streams one-minute bars.
        """
        from alpaca.data.enums import DataFeed
        from alpaca.data.live import CryptoDataStream, StockDataStream

        crypto = any(is_crypto(s) for s in symbols)
        ours = {alpaca_symbol(s, self.symbols): s for s in symbols}
        if crypto:
            stream: Any = CryptoDataStream(self.api_key, self.secret_key, url_override=self.stream_url)
        else:
            stream = StockDataStream(
                self.api_key, self.secret_key, feed=DataFeed.IEX, url_override=self.stream_url
            )

        async def bar_handler(row: Any) -> None:
            on_bar(self._bar(ours.get(row.symbol, row.symbol), "1", 60, row))

        async def trade_handler(row: Any) -> None:
            assert on_trade is not None
            on_trade(
                Trade(
                    symbol=ours.get(row.symbol, row.symbol),
                    price=_decimal(row.price),
                    at=row.timestamp,
                    size=_decimal(row.size),
                )
            )

        stream.subscribe_bars(bar_handler, *ours)
        if on_trade is not None:
            stream.subscribe_trades(trade_handler, *ours)
        thread = threading.Thread(target=stream.run, name="alpaca-market-data", daemon=True)
        thread.start()
        return _StreamSubscription(stream, thread)
