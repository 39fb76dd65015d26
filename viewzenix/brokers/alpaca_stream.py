"""Alpaca's ``trade_updates`` websocket: connect, authenticate, listen, and read order events.

Alpaca's protocol ("Websocket Streaming", docs.alpaca.markets): connect to
``wss://paper-api.alpaca.markets/stream`` (live: ``wss://api.alpaca.markets/stream``), send
``{"action": "auth", "key": …, "secret": …}``, get ``{"stream": "authorization", "data":
{"status": "authorized" | "unauthorized", …}}``, send ``{"action": "listen", "data": {"streams":
["trade_updates"]}}``, get ``{"stream": "listening", …}``; then one message per order event,
``{"stream": "trade_updates", "data": {"event", "execution_id", "price", "qty", "position_qty",
"timestamp", "order": {…the order object…}}}``. The paper stream sends its JSON in *binary*
frames, the others in text frames: both are read. Events: ``new``, ``fill``, ``partial_fill``,
``canceled``, ``expired``, ``rejected``, ``done_for_day``, ``replaced``, ``pending_new`` …
(alpaca-py ``TradeEvent``).

Why not alpaca-py's ``TradingStream``: it gives no hook after a reconnect (we catch up with a
poll then), treats refused keys like any other error, runs one event loop per account, and is
built on the deprecated ``websockets.legacy`` client. The messages are still read with alpaca-py's
own model (``TradeUpdate``), so a shape it cannot read is refused here as it would be there.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca.trading.models import TradeUpdate
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect

from viewzenix.brokers.alpaca import AlpacaCredentials, BrokerAuthFailed, to_broker_order
from viewzenix.brokers.base import BrokerError, BrokerFill, BrokerOrder

__all__ = [
    "FILL_EVENTS",
    "StreamProtocolError",
    "TradeUpdateEvent",
    "TradeUpdatesConnection",
    "parse_trade_update",
    "stream_url",
]

logger = logging.getLogger(__name__)

FILL_EVENTS = ("fill", "partial_fill")
HANDSHAKE_TIMEOUT = 10.0  # seconds: connect, and each answer to auth and listen
PING_INTERVAL = 20.0  # seconds; a connection that misses a pong for PING_TIMEOUT s is dead
PING_TIMEOUT = 20.0


class StreamProtocolError(BrokerError):
    """Alpaca's stream answered something other than the protocol says."""


def stream_url(credentials: AlpacaCredentials) -> str:
    """The trade_updates address of the account's REST address: ``https://x`` → ``wss://x/stream``.

    Paper ``https://paper-api.alpaca.markets`` → ``wss://paper-api.alpaca.markets/stream``, live
    likewise; an ``api_url`` override (a proxy, ``http://`` for a local fake) maps the same way.
    """
    base = credentials.base_url.removesuffix("/v2")
    scheme, _, rest = base.partition("://")
    return f"{'ws' if scheme == 'http' else 'wss'}://{rest}/stream"


@dataclass(frozen=True)
class TradeUpdateEvent:
    """One trade_updates event: Alpaca's ``event`` name and our report of the order.

    ``report.fills`` holds the execution of a ``fill``/``partial_fill`` event: ``trade_id``
    ``<client_order_id>-q<cumulative filled qty>`` (the id a poll gives the same fill, see
    ``brokers.alpaca``), ``qty``/``price`` the event's (``last_qty``/``last_px``), its
    ``cumulative_qty`` the order's ``filled_qty`` after it. ``execution_id``: Alpaca's id of
    the execution (logged; not our trade_id, as polls cannot see it).
    """

    event: str
    report: BrokerOrder
    broker_order_id: str
    execution_id: str | None
    at: datetime


def parse_trade_update(data: dict[str, Any]) -> TradeUpdateEvent:
    """Read the ``data`` of one trade_updates message. Raises StreamProtocolError if unreadable.

    Quantities and prices are read from the JSON as Decimal (alpaca-py's model holds floats).
    """
    try:
        update = TradeUpdate(**data)
    except (ValidationError, TypeError) as error:
        raise StreamProtocolError(f"unreadable trade update: {error}") from error
    event = getattr(update.event, "value", update.event)
    report = to_broker_order(update.order)
    qty, price = _decimal(data.get("qty")), _decimal(data.get("price"))
    if event in FILL_EVENTS and qty and price is not None and report.filled_qty > 0:
        cumulative = report.filled_qty
        fill = BrokerFill(
            trade_id=f"{report.client_order_id}-q{cumulative.normalize():f}",
            qty=qty,
            price=price,
            commission=Decimal(0),
            filled_at=update.timestamp,
            cumulative_qty=cumulative,
        )
        report = replace(report, fills=(fill,))
    return TradeUpdateEvent(
        event=str(event),
        report=report,
        broker_order_id=str(update.order.id),
        execution_id=None if update.execution_id is None else str(update.execution_id),
        at=update.timestamp,
    )


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def _decode(message: str | bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(message)
    except ValueError as error:
        raise StreamProtocolError(f"Alpaca's stream sent a message that is not JSON: {error}") from error
    if not isinstance(decoded, dict):
        raise StreamProtocolError("Alpaca's stream sent a message that is not an object")
    return decoded


class TradeUpdatesConnection:
    """One authenticated connection listening to ``trade_updates``: ``async with`` it, iterate it.

    ``async with TradeUpdatesConnection(url, credentials) as stream: async for data in stream``
    yields each trade_updates message's ``data`` (dict). Entering raises BrokerAuthFailed
    (Alpaca said ``unauthorized``), StreamProtocolError, and the ``websockets``/OS errors of
    the network (``OSError``, ``TimeoutError``, ``websockets.exceptions.WebSocketException``);
    iterating ends with ``websockets.exceptions.ConnectionClosed`` when the connection drops.
    """

    def __init__(self, url: str, credentials: AlpacaCredentials) -> None:
        self.url = url
        self.credentials = credentials
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> TradeUpdatesConnection:
        self._ws = await connect(
            self.url,
            open_timeout=HANDSHAKE_TIMEOUT,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            max_size=2**22,
        )
        try:
            auth = {"action": "auth", "key": self.credentials.key_id, "secret": self.credentials.secret_key}
            await self._ws.send(json.dumps(auth))
            answer = _decode(await asyncio.wait_for(self._ws.recv(), HANDSHAKE_TIMEOUT))
            data = answer.get("data") or {}
            if answer.get("stream") != "authorization" or data.get("status") != "authorized":
                if data.get("status") == "unauthorized":
                    raise BrokerAuthFailed(
                        "Alpaca's trade_updates stream refused the API keys (unauthorized): "
                        "check the key id and secret, and paper vs live"
                    )
                raise StreamProtocolError(f"unexpected answer to auth: {answer}")
            await self._ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            while True:  # Alpaca may send other messages first; wait for the acknowledgement
                answer = _decode(await asyncio.wait_for(self._ws.recv(), HANDSHAKE_TIMEOUT))
                if answer.get("stream") == "listening":
                    streams = (answer.get("data") or {}).get("streams") or []
                    if "trade_updates" not in streams:
                        raise StreamProtocolError(f"Alpaca did not grant trade_updates: {answer}")
                    return self
        except BaseException:
            await self._ws.close()
            raise

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()

    def __aiter__(self) -> TradeUpdatesConnection:
        return self

    async def __anext__(self) -> dict[str, Any]:
        assert self._ws is not None, "enter the connection first"
        while True:
            message = _decode(await self._ws.recv())
            if message.get("stream") == "trade_updates":
                return message.get("data") or {}
            logger.debug("alpaca stream message ignored: %s", message.get("stream"))
