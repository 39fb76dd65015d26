"""The stream process: ``python -m viewzenix.streams`` (Procfile ``streams``, started by ``make run``).

Listens to Alpaca's ``trade_updates`` for every config that trades through Alpaca and has open
orders or recent activity (``services.trade_updates``), one listener per account, all on one
event loop; every ``STREAM_REFRESH_SECONDS`` it starts listeners for configs that now need one
and stops those that no longer do. Events are recorded as they arrive; after each (re)connect
the listener runs the config's order poll once to catch up. The worker's periodic poll
(``ORDER_SYNC_CRON``) stays the fallback, so this process being down delays updates, never
loses them.

Why a process of its own and not a thread of the worker: Alpaca allows one stream connection
per account, and workers are scaled out (several processes would fight over it); its life
(long-lived sockets, reconnects) has nothing in common with the job loop's graceful stop; and
one event loop serves every account. Run exactly one: a Postgres session advisory lock
(``STREAMS_LOCK``) makes sure of it. A second ``streams`` process (a second container, a
deployment overlap) logs that another one holds the lock and waits as a standby, taking over
within ``LOCK_RETRY_SECONDS`` once the first exits or loses its database connection (the lock
goes with the session). SIGTERM/SIGINT close the sockets and exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

import psycopg

from config import ConfigError, load_config
from viewzenix.db import Database
from viewzenix.logs import configure_logging
from viewzenix.services.accounts import Accounts, accounts_for
from viewzenix.services.trade_updates import TradeUpdatesListener, configs_to_stream

logger = logging.getLogger(__name__)

STREAM_REFRESH_SECONDS = 15.0  # how often the set of configs to listen to is read again
# One streams process per database: Alpaca allows one trade_updates connection per account.
STREAMS_LOCK = "viewzenix:streams"
LOCK_RETRY_SECONDS = 5.0  # a standby tries the lock again this often; the holder checks it too

ListenerFactory = Callable[[Database, dict[str, Any]], TradeUpdatesListener]


class StreamManager:
    """Keep one running ``TradeUpdatesListener`` per config ``configs_to_stream`` returns.

    ``refresh()`` starts and stops listeners to match; ``run()`` refreshes every
    ``refresh_seconds`` until ``stop()``. ``listener_for`` builds a listener (tests point it at
    a fake); ``configs`` lists the configs to listen to (default ``configs_to_stream``). A
    failed read of the configs is logged and tried again at the next refresh.
    """

    def __init__(
        self,
        db: Database,
        *,
        listener_for: ListenerFactory | None = None,
        refresh_seconds: float = STREAM_REFRESH_SECONDS,
        configs: Callable[[Database], list[dict[str, Any]]] | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts_for(db, accounts)
        self.configs = configs or (lambda db: configs_to_stream(db, self.accounts))
        self.listener_for = listener_for or (
            lambda db, config: TradeUpdatesListener(db, config, accounts=self.accounts)
        )
        self.refresh_seconds = refresh_seconds
        self.listeners: dict[Any, tuple[TradeUpdatesListener, asyncio.Task[None]]] = {}
        self._stopped = asyncio.Event()

    async def refresh(self) -> None:
        try:
            configs = await asyncio.to_thread(self.configs, self.db)
        except Exception as error:
            logger.warning(
                "could not read the configs to stream: %s", error, extra={"action": "streams_refresh"}
            )
            return
        wanted = {config["id"]: config for config in configs}
        for config_id in [c for c in self.listeners if c not in wanted]:
            await self._stop_one(config_id)
        for config_id, config in wanted.items():
            current = self.listeners.get(config_id)
            if current is not None and not current[1].done():
                continue
            listener = self.listener_for(self.db, config)
            task = asyncio.create_task(listener.run(), name=f"trade_updates:{config_id}")
            self.listeners[config_id] = (listener, task)
            logger.info(
                "listening to trade_updates of config %s",
                config_id,
                extra={"action": "stream_started", "config_id": config_id},
            )

    async def run(self) -> None:
        """Refresh now and every ``refresh_seconds`` until ``stop``; then stop every listener."""
        try:
            while not self._stopped.is_set():
                await self.refresh()
                try:
                    await asyncio.wait_for(self._stopped.wait(), self.refresh_seconds)
                except TimeoutError:
                    pass
        finally:
            for config_id in list(self.listeners):
                await self._stop_one(config_id)

    def stop(self) -> None:
        self._stopped.set()

    async def _stop_one(self, config_id: Any) -> None:
        listener, task = self.listeners.pop(config_id)
        listener.stop()
        try:
            await asyncio.wait_for(task, 10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        except Exception:  # the listener's own failure was logged by it
            logger.exception("trade_updates listener of %s ended with an error", config_id)
        logger.info(
            "stopped listening to trade_updates of config %s",
            config_id,
            extra={"action": "stream_stopped", "config_id": config_id},
        )


async def _wait(stopped: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopped.wait(), seconds)
    except TimeoutError:
        pass


async def take_streams_lock(
    database_url: str, stopped: asyncio.Event, retry_seconds: float = LOCK_RETRY_SECONDS
) -> psycopg.AsyncConnection[Any] | None:
    """Return a connection holding the ``STREAMS_LOCK`` session lock, waiting while another has it.

    Returns None when ``stopped`` is set first. Database errors while waiting are logged and
    retried. The lock lasts as long as the returned connection's session.
    """
    announced = False
    while not stopped.is_set():
        try:
            conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
            row = await (
                await conn.execute("select pg_try_advisory_lock(hashtext(%s))", (STREAMS_LOCK,))
            ).fetchone()
            if row and row[0]:
                logger.info("holding the streams lock", extra={"action": "streams_lock_taken"})
                return conn
            await conn.close()
            if not announced:
                logger.warning(
                    "another streams process is running (it holds the streams lock): waiting as a "
                    "standby; Alpaca allows one trade_updates connection per account",
                    extra={"action": "streams_lock_busy"},
                )
                announced = True
        except psycopg.Error as error:
            logger.warning(
                "could not take the streams lock: %s", error, extra={"action": "streams_lock_error"}
            )
        await _wait(stopped, retry_seconds)
    return None


async def run_exclusive(
    database_url: str,
    manager_factory: Callable[[], StreamManager],
    stopped: asyncio.Event,
    retry_seconds: float = LOCK_RETRY_SECONDS,
) -> None:
    """Run a ``StreamManager`` only while this process holds the streams lock, until ``stopped``.

    Each ``retry_seconds`` the lock's connection is checked; when it is lost (a database restart
    ends the session and its lock) the listeners stop and the lock is taken again first.
    """
    while not stopped.is_set():
        conn = await take_streams_lock(database_url, stopped, retry_seconds)
        if conn is None:
            return
        manager = manager_factory()
        running = asyncio.create_task(manager.run())
        try:
            while not stopped.is_set() and not running.done():
                await _wait(stopped, retry_seconds)
                try:
                    await conn.execute("select 1")
                except psycopg.Error as error:
                    logger.warning(
                        "lost the streams lock's connection (%s): stopping the listeners",
                        error,
                        extra={"action": "streams_lock_lost"},
                    )
                    break
        finally:
            manager.stop()
            await running
            await conn.close()


def main() -> None:
    """Build the runtime from the environment and listen until SIGINT/SIGTERM."""
    from viewzenix.runtime import build_runtime

    try:
        config = load_config()
    except ConfigError as error:  # a bad setting stops the process with its name, not a traceback
        raise SystemExit(f"configuration error: {error}") from None
    configure_logging(config.LOG_LEVEL, config.LOG_FORMAT)
    runtime = build_runtime(config)

    async def serve() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopped.set)
        await run_exclusive(
            runtime.database_url, lambda: StreamManager(runtime.db, accounts=runtime.accounts), stopped
        )

    logger.info("stream process starting", extra={"action": "streams_start"})
    try:
        asyncio.run(serve())
    finally:
        runtime.close()
        logger.info("stream process stopped", extra={"action": "streams_stop"})


if __name__ == "__main__":
    main()
