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

        return instrumented(SimulatedBroker.for_config(db, webhook_config, clock=clock), name.value)
    from viewzenix.brokers.alpaca import AlpacaBroker

    if credentials is None:
        raise BrokerNotAvailable("this config trades through Alpaca and no credentials were given")
    return instrumented(AlpacaBroker(credentials(), config_id=webhook_config["id"]), name.value)
