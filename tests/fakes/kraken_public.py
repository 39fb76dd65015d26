"""A FAKE of Kraken's public REST API (``/0/public/...``), served on a loopback port.

Not Kraken: a stand-in for tests of the ccxt adapter, with the response shapes of Kraken's API
reference ("Get Asset Info", "Get Tradable Asset Pairs", "Get Ticker Information", "Get OHLC
Data", "Get Recent Trades") as ccxt's ``kraken.py`` documents them in its parser comments:
``{"error": [], "result": {...}}``, prices as strings, OHLC rows ``[time s, open, high, low,
close, vwap, volume, count]``, trades ``[price, volume, time s, side, type, misc, id]``. One pair,
``XXBTZUSD`` (ccxt's ``BTC/USD``). The test sets ``ticker``, ``candles`` and ``trades``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fakes.json_http import serving

PAIR = "XXBTZUSD"
ASSETS = {
    "XXBT": {
        "aclass": "currency",
        "altname": "XBT",
        "decimals": 10,
        "display_decimals": 5,
        "status": "enabled",
    },
    "ZUSD": {
        "aclass": "currency",
        "altname": "USD",
        "decimals": 4,
        "display_decimals": 2,
        "status": "enabled",
    },
}
ASSET_PAIRS = {
    PAIR: {
        "altname": "XBTUSD",
        "wsname": "XBT/USD",
        "aclass_base": "currency",
        "base": "XXBT",
        "aclass_quote": "currency",
        "quote": "ZUSD",
        "lot": "unit",
        "cost_decimals": 5,
        "pair_decimals": 1,
        "lot_decimals": 8,
        "lot_multiplier": 1,
        "leverage_buy": [2, 3, 4, 5],
        "leverage_sell": [2, 3, 4, 5],
        "fees": [[0, 0.4]],
        "fees_maker": [[0, 0.25]],
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": "0.00005",
        "costmin": "0.5",
        "tick_size": "0.1",
        "status": "online",
    }
}


class FakeKrakenPublic:
    """The fake; ``running()`` serves it (``url`` = ``http://127.0.0.1:<port>``)."""

    def __init__(self) -> None:
        self.url = ""
        self.ticker: dict[str, Any] = {}
        self.candles: list[list[Any]] = []
        self.trades: list[list[Any]] = []
        self.requests: list[tuple[str, dict[str, list[str]]]] = []

    def set_ticker(self, bid: str, ask: str, last: str) -> None:
        self.ticker = {
            "a": [ask, "1", "1.000"],
            "b": [bid, "2", "2.000"],
            "c": [last, "0.01000000"],
            "v": ["10.0", "100.0"],
            "p": [last, last],
            "t": [10, 100],
            "l": [bid, bid],
            "h": [ask, ask],
            "o": last,
        }

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of one GET."""
        self.requests.append((path, query))
        name = path.rsplit("/", 1)[-1]
        if name == "Assets":
            return 200, {"error": [], "result": ASSETS}
        if name == "AssetPairs":
            return 200, {"error": [], "result": ASSET_PAIRS}
        pair = query.get("pair", [""])[0]
        if pair != PAIR:
            return 200, {"error": ["EQuery:Unknown asset pair"]}
        if name == "Ticker":
            return 200, {"error": [], "result": {PAIR: self.ticker}}
        if name == "OHLC":
            since = int(query.get("since", ["0"])[0])
            rows = [row for row in self.candles if row[0] > since]
            return 200, {"error": [], "result": {PAIR: rows, "last": rows[-1][0] if rows else since}}
        if name == "Trades":
            return 200, {"error": [], "result": {PAIR: self.trades, "last": "0"}}
        return 404, {"error": ["EGeneral:Unknown method"]}

    @contextmanager
    def running(self) -> Iterator[FakeKrakenPublic]:
        """Serve on a free loopback port (``self.url``) until the block ends."""
        with serving(lambda path, query, headers: self.answer(path, query), "fake-kraken") as url:
            self.url = url
            yield self
