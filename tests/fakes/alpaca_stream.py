"""A FAKE of Alpaca's trade_updates websocket (``/stream``), served on a loopback port.

Not Alpaca: a stand-in for tests, built from Alpaca's "Websocket Streaming" page. Protocol as
there: the client authenticates (``{"action": "auth", "key", "secret"}``, or alpaca-py's older
``{"action": "authenticate", "data": {"key_id", "secret_key"}}``) and gets ``{"stream":
"authorization", "data": {"action": "authenticate", "status": "authorized" | "unauthorized"}}``
(unauthorized: the fake then closes the connection); it sends ``{"action": "listen", "data":
{"streams": ["trade_updates"]}}`` and gets ``{"stream": "listening", "data": {"streams":
["trade_updates"]}}``. From then on every event of the REST fake (``FakeAlpacaApi``: orders
placed, filled in parts, canceled, expired, rejected) is sent as ``{"stream": "trade_updates",
"data": {…}}`` in a *binary* frame, as the paper stream does. Events while no client listens are
lost, as with Alpaca.

Controls: ``disconnect()`` drops every connection (the server goes away mid-stream);
``connections`` counts the websocket connections accepted, ``refused_auth`` the refused keys.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from fakes.alpaca_api import FakeAlpacaApi


class FakeAlpacaStream:
    """The fake trade_updates server of one ``FakeAlpacaApi`` account; ``running()`` serves it."""

    def __init__(self, api: FakeAlpacaApi) -> None:
        self.api = api
        self.url = ""
        self.connections = 0
        self.refused_auth = 0
        self._listening: set[ServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextmanager
    def running(self) -> Iterator[FakeAlpacaStream]:
        """Serve on a free loopback port (``self.url`` = ``ws://127.0.0.1:<port>/stream``)."""
        ready = threading.Event()
        stop: dict[str, asyncio.Event] = {}

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            stop["event"] = asyncio.Event()
            async with serve(self._handle, "127.0.0.1", 0) as server:
                port = next(iter(server.sockets)).getsockname()[1]
                self.url = f"ws://127.0.0.1:{port}/stream"
                ready.set()
                await stop["event"].wait()

        thread = threading.Thread(target=asyncio.run, args=(main(),), name="fake-alpaca-stream", daemon=True)
        thread.start()
        ready.wait(timeout=10)
        self.api.subscribers.append(self._publish)
        try:
            yield self
        finally:
            self.api.subscribers.remove(self._publish)
            assert self._loop is not None
            self._loop.call_soon_threadsafe(stop["event"].set)
            thread.join(timeout=10)

    def disconnect(self) -> None:
        """Drop every open connection at once (no close handshake: the network went away)."""
        self._run(self._drop_all())

    @property
    def listening(self) -> int:
        return len(self._listening)

    # --- the server ----------------------------------------------------------------------------

    def _run(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def _publish(self, data: dict[str, Any]) -> None:
        """Send one event to every listening client before returning (called by the REST fake)."""
        self._run(self._send_all({"stream": "trade_updates", "data": data}))

    async def _send_all(self, message: dict[str, Any]) -> None:
        frame = json.dumps(message).encode()
        for connection in list(self._listening):
            try:
                await connection.send(frame)  # bytes: a binary frame
            except ConnectionClosed:
                self._listening.discard(connection)

    async def _drop_all(self) -> None:
        for connection in list(self._listening):
            self._listening.discard(connection)
            connection.transport.abort()

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections += 1
        try:
            auth = json.loads(await connection.recv())
            data = auth.get("data") or {}
            key = auth.get("key") or data.get("key_id")
            secret = auth.get("secret") or data.get("secret_key")
            authorized = auth.get("action") in ("auth", "authenticate") and (key, secret) == (
                self.api.key_id,
                self.api.secret_key,
            )
            status = "authorized" if authorized else "unauthorized"
            await connection.send(
                json.dumps({"stream": "authorization", "data": {"action": "authenticate", "status": status}})
            )
            if not authorized:
                self.refused_auth += 1
                await connection.close()
                return
            async for raw in connection:
                message = json.loads(raw)
                if message.get("action") == "listen":
                    streams = [s for s in message.get("data", {}).get("streams", []) if s == "trade_updates"]
                    if streams:  # listening before the acknowledgement: nothing falls between
                        self._listening.add(connection)
                    else:
                        self._listening.discard(connection)
                    await connection.send(json.dumps({"stream": "listening", "data": {"streams": streams}}))
        except ConnectionClosed:
            pass
        finally:
            self._listening.discard(connection)
