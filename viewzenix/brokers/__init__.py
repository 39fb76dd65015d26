"""Broker adapters behind one port (``viewzenix.brokers.base.Broker``), picked per webhook config."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from viewzenix.brokers.base import Broker, BrokerError, BrokerName

if TYPE_CHECKING:
    from viewzenix.brokers.alpaca import AlpacaCredentials
    from viewzenix.db import Database


class BrokerNotAvailable(BrokerError):
    """This config's broker cannot be used: its credentials are missing or unreadable."""


def broker_for(
    db: Database,
    webhook_config: dict[str, Any],
    *,
    clock: Callable[[], datetime] | None = None,
    credentials: Callable[[], AlpacaCredentials] | None = None,
) -> Broker:
    """Return the broker adapter of a ``webhook_configs`` row (by its ``broker``, a BrokerName).

    ``clock``: UTC now for the simulated broker (tests). ``credentials`` reads the config's
    Alpaca keys (``services.accounts`` passes our encrypted store's reader: adapters never read
    our tables). Raises BrokerNotAvailable when the config's broker cannot be used (alpaca
    without credentials, or without the server key to read them). Every call of the adapter
    returned is timed and its errors counted (``viewzenix.brokers.instrumented``).
    """
    from viewzenix.brokers.instrumented import instrumented

    name = BrokerName(webhook_config["broker"])
    if name is BrokerName.SIMULATED:
        from viewzenix.brokers.simulated import SimulatedBroker

        paper = SimulatedBroker.for_config(
            db, webhook_config, clock=clock, market_data=market_data_for(webhook_config, credentials)
        )
        return instrumented(paper, name.value)
    from viewzenix.brokers.alpaca import AlpacaBroker

    if credentials is None:
        raise BrokerNotAvailable("this config trades through Alpaca and no credentials were given")
    return instrumented(AlpacaBroker(credentials(), config_id=webhook_config["id"]), name.value)


_EXCHANGES: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}


def market_data_for(
    webhook_config: dict[str, Any], credentials: Callable[[], AlpacaCredentials] | None = None
) -> Any:
    """Return the ``MarketData`` adapter of a config's ``market_data_source``, or None.

    ``tradingview`` (bars pushed on the webhook URL) and ``replay`` (driven by a script or a
    test, which hands the paper broker its adapter itself): None, the paper exchange prices
    from the bars it was given. ``ccxt:<id>``: that exchange's public data (one adapter per
    process and symbol map: its markets are loaded once). ``alpaca``: Alpaca's data with the
    config's Alpaca keys read by ``credentials``, or None (logged) when it has none.
    """
    import logging

    source = webhook_config.get("market_data_source") or "tradingview"
    symbols = dict(webhook_config.get("market_data_symbols") or {})
    if source.startswith("ccxt:"):
        from viewzenix.marketdata.exchanges import ExchangeMarketData

        key = (source, tuple(sorted(symbols.items())))
        if key not in _EXCHANGES:
            _EXCHANGES[key] = ExchangeMarketData(source.removeprefix("ccxt:"), symbols=symbols)
        return _EXCHANGES[key]
    if source == "alpaca":
        from viewzenix.marketdata.alpaca import AlpacaMarketData

        try:
            if credentials is None:
                raise BrokerNotAvailable("no Alpaca keys were given for its market data")
            keys = credentials()
        except BrokerNotAvailable as error:
            logging.getLogger(__name__).warning(
                "no Alpaca market data for config %s: %s",
                webhook_config["id"],
                error,
                extra={"action": "market_data_unavailable", "config_id": webhook_config["id"]},
            )
            return None
        return AlpacaMarketData(keys.key_id, keys.secret_key, symbols=symbols)
    return None
