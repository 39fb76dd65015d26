"""The daily loss limit: a config's P&L since its session's start, and what it denies.

Pure functions of their arguments (no clock, no I/O). A config with a ``daily_loss_limit`` (money,
account currency, > 0) has its entries denied ``daily_loss_limit`` once its P&L since the start of
the trading session reaches minus that limit, until the session ends; exits always run.

The session (``session_bounds``): for a crypto symbol (24/7, no exchange session), the UTC day,
midnight to midnight. For any other symbol, its exchange's trading day as ``exchange_calendars``
gives it (``domain.sessions``): from the previous session's close to the next close (NYSE: 16:00
New York, 13:00 on early-close days; weekends and holidays belong to the next session). So after
the close a new session starts, and pre-market trades count toward the coming session.

The P&L of a session (``symbol_pnl``), per symbol, from our own books::

    pnl = cash_flow + qty × mark − carried × start_price

- ``cash_flow``: what the session's fills paid and received (sells + , buys −, commissions −);
- ``qty × mark``: the position now, marked at its last price (``positions.last_price``: the last
  alert price or bar close); without a mark, at its average entry price (no unrealised P&L known);
- ``carried`` = ``qty − filled_qty``: the part held since before the session; it is valued at the
  session's start price (the close of the last bar before the start), else at its average entry
  price — then its P&L since entry counts, the best price we have.
A position opened and closed within the session has exactly its realised P&L less commissions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from viewzenix.domain import sessions
from viewzenix.domain.engine import Denial, OrderPurpose, Plan

DENIAL_CODE = "daily_loss_limit"


@dataclass(frozen=True)
class SymbolDay:
    """One symbol of a config in one session, as our books hold it.

    ``qty``: the signed position now (short < 0). ``mark``: its last price, or None.
    ``avg_entry_price``: the position's average entry. ``filled_qty``: the signed quantity the
    session's fills added (buys +, net of a crypto buy's fee in coins; sells −). ``cash_flow``: the
    session's fills' cash (sells +, buys −, commissions −), account currency. ``start_price``: the
    symbol's price at the session's start (a bar close), or None.
    """

    symbol: str
    qty: Decimal = Decimal(0)
    mark: Decimal | None = None
    avg_entry_price: Decimal = Decimal(0)
    filled_qty: Decimal = Decimal(0)
    cash_flow: Decimal = Decimal(0)
    start_price: Decimal | None = None


@dataclass(frozen=True)
class LossLimitDecision:
    """Whether entries are denied: ``breached`` when ``pnl`` ≤ −``limit`` or a breach of this
    session was recorded before (it holds until the session ends, even if prices recover)."""

    limit: Decimal
    pnl: Decimal
    breached: bool
    session_start: datetime
    session_end: datetime


def session_bounds(now: datetime, symbol: str | None) -> tuple[datetime, datetime]:
    """Return ``(start, end)`` (UTC) of the trading session ``now`` belongs to, for ``symbol``.

    Crypto: the UTC day. Otherwise the exchange's trading day, previous close → next close
    (``domain.sessions``); past the calendar's range (about a year ahead), the UTC day.
    ``now`` must be timezone-aware.
    """
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if symbol is not None and sessions.is_crypto(symbol):
        return midnight, midnight + timedelta(days=1)
    end = sessions.session_close_after(now, symbol)
    if end is None:
        return midnight, midnight + timedelta(days=1)
    return sessions.last_session_close(now, symbol), end


def symbol_pnl(day: SymbolDay) -> Decimal:
    """Return one symbol's P&L in the session (account currency); see the module docstring."""
    mark = day.mark if day.mark is not None else day.avg_entry_price
    carried = day.qty - day.filled_qty
    start = day.start_price if day.start_price is not None else day.avg_entry_price
    return day.cash_flow + day.qty * mark - carried * start


def session_pnl(days: Iterable[SymbolDay]) -> Decimal:
    """Return the config's P&L in the session: the sum over its symbols (realised + unrealised)."""
    return sum((symbol_pnl(d) for d in days), Decimal(0))


def decide(
    *,
    limit: Decimal,
    pnl: Decimal,
    already_breached: bool,
    session_start: datetime,
    session_end: datetime,
) -> LossLimitDecision:
    """Decide whether the limit is reached: ``pnl`` ≤ −``limit`` (a loss equal to the limit
    reaches it), or ``already_breached`` in this session. ``limit`` > 0 (account currency)."""
    breached = already_breached or pnl <= -limit
    return LossLimitDecision(limit, pnl, breached, session_start, session_end)


def has_entries(plan: Plan) -> bool:
    """Return whether ``plan`` would place an entry order (the only thing the limit denies)."""
    return any(o.purpose is OrderPurpose.ENTRY for o in plan.orders)


def deny_entries(plan: Plan, decision: LossLimitDecision) -> Plan:
    """Return ``plan`` with its entry orders denied ``daily_loss_limit`` when ``decision.breached``.

    Exits and cancels are kept; the take-profit/stop-loss legs of a denied entry are dropped (a
    leg only exists for an entry that is placed). When no order is left, neither are the open
    orders the plan would have canceled to make room (as the engine does when it denies every
    order). Not breached: ``plan`` unchanged.
    """
    if not decision.breached:
        return plan
    entries = [o for o in plan.orders if o.purpose is OrderPurpose.ENTRY]
    if not entries:
        return plan
    denied = {o.client_order_id for o in entries}
    message = (
        f"daily loss limit {_fmt(decision.limit)} reached: P&L since the session started "
        f"({decision.session_start:%Y-%m-%d %H:%M} UTC) is {_fmt(decision.pnl)}; entries are denied "
        f"until {decision.session_end:%Y-%m-%d %H:%M} UTC (exits still run)"
    )
    kept = tuple(
        o
        for o in plan.orders
        if o.purpose is not OrderPurpose.ENTRY and o.parent_client_order_id not in denied
    )
    return replace(
        plan,
        orders=kept,
        # Cancels make room for the orders placed (engine: none when every order is denied).
        cancel_client_order_ids=plan.cancel_client_order_ids if kept else (),
        denials=plan.denials + tuple(Denial(DENIAL_CODE, message, o) for o in entries),
    )


def _fmt(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):f}"
