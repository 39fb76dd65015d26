"""SQL for the account history: fills in the order they happened, starting cash per config.

Runs on the caller's connection: Row-Level Security restricts the rows to theirs.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from viewzenix.db import Connection

FILLS = """
select config_id, symbol, side, last_qty, last_px, commission, filled_at
from public.fills
where %(config_id)s::uuid is null or config_id = %(config_id)s::uuid
order by filled_at, trade_id
"""

STARTING_CASH = """
select c.id as config_id, coalesce(a.starting_cash, c.starting_cash) as starting_cash
from public.webhook_configs c left join public.accounts a on a.config_id = c.id
where %(config_id)s::uuid is null or c.id = %(config_id)s::uuid
"""


def fills(conn: Connection, config_id: uuid.UUID | None) -> list[dict[str, Any]]:
    """Return the visible fills (one config's, or all) oldest first."""
    return conn.execute(FILLS, {"config_id": config_id}).fetchall()


def starting_cash(conn: Connection, config_id: uuid.UUID | None) -> dict[uuid.UUID, Decimal]:
    """Return config id → starting cash of the visible configs (one, or all)."""
    rows = conn.execute(STARTING_CASH, {"config_id": config_id}).fetchall()
    return {r["config_id"]: r["starting_cash"] for r in rows}
