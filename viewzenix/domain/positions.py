"""Position arithmetic shared by our ledger and the paper broker's books (pure, no I/O).

Positions are signed (short < 0). Prices in the quote currency, quantities in shares, Decimal.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from viewzenix.domain.model import OrderSide

_ZERO = Decimal(0)


class Holding(Protocol):
    """Any frozen dataclass with these fields (a position row of either book)."""

    qty: Decimal
    avg_entry_price: Decimal
    realized_pnl: Decimal
    opened_at: datetime | None


H = TypeVar("H", bound=Holding)


def apply_fill(position: H, side: OrderSide | str, qty: Decimal, px: Decimal, at: datetime) -> H:
    """Return ``position`` after a fill of ``qty`` at ``px`` on ``side``.

    Increase: average entry price weighted by qty; ``opened_at`` = ``at`` when opening from flat.
    Reduction: realised P&L += (px - avg) * closed qty (long) or (avg - px) * closed qty
    (short); commissions are not deducted (they leave cash separately). Flat: avg 0,
    opened_at None. Through zero: the new side opens at ``px``. ``position`` must be a dataclass.
    """
    signed = qty if OrderSide(side) is OrderSide.BUY else -qty
    old = position.qty
    new = old + signed
    avg, realized, opened_at = position.avg_entry_price, position.realized_pnl, position.opened_at
    if old == 0 or (old > 0) == (signed > 0):
        avg = (abs(old) * avg + qty * px) / abs(new)
        if old == 0:
            opened_at = at
    else:
        closed = min(qty, abs(old))
        realized += (px - avg) * closed * (1 if old > 0 else -1)
        if new == 0:
            avg, opened_at = _ZERO, None
        elif (new > 0) != (old > 0):
            avg, opened_at = px, at
    return replace(position, qty=new, avg_entry_price=avg, realized_pnl=realized, opened_at=opened_at)  # type: ignore[type-var]


def cash_delta(side: OrderSide | str, qty: Decimal, px: Decimal, commission: Decimal) -> Decimal:
    """Return the cash change of one fill: buy -(qty*px + commission), sell qty*px - commission."""
    notional = qty * px
    if OrderSide(side) is OrderSide.BUY:
        return -(notional + commission)
    return notional - commission
