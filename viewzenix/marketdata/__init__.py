"""Market data: the port beside the broker port, its records, and the per-config source setting.

A ``MarketData`` adapter answers four questions about a symbol: its latest quote, its last
trade, its bars over a range at a timeframe, and (a subscription) its new bars and trades as they
come. Adapters: ``viewzenix.marketdata.replay`` (bars from a CSV file or a DataFrame),
``viewzenix.marketdata.alpaca`` (alpaca-py, stocks on the IEX feed and crypto),
``viewzenix.marketdata.exchanges`` (crypto exchanges through ccxt, public endpoints). Bars pushed
by TradingView on a config's webhook URL (source ``tradingview``) arrive as bar messages
(``viewzenix.marketdata.bar_message``) and are applied by ``viewzenix.services.bars``.

Records are frozen dataclasses, prices and sizes ``Decimal`` in the quote currency, times
UTC-aware. Nothing here imports Flask or psycopg.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol, runtime_checkable

__all__ = [
    "SOURCES",
    "Bar",
    "MarketData",
    "Quote",
    "Subscription",
    "Trade",
    "source_error",
    "source_symbol",
]

# tradingview: bars pushed on the webhook URL; replay: bars from a file; alpaca: alpaca-py's
# market data; ccxt:<exchange id>: a crypto exchange's public endpoints through ccxt.
SOURCES = ("tradingview", "replay", "alpaca", "ccxt")
_SOURCE = re.compile(r"^(tradingview|replay|alpaca|ccxt:[a-z0-9_]+)$")


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar of ``symbol``: ``start`` is its open time (UTC), ``end`` its close.

    ``interval`` as TradingView spells it (``1``, ``60``, ``1D``...); ``interval_seconds`` its
    length (a month counts 31 days here, only used to place the bar's close in time).
    """

    symbol: str
    interval: str
    start: datetime
    interval_seconds: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)

    @property
    def end(self) -> datetime:
        """The bar's close time: ``start`` + its interval."""
        return self.start + timedelta(seconds=self.interval_seconds)


@dataclass(frozen=True)
class Quote:
    """The best bid and ask of ``symbol`` at ``at`` (UTC)."""

    symbol: str
    bid: Decimal
    ask: Decimal
    at: datetime


@dataclass(frozen=True)
class Trade:
    """The last trade of ``symbol``: ``price`` (quote currency), ``size``, at ``at`` (UTC)."""

    symbol: str
    price: Decimal
    at: datetime
    size: Decimal = Decimal(0)


class Subscription(Protocol):
    """A running subscription: ``close()`` stops it."""

    def close(self) -> None: ...


@runtime_checkable
class MarketData(Protocol):
    """The market-data port: quotes, trades, bars and a subscription, for our symbols.

    Symbols are ours (the alert's ticker); an adapter maps them to its source's spelling
    (``source_symbol``). Each call raises ``MarketDataUnavailable`` when the source cannot be
    reached; a symbol the source does not know answers None or [].
    """

    name: str

    def latest_quote(self, symbol: str) -> Quote | None:
        """Return the latest quote of ``symbol``, or None when the source has none."""
        ...

    def latest_trade(self, symbol: str) -> Trade | None:
        """Return the last trade of ``symbol``, or None."""
        ...

    def bars(self, symbol: str, start: datetime, end: datetime, interval: str) -> list[Bar]:
        """Return ``symbol``'s bars whose open time is in [start, end), oldest first."""
        ...

    def subscribe(
        self,
        symbols: list[str],
        on_bar: Callable[[Bar], None],
        on_trade: Callable[[Trade], None] | None = None,
    ) -> Subscription:
        """Call ``on_bar`` (and ``on_trade``) for each new bar (trade) of ``symbols``."""
        ...


class MarketDataUnavailable(Exception):
    """The market-data source did not answer."""


def source_error(source: str) -> str | None:
    """Return why ``source`` is not a market-data source setting, or None when it is one.

    Allowed: ``tradingview``, ``replay``, ``alpaca``, ``ccxt:<exchange id>`` (lower case).
    """
    if _SOURCE.match(source):
        return None
    return (
        f'"{source}" is not a market data source: use tradingview, replay, alpaca, or '
        'ccxt:<exchange id> (e.g. "ccxt:kraken")'
    )


def source_symbol(symbol: str, mapping: Mapping[str, str] | None) -> str:
    """Return how the source spells our ``symbol``: its entry in ``mapping``, else itself."""
    if mapping:
        return mapping.get(symbol, mapping.get(symbol.upper(), symbol))
    return symbol


def price_of(
    quote: Quote | None, trade: Trade | None, bar: Bar | None, *, buy: bool
) -> tuple[Decimal, datetime] | None:
    """Return the price a market order takes and its time: the quote's ask (buy) or bid (sell),
    else the last trade, else the bar's close (at the bar's close time); None when none is known.
    """
    if quote is not None and (quote.ask if buy else quote.bid) > 0:
        return (quote.ask if buy else quote.bid), quote.at
    if trade is not None and trade.price > 0:
        return trade.price, trade.at
    if bar is not None and bar.close > 0:
        return bar.close, bar.end
    return None
