"""Crypto exchanges' public market data through ccxt (no keys): ticker quotes, trades, OHLCV bars.

A config whose source is ``ccxt:<exchange id>`` (e.g. ``ccxt:kraken``) reads prices from that
exchange's public endpoints: the ticker's bid/ask as the quote, the last public trade, OHLCV
candles as bars. Our tickers map to ccxt's unified symbols by the config's symbol map, else
``BTCUSD`` → ``BTC/USD`` (the quote currency split off). New bars are polled (ccxt's REST API has
no push): ``subscribe`` starts a thread that asks for the latest candles every ``poll_seconds``
and hands on each bar once it has closed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from viewzenix.marketdata import Bar, MarketDataUnavailable, Quote, Trade
from viewzenix.marketdata.alpaca import alpaca_symbol
from viewzenix.marketdata.bar_message import interval_seconds

__all__ = ["ExchangeMarketData", "ccxt_timeframe"]


def ccxt_timeframe(interval: str) -> str:
    """ccxt's timeframe (``1m``, ``1h``, ``1d``...) for a TradingView interval. Raises ValueError."""
    seconds = interval_seconds(interval)
    if seconds is None or seconds < 60:
        raise ValueError(f"no {interval} candles on exchanges (one minute at the finest)")
    for unit, size in (("M", 31 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise ValueError(f"no {interval} candles")


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class _Poller:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)


class ExchangeMarketData:
    """One exchange's public market data through ccxt; implements ``MarketData``.

    ``exchange_id``: a ccxt id (``kraken``, ``binance``...); raises ValueError for another.
    ``api_url``: another base URL for its public API (a fake in tests). ``clock``: UTC now, the
    time of a ticker that carries none.
    Each call raises ``MarketDataUnavailable`` when the exchange does not answer (ccxt's
    NetworkError or ExchangeError).
    """

    def __init__(
        self,
        exchange_id: str,
        *,
        symbols: Mapping[str, str] | None = None,
        api_url: str | None = None,
        clock: Callable[[], datetime] | None = None,
        poll_seconds: float = 10.0,
        rate_limit: bool = True,
    ) -> None:
        import ccxt

        if exchange_id not in ccxt.exchanges:
            raise ValueError(f"{exchange_id!r} is not one of ccxt's exchanges")
        self.name = f"ccxt:{exchange_id}"
        # ccxt paces its own calls to the exchange's published rate limit (rate_limit False: a fake).
        self.exchange = getattr(ccxt, exchange_id)({"enableRateLimit": rate_limit, "timeout": 10_000})
        if api_url is not None:
            self.exchange.urls["api"] = {key: api_url for key in self.exchange.urls["api"]}
        self.symbols = dict(symbols or {})
        self.clock = clock or (lambda: datetime.now(UTC))
        self.poll_seconds = poll_seconds

    def _call(self, function: Callable[[], Any]) -> Any:
        import ccxt

        try:
            return function()
        except (ccxt.NetworkError, ccxt.ExchangeError) as error:
            raise MarketDataUnavailable(f"{self.name} did not answer: {error}") from error

    def unified(self, symbol: str) -> str:
        """ccxt's unified symbol of our ticker (``BTCUSD`` → ``BTC/USD``; the map wins)."""
        mapped = alpaca_symbol(symbol, self.symbols)
        if "/" not in mapped and mapped == symbol:
            for quote in ("USDT", "USDC", "USD", "EUR", "BTC", "ETH"):
                if symbol.endswith(quote) and len(symbol) > len(quote):
                    return f"{symbol[: -len(quote)]}/{quote}"
        return mapped

    def latest_quote(self, symbol: str) -> Quote | None:
        """The ticker's best bid and ask, or None when it has neither."""
        ticker = self._call(lambda: self.exchange.fetch_ticker(self.unified(symbol)))
        bid, ask = _decimal(ticker.get("bid")), _decimal(ticker.get("ask"))
        if bid is None or ask is None:
            return None
        return Quote(symbol=symbol, bid=bid, ask=ask, at=self._time(ticker.get("timestamp")))

    def latest_trade(self, symbol: str) -> Trade | None:
        """The last public trade, or None."""
        trades = self._call(lambda: self.exchange.fetch_trades(self.unified(symbol), limit=1))
        if not trades:
            return None
        last = trades[-1]
        return Trade(
            symbol=symbol,
            price=Decimal(str(last["price"])),
            at=self._time(last.get("timestamp")),
            size=_decimal(last.get("amount")) or Decimal(0),
        )

    def bars(self, symbol: str, start: datetime, end: datetime, interval: str) -> list[Bar]:
        """Candles opening in [start, end), oldest first (one request; exchanges cap its length)."""
        frame = ccxt_timeframe(interval)
        seconds = interval_seconds(interval)
        assert seconds is not None
        since = int(start.timestamp() * 1000)
        rows = self._call(lambda: self.exchange.fetch_ohlcv(self.unified(symbol), frame, since=since))
        bars = [self._bar(symbol, interval, seconds, row) for row in rows]
        return [b for b in bars if start <= b.start < end]

    @staticmethod
    def _bar(symbol: str, interval: str, seconds: int, row: list[Any]) -> Bar:
        return Bar(
            symbol=symbol,
            interval=interval,
            start=datetime.fromtimestamp(row[0] / 1000, UTC),
            interval_seconds=seconds,
            open=Decimal(str(row[1])),
            high=Decimal(str(row[2])),
            low=Decimal(str(row[3])),
            close=Decimal(str(row[4])),
            volume=Decimal(str(row[5] or 0)),
        )

    def _time(self, milliseconds: int | None) -> datetime:
        return self.clock() if milliseconds is None else datetime.fromtimestamp(milliseconds / 1000, UTC)

    def subscribe(
        self,
        symbols: list[str],
        on_bar: Callable[[Bar], None],
        on_trade: Callable[[Trade], None] | None = None,
        *,
        interval: str = "1",
    ) -> _Poller:
        """Poll ``symbols``' candles every ``poll_seconds`` and call ``on_bar`` once per closed bar."""
        poller = _Poller()
        seconds = interval_seconds(interval) or 60
        seen: dict[str, datetime] = {}

        def poll() -> None:
            while not poller.stop.is_set():
                now = self.clock()
                for symbol in symbols:
                    try:
                        found = self.bars(
                            symbol, datetime.fromtimestamp(now.timestamp() - 3 * seconds, UTC), now, interval
                        )
                    except MarketDataUnavailable:
                        continue
                    for bar in found:
                        if bar.end <= now and (symbol not in seen or bar.start > seen[symbol]):
                            seen[symbol] = bar.start
                            on_bar(bar)
                poller.stop.wait(self.poll_seconds)

        poller.thread = threading.Thread(target=poll, name=f"{self.name}-bars", daemon=True)
        poller.thread.start()
        return poller
