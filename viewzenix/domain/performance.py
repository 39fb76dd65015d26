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
class CapitalChange:
    """Money put into (``amount`` > 0) or taken out of an account at ``at``.

    A webhook's initial starting cash is one too, at the account's start (its creation, or its
    first fill or change if earlier); later ones are recorded when the starting cash changes.
    """

    config_id: uuid.UUID
    at: datetime
    amount: Decimal


@dataclass(frozen=True)
class EquityPoint:
    """Equity at ``at``; ``capital``: Σ capital changes so far (so equity − capital = P&L)."""

    at: datetime
    equity: Decimal
    capital: Decimal = _ZERO
    kind: str = "fill"  # "fill" or "capital"


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


def equity_curve(
    fills: Iterable[Fill], starting_cash: Decimal = _ZERO, capital: Iterable[CapitalChange] = ()
) -> list[EquityPoint]:
    """Return the equity after each capital change and each fill, in time order.

    ``starting_cash``: cash before any event (the sum of the accounts' starting cash when the
    caller gives no ``capital``). ``capital``: deposits and withdrawals (oldest first), each
    applied before the fills of the same instant and drawn as a point of kind "capital"; the
    fills keep their input order.
    """
    cash = starting_cash
    invested = starting_cash
    held: dict[tuple[uuid.UUID, str], Decimal] = {}
    mark: dict[tuple[uuid.UUID, str], Decimal] = {}
    value = _ZERO  # Σ qty * mark, kept incrementally
    points: list[EquityPoint] = []
    pending = list(capital)
    pending.reverse()

    def deposit(change: CapitalChange) -> None:
        nonlocal cash, invested
        cash += change.amount
        invested += change.amount
        points.append(EquityPoint(change.at, cash + value, invested, "capital"))

    for fill in fills:
        while pending and pending[-1].at <= fill.filled_at:
            deposit(pending.pop())
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
        points.append(EquityPoint(fill.filled_at, cash + value, invested))
    while pending:
        deposit(pending.pop())
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


@dataclass(frozen=True)
class Performance:
    """Figures of closed trades and of the equity curve (money in account currency).

    A win is a trade whose ``net_pnl`` > 0, a loss one whose ``net_pnl`` < 0 (after
    commissions). ``win_rate`` = wins / trades; ``profit_factor`` = Σ wins / |Σ losses| (None
    without a loss); ``avg_win`` / ``avg_loss`` = the mean net P&L of wins / of losses (a loss
    is negative). ``max_drawdown``: the largest fall of P&L (equity − capital put in) from its
    running peak (0 before any gain), marked at fill prices; ``max_drawdown_pct``: that fall
    over the equity at the peak (capital then + peak P&L), a fraction. ``exposure_seconds``:
    the time at least one trade was open (union of [opened_at, closed_at] of closed trades);
    ``exposure_pct``: that over ``period_seconds`` = last close − first open (None if 0).
    """

    trade_count: int
    wins: int
    losses: int
    net_pnl: Decimal
    gross_pnl: Decimal
    commission: Decimal
    win_rate: Decimal | None
    profit_factor: Decimal | None
    avg_win: Decimal | None
    avg_loss: Decimal | None
    largest_win: Decimal | None
    largest_loss: Decimal | None
    max_drawdown: Decimal
    max_drawdown_pct: Decimal | None
    exposure_seconds: Decimal
    period_seconds: Decimal
    exposure_pct: Decimal | None


def performance(trades: list[ClosedTrade], curve: list[EquityPoint]) -> Performance:
    """Return the ``Performance`` of ``trades`` (any order) and ``curve`` (time order)."""
    won = [t.net_pnl for t in trades if t.net_pnl > 0]
    lost = [t.net_pnl for t in trades if t.net_pnl < 0]
    count = len(trades)
    max_dd, max_dd_pct = _ZERO, None
    peak = _ZERO
    for point in curve:
        pnl = point.equity - point.capital
        peak = max(peak, pnl)
        fall = peak - pnl
        max_dd = max(max_dd, fall)
        base = point.capital + peak
        if base > 0:
            pct = fall / base
            max_dd_pct = pct if max_dd_pct is None else max(max_dd_pct, pct)
    exposure = _ZERO
    period = _ZERO
    if trades:
        spans = sorted((t.opened_at, t.closed_at) for t in trades)
        start, end = spans[0]
        for opened, closed in spans[1:]:
            if opened > end:
                exposure += _seconds(end - start)
                start, end = opened, closed
            else:
                end = max(end, closed)
        exposure += _seconds(end - start)
        period = _seconds(max(t.closed_at for t in trades) - spans[0][0])
    return Performance(
        trade_count=count,
        wins=len(won),
        losses=len(lost),
        net_pnl=sum((t.net_pnl for t in trades), _ZERO),
        gross_pnl=sum((t.gross_pnl for t in trades), _ZERO),
        commission=sum((t.commission for t in trades), _ZERO),
        win_rate=Decimal(len(won)) / count if count else None,
        profit_factor=sum(won, _ZERO) / -sum(lost, _ZERO) if lost else None,
        avg_win=sum(won, _ZERO) / len(won) if won else None,
        avg_loss=sum(lost, _ZERO) / len(lost) if lost else None,
        largest_win=max(won) if won else None,
        largest_loss=min(lost) if lost else None,
        max_drawdown=max_dd,
        max_drawdown_pct=max_dd_pct,
        exposure_seconds=exposure,
        period_seconds=period,
        exposure_pct=exposure / period if period else None,
    )


def _seconds(delta) -> Decimal:
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 1_000_000
