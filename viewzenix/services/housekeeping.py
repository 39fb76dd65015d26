"""Housekeeping: delete rows whose time is up (run hourly by the worker)."""

from __future__ import annotations

from viewzenix.db import Database
from viewzenix.repositories import idempotency_keys, signal_dedupe

RECONCILIATIONS_KEPT_DAYS = 30
PURGE_RECONCILIATIONS = """
delete from public.reconciliations where started_at < now() - make_interval(days => %(days)s)
"""


def purge_expired(db: Database) -> dict[str, int]:
    """Delete expired idempotency keys, duplicate-alert claims and reconciliations over 30 days old.

    One transaction; returns the counts deleted per kind. Expired claims are dead weight: a new
    claim of the same key takes an expired row over anyway.
    """
    with db.transaction() as conn:
        return {
            "idempotency_keys": idempotency_keys.purge_expired(conn),
            "signal_dedupe": signal_dedupe.purge_expired(conn),
            "reconciliations": conn.execute(
                PURGE_RECONCILIATIONS, {"days": RECONCILIATIONS_KEPT_DAYS}
            ).rowcount,
        }
