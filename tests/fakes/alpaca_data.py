"""A FAKE of Alpaca's Market Data API (REST v2 stocks, v1beta3 crypto, and the bars stream), on loopback.

Not Alpaca: a stand-in for tests, built from Alpaca's Market Data reference ("Latest quotes",
"Latest trades", "Historical bars", "Real-time stock/crypto data") and the field names alpaca-py's
models map (``alpaca/data/mappings.py``: ``t`` time, ``o h l c v`` bar prices and volume, ``n``
trade count, ``vw`` VWAP, ``bp/ap`` bid/ask price, ``bs/as`` sizes, ``p``/``s`` trade price/size).

REST (headers ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` must match, else 401 ``{"message"}``):
``GET /v2/stocks/quotes/latest``, ``/v2/stocks/trades/latest``, ``/v2/stocks/bars`` (``feed``
must be ``iex``: anything else is 403 "subscription does not permit querying recent SIP data",
as for a free account), ``GET /v1beta3/crypto/us/latest/quotes``, ``/latest/trades``, ``/bars``.
Answers are Alpaca's JSON: ``{"quotes": {SYM: {...}}}``, ``{"bars": {SYM: [...]},
"next_page_token": null}``. Data is what the test put in (``quotes``, ``trades``, ``bars``).

Stream (``stream_url``): msgpack frames as Alpaca sends them: ``[{"T": "success", "msg":
"connected"}]``, then on ``{"action": "auth"}`` ``[{"T": "success", "msg": "authenticated"}]``, on
``{"action": "subscribe", "bars": [...]}`` ``[{"T": "subscription", "bars": [...], ...}]``;
``publish_bar`` sends ``[{"T": "b", "S", "o", "h", "l", "c", "v", "t": <msgpack Timestamp>, "n",
"vw"}]`` to every subscriber of its symbol.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import msgpack
from websockets.asyncio.server import ServerConnection, serve

from fakes.json_http import serving


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class FakeAlpacaMarketData:
    """The fake; ``running()`` serves REST and the stream on free loopback ports."""

    def __init__(self, key_id: str = "FAKEKEY", secret_key: str = "FAKESECRET") -> None:
        self.key_id = key_id
        self.secret_key = secret_key
        self.url = ""
        self.stream_url = ""
        self.quotes: dict[str, dict[str, Any]] = {}
        self.trades: dict[str, dict[str, Any]] = {}
        self.bars: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self._subscribers: dict[ServerConnection, set[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.subscribed = threading.Event()

    # --- data the test sets ------------------------------------------------------------------

    def set_quote(self, symbol: str, bid: float, ask: float, at: datetime) -> None:
        self.quotes[symbol] = {
            "t": _z(at),
            "bp": bid,
            "bs": 1,
            "ap": ask,
            "as": 2,
            "bx": "V",
            "ax": "V",
            "c": ["R"],
            "z": "C",
        }

    def set_trade(self, symbol: str, price: float, size: float, at: datetime) -> None:
        self.trades[symbol] = {"t": _z(at), "p": price, "s": size, "x": "V", "i": 1, "c": ["@"], "z": "C"}

    def add_bar(
        self, symbol: str, at: datetime, o: float, h: float, low: float, c: float, v: float = 100
    ) -> None:
        self.bars.setdefault(symbol, []).append(
            {"t": _z(at), "o": o, "h": h, "l": low, "c": c, "v": v, "n": 10, "vw": (h + low) / 2}
        )

    # --- REST --------------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]], headers: Any) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of one GET (the HTTP handler calls this)."""
        self.requests.append((path, query))
        if (
            headers.get("APCA-API-KEY-ID") != self.key_id
            or headers.get("APCA-API-SECRET-KEY") != self.secret_key
        ):
            return 401, {"message": "unauthorized."}
        symbols = [s for value in query.get("symbols", []) for s in value.split(",")]
        if path.startswith("/v2/stocks/") and query.get("feed", ["sip"])[0] != "iex":
            return 403, {"message": "subscription does not permit querying recent SIP data"}
        kind = path.rsplit("/", 2)
        if path.endswith("/quotes/latest") or path.endswith("/latest/quotes"):
            return 200, {"quotes": {s: self.quotes[s] for s in symbols if s in self.quotes}}
        if path.endswith("/trades/latest") or path.endswith("/latest/trades"):
            return 200, {"trades": {s: self.trades[s] for s in symbols if s in self.trades}}
        if kind[-1] == "bars":
            return 200, {"bars": {s: self.bars.get(s, []) for s in symbols}, "next_page_token": None}
        return 404, {"message": "Not Found"}

    @contextmanager
    def running(self) -> Iterator[FakeAlpacaMarketData]:
        """Serve REST (``self.url``) and the stream (``self.stream_url``) until the block ends."""
        with serving(self.answer, "fake-alpaca-data") as url, self._streaming():
            self.url = url
            yield self

    @contextmanager
    def _streaming(self) -> Iterator[None]:
        ready = threading.Event()
        stop: dict[str, asyncio.Event] = {}

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            stop["event"] = asyncio.Event()
            async with serve(self._handle, "127.0.0.1", 0) as ws:
                port = next(iter(ws.sockets)).getsockname()[1]
                self.stream_url = f"ws://127.0.0.1:{port}/v2/iex"
                ready.set()
                await stop["event"].wait()

        ws_thread = threading.Thread(
            target=asyncio.run, args=(main(),), daemon=True, name="fake-alpaca-stream"
        )
        ws_thread.start()
        ready.wait(10)
        try:
            yield
        finally:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(stop["event"].set)
            ws_thread.join(10)

    # --- stream ------------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        await connection.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
        try:
            async for raw in connection:
                message = msgpack.unpackb(raw)
                if message.get("action") == "auth":
                    if message.get("key") != self.key_id or message.get("secret") != self.secret_key:
                        await connection.send(
                            msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}])
                        )
                        return
                    await connection.send(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
                elif message.get("action") == "subscribe":
                    self._subscribers.setdefault(connection, set()).update(message.get("bars", []))
                    reply = {
                        "T": "subscription",
                        "trades": message.get("trades", []),
                        "quotes": [],
                        "bars": sorted(self._subscribers[connection]),
                    }
                    await connection.send(msgpack.packb([reply]))
                    self.subscribed.set()
        finally:
            self._subscribers.pop(connection, None)

    def publish_bar(
        self, symbol: str, at: datetime, o: float, h: float, low: float, c: float, v: float = 100
    ) -> None:
        """Send one minute bar to the stream's subscribers of ``symbol`` (from any thread)."""
        frame = {
            "T": "b",
            "S": symbol,
            "o": o,
            "h": h,
            "l": low,
            "c": c,
            "v": v,
            "t": msgpack.Timestamp.from_datetime(at),
            "n": 10,
            "vw": c,
        }
        assert self._loop is not None

        async def send() -> None:
            for connection, symbols in list(self._subscribers.items()):
                if symbol in symbols:
                    await connection.send(msgpack.packb([frame], datetime=False))

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)
