"""Housekeeping: delete rows whose time is up (run hourly by the worker)."""

from __future__ import annotations

from viewzenix.db import Database
from viewzenix.repositories import idempotency_keys, signal_dedupe


def purge_expired(db: Database) -> dict[str, int]:
    """Delete expired idempotency keys and duplicate-alert claims; return counts per kind.

    One transaction. Expired claims are dead weight: a new claim of the same key takes an
    expired row over anyway.
    """
    with db.transaction() as conn:
        return {
            "idempotency_keys": idempotency_keys.purge_expired(conn),
            "signal_dedupe": signal_dedupe.purge_expired(conn),
        }
