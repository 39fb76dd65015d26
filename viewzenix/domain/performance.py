"""Equity history and closed trades, replayed from fills (pure: no Flask, no I/O).

Both read the same input: fills in the order they happened (``Fill``), across one or more
webhook configs. Prices in the quote currency, quantities in shares, Decimal throughout.

Equity after a fill = starting cash + Σ cash deltas so far (``positions.cash_delta``:
commissions included) + Σ qty * mark over the open positions, where a symbol's mark is the
price of its latest fill — the same definition as ``repositories/accounts.py`` with the fill
price standing in for ``last_price``.

A closed trade is one round trip of a (config, symbol) position from flat back to flat; its
gross P&L is realised the way ``positions.apply_fill`` realises it (running average). A fill
that goes through zero closes the trade with the part that reaches flat and opens the next
trade with the rest; its commission is shared between them in proportion to quantity.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from viewzenix.domain.model import OrderSide

_ZERO = Decimal(0)
_BUY = OrderSide.BUY.value


@dataclass(frozen=True)
class Fill:
    """One execution: ``last_qty`` shares at ``last_px`` on ``side``, ``commission`` paid."""

    config_id: uuid.UUID
    symbol: str
    side: str
    last_qty: Decimal
    last_px: Decimal
    commission: Decimal
    filled_at: datetime


@dataclass(frozen=True)
class EquityPoint:
    at: datetime
    equity: Decimal


@dataclass(frozen=True)
class ClosedTrade:
    """A round trip: ``side`` long or short, ``qty`` the total quantity opened.

    ``entry_price`` / ``exit_price``: quantity-weighted averages of the opening and closing
    fills. ``gross_pnl`` before commissions, ``net_pnl`` = gross − ``commission``.
    """

    config_id: uuid.UUID
    symbol: str
    side: str
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    opened_at: datetime
    closed_at: datetime
    gross_pnl: Decimal
    commission: Decimal
    net_pnl: Decimal


def equity_curve(fills: Iterable[Fill], starting_cash: Decimal) -> list[EquityPoint]:
    """Return the equity after each fill (one point per fill, in input order).

    ``starting_cash``: the sum of the accounts' starting cash (one config, or all of a user's).
    """
    cash = starting_cash
    held: dict[tuple[uuid.UUID, str], Decimal] = {}
    mark: dict[tuple[uuid.UUID, str], Decimal] = {}
    value = _ZERO  # Σ qty * mark, kept incrementally
    points: list[EquityPoint] = []
    for fill in fills:
        key = (fill.config_id, fill.symbol)
        qty = held.get(key, _ZERO)
        value -= qty * mark.get(key, _ZERO)
        notional = fill.last_qty * fill.last_px
        if fill.side == _BUY:  # cash as positions.cash_delta moves it (inlined: this loop is hot)
            qty += fill.last_qty
            cash -= notional + fill.commission
        else:
            qty -= fill.last_qty
            cash += notional - fill.commission
        held[key], mark[key] = qty, fill.last_px
        value += qty * fill.last_px
        points.append(EquityPoint(fill.filled_at, cash + value))
    return points


@dataclass
class _Open:
    side: str
    qty: Decimal = _ZERO  # signed
    avg: Decimal = _ZERO  # running average entry price, as positions.apply_fill keeps it
    entry_cost: Decimal = _ZERO
    entry_qty: Decimal = _ZERO
    exit_value: Decimal = _ZERO
    exit_qty: Decimal = _ZERO
    gross: Decimal = _ZERO
    commission: Decimal = _ZERO
    opened_at: datetime | None = None


def closed_trades(fills: Iterable[Fill]) -> list[ClosedTrade]:
    """Return the round trips completed by ``fills``, in the order they closed."""
    open_trades: dict[tuple[uuid.UUID, str], _Open] = {}
    closed: list[ClosedTrade] = []
    for fill in fills:
        key = (fill.config_id, fill.symbol)
        signed = fill.last_qty if fill.side == _BUY else -fill.last_qty
        remaining = fill.last_qty
        trade = open_trades.get(key)
        if trade is not None and (trade.qty > 0) != (signed > 0):
            closing = min(remaining, abs(trade.qty))
            direction = 1 if trade.qty > 0 else -1
            trade.gross += (fill.last_px - trade.avg) * closing * direction
            trade.exit_value += fill.last_px * closing
            trade.exit_qty += closing
            trade.commission += fill.commission * closing / fill.last_qty
            trade.qty += closing * (-direction)
            remaining -= closing
            if trade.qty == 0:
                closed.append(_close(fill, trade))
                del open_trades[key]
                trade = None
        if remaining > 0:
            if trade is None:
                trade = open_trades[key] = _Open(
                    side="long" if signed > 0 else "short", opened_at=fill.filled_at
                )
            trade.avg = (abs(trade.qty) * trade.avg + remaining * fill.last_px) / (abs(trade.qty) + remaining)
            trade.qty += remaining if signed > 0 else -remaining
            trade.entry_cost += fill.last_px * remaining
            trade.entry_qty += remaining
            trade.commission += fill.commission * remaining / fill.last_qty
    return closed


def _close(fill: Fill, trade: _Open) -> ClosedTrade:
    assert trade.opened_at is not None
    return ClosedTrade(
        config_id=fill.config_id,
        symbol=fill.symbol,
        side=trade.side,
        qty=trade.entry_qty,
        entry_price=trade.entry_cost / trade.entry_qty,
        exit_price=trade.exit_value / trade.exit_qty,
        opened_at=trade.opened_at,
        closed_at=fill.filled_at,
        gross_pnl=trade.gross,
        commission=trade.commission,
        net_pnl=trade.gross - trade.commission,
    )


def downsample(points: list[EquityPoint], max_points: int) -> list[EquityPoint]:
    """Return at most ``max_points`` of ``points``, evenly spaced, always keeping the last one."""
    if len(points) <= max_points:
        return points
    step = len(points) / (max_points - 1)
    return [points[int(i * step)] for i in range(max_points - 1)] + [points[-1]]
