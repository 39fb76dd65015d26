"""SQL for our books' account per webhook config: cash as our fills say, commissions paid.

Written only by the ledger; the paper broker keeps its own account (schema ``paper``).

Equity = cash + Σ qty * mark over the config's positions (shorts count with their sign); the
mark is a position's ``last_price``, else its average entry price while no price is known.
``summary`` runs on the caller's connection for the REST API, where Row-Level Security
restricts the rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from viewzenix.db import Connection

ENSURE_ACCOUNT = """
insert into public.accounts (config_id, user_id, starting_cash, cash)
values (%(config_id)s, %(user_id)s, %(starting_cash)s, %(starting_cash)s)
on conflict (config_id) do nothing
"""

GET_ACCOUNT = "select * from public.accounts where config_id = %(config_id)s"

SUMMARY = """
select
    c.id as config_id,
    coalesce(a.starting_cash, c.starting_cash) as starting_cash,
    coalesce(a.cash, c.starting_cash) as cash,
    coalesce(p.positions_value, 0) as positions_value,
    coalesce(a.cash, c.starting_cash) + coalesce(p.positions_value, 0) as equity,
    coalesce(a.commission_paid, 0) as commission_paid,
    coalesce(p.realized_pnl, 0) as realized_pnl,
    coalesce(p.unrealized_pnl, 0) as unrealized_pnl,
    a.updated_at
from public.webhook_configs c
left join public.accounts a on a.config_id = c.id
left join lateral (
    select
        sum(qty * coalesce(last_price, avg_entry_price)) as positions_value,
        sum(realized_pnl) as realized_pnl,
        sum((coalesce(last_price, avg_entry_price) - avg_entry_price) * qty) as unrealized_pnl
    from public.positions where config_id = c.id
) p on true
where c.id = %(config_id)s
"""


@dataclass(frozen=True)
class Account:
    """One ``accounts`` row: cash in account currency."""

    config_id: uuid.UUID
    user_id: uuid.UUID
    starting_cash: Decimal
    cash: Decimal
    commission_paid: Decimal
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Account:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def open_account(
    conn: Connection, *, config_id: uuid.UUID, user_id: uuid.UUID, starting_cash: Decimal
) -> Account:
    """Return the config's account in our books, opening it with ``starting_cash`` if missing.

    Takes no row lock: jobs of one config for different symbols run in parallel and only
    serialise on the account row from their first fill (``positions.record_fill_and_save``, an
    atomic increment)
    to their commit — not for the whole job.
    """
    params = {"config_id": config_id, "user_id": user_id, "starting_cash": starting_cash}
    row = conn.execute(GET_ACCOUNT, params).fetchone()
    if row is None:  # the config's first use
        conn.execute(ENSURE_ACCOUNT, params)
        row = conn.execute(GET_ACCOUNT, params).fetchone()
    return Account.from_row(row)


def summary(conn: Connection, config_id: uuid.UUID) -> dict[str, Any] | None:
    """Return the config's paper account summary, or None when the config is not visible.

    Keys: config_id, starting_cash, cash, positions_value, equity, commission_paid,
    realized_pnl, unrealized_pnl, updated_at (account currency). Before the first trade the account does not
    exist yet: cash = starting_cash from the config's settings and ``updated_at`` is None.
    ``realized_pnl`` excludes commissions, which are paid from cash, so
    equity - starting_cash = realized_pnl + unrealized_pnl - commission_paid.
    """
    return conn.execute(SUMMARY, {"config_id": config_id}).fetchone()
