"""The daily loss limit in the execution job, and its read side for the API.

``enforce`` is called by ``services.execution`` inside the plan transaction, right after the
engine planned. It costs no statement when the config has no limit or the plan places no entry
(exits always pass), and one statement (``loss_limits_repo.SESSION_DAY``) otherwise; only the
first breach of a session adds its record and notification (two more, once per session).
The rule itself is ``domain.loss_limit`` (pure); the P&L query is ``repositories.loss_limits``.

Flatten on a breach: ``LossLimitOutcome.flatten_due`` is true for the job whose plan found the
session's first breach on a config with ``flatten_on_loss_limit``. The execution job, after its
plan transaction commits (never inside it: flattening calls the broker), hands that config to
``services.flatten.flatten_config`` — the one place the flatten is started from.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from viewzenix import notifications
from viewzenix.db import Connection, Database
from viewzenix.domain import loss_limit
from viewzenix.domain.engine import Plan
from viewzenix.repositories import loss_limits as loss_limits_repo
from viewzenix.services.common import Caller

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LossLimitOutcome:
    """What ``enforce`` did: the plan to run, and the breach it recorded first (or None)."""

    plan: Plan
    first_breach: dict[str, Any] | None = None

    @property
    def flatten_due(self) -> bool:
        """True once per session: this job found the breach and the config flattens on it."""
        return self.first_breach is not None and bool(self.first_breach["flatten_on_loss_limit"])


def enforce(
    conn: Connection,
    config: dict[str, Any],
    plan: Plan,
    *,
    symbol: str,
    signal_id: uuid.UUID,
    now: datetime,
) -> LossLimitOutcome:
    """Deny ``plan``'s entries ``daily_loss_limit`` when ``config``'s limit is reached this session.

    ``config``: a ``webhook_configs`` row (``daily_loss_limit`` null = off). ``symbol`` picks the
    session (``domain.loss_limit.session_bounds``); ``now``: UTC. The first breach of a session
    is recorded (``public.loss_limit_breaches``) and notified (event ``loss_limit_reached``).
    """
    limit = config.get("daily_loss_limit")
    if limit is None or not loss_limit.has_entries(plan):
        return LossLimitOutcome(plan)
    start, end = loss_limit.session_bounds(now, symbol)
    days, recorded = loss_limits_repo.session_day(conn, config["id"], start)
    decision = loss_limit.decide(
        limit=Decimal(limit),
        pnl=loss_limit.session_pnl(days),
        already_breached=recorded,
        session_start=start,
        session_end=end,
    )
    plan = loss_limit.deny_entries(plan, decision)
    if not decision.breached or recorded:
        return LossLimitOutcome(plan)
    breach = loss_limits_repo.record_breach(
        conn,
        config_id=config["id"],
        user_id=config["user_id"],
        session_start=start,
        session_end=end,
        loss_limit=decision.limit,
        pnl=decision.pnl,
        symbol=symbol,
        signal_id=signal_id,
        flatten_on_loss_limit=bool(config.get("flatten_on_loss_limit")),
    )
    if breach is None:  # another job recorded it first
        return LossLimitOutcome(plan)
    logger.warning(
        "daily loss limit reached: P&L %s, limit %s",
        decision.pnl,
        decision.limit,
        extra={"action": "loss_limit_reached", "config_id": config["id"], "signal_id": signal_id},
    )
    _notify(conn, config, breach)
    return LossLimitOutcome(plan, breach)


def _notify(conn: Connection, config: dict[str, Any], breach: dict[str, Any]) -> int:
    preferences = config.get("notification_preferences")
    if not preferences or not preferences.get("destinations"):
        return 0
    flatten = " The config's positions are being closed." if breach["flatten_on_loss_limit"] else ""
    return notifications.notify(
        conn,
        preferences,
        notifications.LOSS_LIMIT_REACHED,
        config_id=config["id"],
        title=f"Daily loss limit reached: {config.get('name') or config['id']}",
        body=(
            f"P&L since the session started ({breach['session_start']:%Y-%m-%d %H:%M} UTC) is "
            f"{_money(breach['pnl'])}, at or past the limit of {_money(breach['loss_limit'])}. "
            f"Entries are denied until {breach['session_end']:%Y-%m-%d %H:%M} UTC; exits still run." + flatten
        ),
        signal_id=breach["signal_id"],
    )


def active_breaches(db: Database, caller: Caller, config_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Return the caller's breaches whose session has not ended (RLS: only their own)."""
    with db.transaction(caller.claims) as conn:
        return loss_limits_repo.active(conn, config_id)


def _money(value: Decimal) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01')):f}"
