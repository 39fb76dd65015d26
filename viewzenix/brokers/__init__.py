"""Broker adapters behind one port (``viewzenix.brokers.base.Broker``), picked per webhook config."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from viewzenix.brokers.base import Broker, BrokerError, BrokerName

if TYPE_CHECKING:
    from viewzenix.db import Database


class BrokerNotAvailable(BrokerError):
    """This config's broker has no adapter here: switch the config's broker to simulated to paper-trade."""


def broker_for(
    db: Database, webhook_config: dict[str, Any], *, clock: Callable[[], datetime] | None = None
) -> Broker:
    """Return the broker adapter of a ``webhook_configs`` row (by its ``broker``, a BrokerName).

    ``clock``: UTC now for the simulated broker (tests). Raises BrokerNotAvailable for a broker
    without an adapter yet (alpaca).
    """
    from viewzenix.brokers.simulated import SimulatedBroker

    name = BrokerName(webhook_config["broker"])
    if name is BrokerName.SIMULATED:
        return SimulatedBroker.for_config(db, webhook_config, clock=clock)
    raise BrokerNotAvailable(
        f"{name} broker not available yet: this config trades through {name}, and that adapter is "
        "not built yet; switch the config's broker to simulated to paper-trade"
    )
