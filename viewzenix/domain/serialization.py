"""Read a stored signal back: the inverse of ``viewzenix.domain.parsing.signal_to_dict``.

The ``signals.signal`` jsonb column holds ``signal_to_dict(signal)``: every ``Signal`` field
under its own name, Decimals as strings, datetimes as ISO 8601 UTC, enums as their values,
``take_profit``/``stop_loss`` as dicts of their non-None fields. Pure: no Flask, no psycopg.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeVar

from viewzenix.domain.model import (
    Action,
    OrderType,
    QuantityType,
    Sentiment,
    Signal,
    StopLoss,
    TakeProfit,
    TimeInForce,
)

E = TypeVar("E", bound=Enum)

_DECIMALS = (
    "quantity",
    "limit_price",
    "stop_price",
    "trail_amount",
    "trail_percent",
    "signal_price",
    "target_position",
)
_TEXTS = ("interval", "exchange", "alert_id", "comment")


def signal_from_dict(data: Mapping[str, Any]) -> Signal:
    """Rebuild a ``Signal`` from its stored dict form; missing or null keys take the defaults.

    ``ticker`` and ``action`` are required. Decimals accept strings and numbers; datetimes ISO
    8601 (``Z`` or an offset; a naive time is read as UTC); enums their values. Unknown keys
    are ignored. Raises ValueError naming the field when a value cannot be read.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a stored signal must be an object, got {type(data).__name__}")
    ticker = data.get("ticker")
    if not ticker:
        raise ValueError("stored signal has no ticker")
    action = _enum(Action, data.get("action"), "action")
    if action is None:
        raise ValueError("stored signal has no action")
    values: dict[str, Any] = {name: _decimal(data.get(name), name) for name in _DECIMALS}
    values.update({name: _text(data.get(name)) for name in _TEXTS})
    extras = data.get("extras")
    extended_hours = data.get("extended_hours")
    return Signal(
        ticker=str(ticker),
        action=action,
        sentiment=_enum(Sentiment, data.get("sentiment"), "sentiment"),
        quantity_type=_enum(QuantityType, data.get("quantity_type"), "quantity_type"),
        order_type=_enum(OrderType, data.get("order_type"), "order_type"),
        time_in_force=_enum(TimeInForce, data.get("time_in_force"), "time_in_force"),
        extended_hours=None if extended_hours is None else bool(extended_hours),
        signal_time=_datetime(data.get("signal_time"), "signal_time"),
        take_profit=_take_profit(data.get("take_profit")),
        stop_loss=_stop_loss(data.get("stop_loss")),
        cancel_order_type=_enum(OrderType, data.get("cancel_order_type"), "cancel_order_type"),
        source_format=str(data.get("source_format") or "traderspost"),
        extras=dict(extras) if isinstance(extras, Mapping) else {},
        **values,
    )


def _take_profit(data: Any) -> TakeProfit | None:
    if not isinstance(data, Mapping):
        return None
    return TakeProfit(
        limit_price=_decimal(data.get("limit_price"), "take_profit.limit_price"),
        percent=_decimal(data.get("percent"), "take_profit.percent"),
        amount=_decimal(data.get("amount"), "take_profit.amount"),
    )


def _stop_loss(data: Any) -> StopLoss | None:
    if not isinstance(data, Mapping):
        return None
    return StopLoss(
        type=_enum(OrderType, data.get("type"), "stop_loss.type") or OrderType.STOP,
        stop_price=_decimal(data.get("stop_price"), "stop_loss.stop_price"),
        percent=_decimal(data.get("percent"), "stop_loss.percent"),
        amount=_decimal(data.get("amount"), "stop_loss.amount"),
        limit_price=_decimal(data.get("limit_price"), "stop_loss.limit_price"),
    )


def _decimal(value: Any, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"stored signal field {name} is not a number: {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"stored signal field {name} is not a number: {value!r}") from None


def _enum(kind: type[E], value: Any, name: str) -> E | None:
    if value is None or value == "":
        return None
    try:
        return kind(str(value).lower())
    except ValueError:
        raise ValueError(f"stored signal field {name} has unknown value {value!r}") from None


def _datetime(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"stored signal field {name} is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
