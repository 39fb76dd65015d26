"""Read a config's market data for the API: its bar messages and its equity series.

Runs as the caller (role ``authenticated`` with their claims): Row-Level Security limits the
rows to theirs, so another user's config answers NotFound.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from viewzenix.db import Database
from viewzenix.exceptions import NotFound
from viewzenix.repositories import bars as bars_repo
from viewzenix.repositories import webhook_configs as configs_repo
from viewzenix.services.common import Caller


def _visible(conn: Any, config_id: uuid.UUID) -> None:
    if configs_repo.get(conn, config_id) is None:
        raise NotFound("No webhook config with this id.")


def equity_series(
    db: Database,
    caller: Caller,
    config_id: uuid.UUID,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 5000,
) -> list[dict[str, Any]]:
    """Return the config's equity points ``{at, equity, cash}`` (one per bar), oldest first.

    ``at``: the bar's close (UTC); money in account currency. Raises NotFound.
    """
    with db.transaction(caller.claims) as conn:
        _visible(conn, config_id)
        return bars_repo.equity_series(conn, config_id, start=start, end=end, limit=limit)


def bar_messages(
    db: Database, caller: Caller, config_id: uuid.UUID, *, limit: int = 100
) -> list[dict[str, Any]]:
    """Return the config's latest bar messages, newest first, refused ones with their reason.

    Raises NotFound.
    """
    with db.transaction(caller.claims) as conn:
        _visible(conn, config_id)
        return bars_repo.list_for_config(conn, config_id, limit)
