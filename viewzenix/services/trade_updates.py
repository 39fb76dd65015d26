"""Alpaca's trade_updates stream into our books: one listener per trading Alpaca config.

The stream is the fast path; ``services.order_sync`` (the worker's periodic poll) is the
fallback. A listener (``TradeUpdatesListener``) connects to the config's account
(``brokers.alpaca_stream``), and after *every* connect — the first and each reconnect — runs
the poll for its config once (``sync_open_orders(config_id=…)``), so what happened while it
was not listening (before it started, while disconnected) is caught up ("resume"). It
subscribes before it polls, so nothing falls between the two.

Each event goes to the ledger (``record_report``) as our report of the order, in one
transaction: status, filled quantity and average price follow Alpaca's order; a ``fill`` or
``partial_fill`` carries its execution (``last_qty``/``last_px`` = the event's ``qty``/``price``)
under trade_id ``<client_order_id>-q<cumulative filled qty>``, the id the poll gives the same
fill. The ledger records it only if it adds to the recorded quantity, so a fill seen by both the
stream and the poll is recorded once, whichever comes first. Alpaca's ``execution_id`` is not
the trade_id: the poll reads orders, which do not carry it, and the two would then record one
execution under two ids.

A bracket's legs carry ids Alpaca chose: they are found by ``broker_order_id``. Events of orders
that are not ours (placed at Alpaca directly) are skipped; reconciliation reports those.

Disconnects (network, Alpaca closing the socket, a missed pong) and refused keys are logged and
retried with backoff (``backoff``: 1, 2, 4 … s with jitter, at most ``MAX_BACKOFF`` s; reset
once a connection is listening); nothing a listener meets stops the process.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from alpaca.common.utils import reconnect_delay
from websockets.exceptions import WebSocketException

from viewzenix.brokers import BrokerNotAvailable
from viewzenix.brokers.alpaca import AlpacaCredentials, BrokerAuthFailed
from viewzenix.brokers.alpaca_stream import (
    StreamProtocolError,
    TradeUpdatesConnection,
    parse_trade_update,
    stream_url,
)
from viewzenix.brokers.base import BrokerOrder
from viewzenix.db import Database
from viewzenix.repositories import books as books_repo
from viewzenix.services import ledger
from viewzenix.services.accounts import Accounts, accounts_for, isolated_failure
from viewzenix.services.ledger import Recorded

logger = logging.getLogger(__name__)

MIN_BACKOFF = 1.0  # seconds before the first reconnect
MAX_BACKOFF = 60.0  # seconds, the longest wait between attempts
RECENT_ACTIVITY = timedelta(minutes=15)  # a config with an order that moved since keeps its stream


def configs_to_stream(db: Database, accounts: Accounts | None = None) -> list[dict[str, Any]]:
    """Return the ``webhook_configs`` rows whose Alpaca trade_updates should be listened to.

    Alpaca configs with stored credentials and an open order, or an order updated within
    ``RECENT_ACTIVITY``.
    """
    return accounts_for(db, accounts).configs_to_stream(RECENT_ACTIVITY)


def record_trade_update(
    db: Database,
    config: dict[str, Any],
    data: dict[str, Any],
    *,
    now: datetime | None = None,
    accounts: Accounts | None = None,
) -> Recorded | None:
    """Record one trade_updates event's ``data`` for ``config`` (one transaction); return the change.

    Returns None when the order is not one of ours. Raises StreamProtocolError when the
    message cannot be read (alpaca-py's ``TradeUpdate`` model).
    """
    event = parse_trade_update(data)
    book = accounts_for(db, accounts).book(config)
    with db.transaction() as conn:
        report = event.report
        if not books_repo.is_ours(conn, config["id"], report.client_order_id):
            # a bracket leg (Alpaca's own id) is ours by its broker_order_id
            ours = books_repo.client_order_id_of(conn, config["id"], event.broker_order_id)
            if ours is None:
                logger.info(
                    "trade update of an order that is not ours skipped: %s",
                    report.client_order_id,
                    extra={"action": "trade_update_skipped", "config_id": config["id"]},
                )
                return None
            report = _renamed(report, ours)
        recorded = ledger.record_report(conn, book, report, now or event.at)
    logger.info(
        "trade update %s of %s recorded",
        event.event,
        report.client_order_id,
        extra={
            "action": "trade_update",
            "config_id": config["id"],
            "client_order_id": report.client_order_id,
            "execution_id": event.execution_id,
            "fills": 0 if recorded is None else len(recorded.new_fills),
        },
    )
    return recorded


def _renamed(report: BrokerOrder, client_order_id: str) -> BrokerOrder:
    """The report under our id of the order (a leg), its fills' trade_ids with it."""
    fills = tuple(
        replace(f, trade_id=f"{client_order_id}-q{f.cumulative_qty.normalize():f}")
        if f.cumulative_qty is not None
        else f
        for f in report.fills
    )
    return replace(report, client_order_id=client_order_id, fills=fills)


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt`` (≥ 1) after failures: 1, 2, 4 … ≤ MAX_BACKOFF.

    Exponential with equal jitter (alpaca-py's ``reconnect_delay``): within [d/2, d].
    """
    return reconnect_delay(attempt, MIN_BACKOFF, MAX_BACKOFF)


Observer = Callable[[str, dict[str, Any]], None]


class TradeUpdatesListener:
    """Listen to one config's trade_updates until ``stop``: record events, reconnect, catch up.

    ``run()`` is the coroutine. ``credentials`` default to the config's stored ones (read at
    each connect, so new keys are picked up); ``url_for`` maps them to the stream's address
    (default ``stream_url``); ``catch_up(config_id)`` is the poll run after each connect
    (default ``order_sync.sync_open_orders`` for the config); ``sleep`` waits between attempts.
    ``observe(what, detail)`` hears ``connected``, ``caught_up``, ``recorded``, ``failed``
    (detail ``reason``: ``auth``, ``disconnected``, ``error``) and ``waiting`` (detail
    ``seconds``) — the process logs them; tests follow them.
    """

    def __init__(
        self,
        db: Database,
        config: dict[str, Any],
        *,
        credentials: Callable[[], AlpacaCredentials] | None = None,
        url_for: Callable[[AlpacaCredentials], str] = stream_url,
        catch_up: Callable[[Any], Any] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        observe: Observer | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts_for(db, accounts)
        self.config = config
        self.config_id = config["id"]
        self._credentials = credentials or self._stored_credentials
        self._url_for = url_for
        self._catch_up = catch_up or self._sync
        self._sleep = sleep
        self._observe = observe or (lambda what, detail: None)
        self._stopped = asyncio.Event()
        self.attempts = 0  # consecutive failed attempts

    def stop(self) -> None:
        """Ask ``run`` to end (it closes the connection); call from the listener's loop."""
        self._stopped.set()

    async def run(self) -> None:
        """Connect, listen and record until stopped; every failure is logged and retried."""
        extra = {"config_id": self.config_id}
        while not self._stopped.is_set():
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except BrokerAuthFailed as error:
                self._failed("auth", error, logging.ERROR)
            except BrokerNotAvailable as error:  # no keys, or they cannot be read
                self._failed("auth", error, logging.ERROR)
            except (WebSocketException, OSError, TimeoutError) as error:
                self._failed("disconnected", error, logging.WARNING)
            except Exception as error:  # never let one account stop the process
                logger.exception(
                    "trade_updates listener error: %s", error, extra={"action": "stream_error", **extra}
                )
                self._failed("error", error, None)
            if self._stopped.is_set():
                break
            self.attempts += 1
            wait = backoff(self.attempts)
            self._observe("waiting", {"seconds": wait, "attempt": self.attempts})
            await self._wait(wait)

    async def _listen_once(self) -> None:
        credentials = await asyncio.to_thread(self._credentials)
        url = self._url_for(credentials)
        async with TradeUpdatesConnection(url, credentials) as stream:
            self.attempts = 0
            logger.info(
                "listening to Alpaca trade_updates (%s)",
                url,
                extra={"action": "stream_connected", "config_id": self.config_id},
            )
            self._observe("connected", {"url": url})
            counts = await asyncio.to_thread(self._catch_up, self.config_id)
            self._observe("caught_up", {"counts": counts})
            stop = asyncio.ensure_future(self._stopped.wait())
            try:
                iterator = stream.__aiter__()
                while True:
                    receive = asyncio.ensure_future(iterator.__anext__())
                    done, _ = await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
                    if receive not in done:
                        receive.cancel()
                        return
                    data = receive.result()
                    try:
                        recorded = await asyncio.to_thread(
                            record_trade_update, self.db, self.config, data, accounts=self.accounts
                        )
                    except StreamProtocolError as error:
                        logger.warning(
                            "trade update skipped: %s",
                            error,
                            extra={"action": "trade_update_unreadable", "config_id": self.config_id},
                        )
                        continue
                    except Exception as error:  # e.g. the database: keep listening, the poll catches up
                        isolated_failure("stream_record", self.config_id, error)
                        continue
                    self._observe(
                        "recorded",
                        {
                            "event": data.get("event"),
                            "fills": 0 if recorded is None else len(recorded.new_fills),
                            "ours": recorded is not None,
                        },
                    )
            finally:
                stop.cancel()

    async def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            pass

    def _failed(self, reason: str, error: BaseException, level: int | None) -> None:
        if level is not None:
            logger.log(
                level,
                "trade_updates of config %s: %s: %s",
                self.config_id,
                reason,
                error,
                extra={"action": f"stream_{reason}", "config_id": self.config_id},
            )
        self._observe("failed", {"reason": reason, "error": str(error)})

    def _stored_credentials(self) -> AlpacaCredentials:
        from viewzenix.services.broker_credentials import load_alpaca_credentials

        return load_alpaca_credentials(self.db, self.config_id)

    def _sync(self, config_id: uuid.UUID) -> dict[str, int]:
        from viewzenix.services.order_sync import sync_open_orders

        try:
            return sync_open_orders(self.db, config_id=config_id, accounts=self.accounts)
        except Exception as error:  # logged and counted; listen anyway, the periodic poll tries again
            isolated_failure("stream_catch_up", config_id, error)
            return {}
