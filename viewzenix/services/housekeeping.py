"""Housekeeping: delete rows whose time is up (run hourly by the worker)."""

from __future__ import annotations

from viewzenix.db import Database
from viewzenix.repositories import idempotency_keys


def purge_expired(db: Database) -> dict[str, int]:
    """Delete expired idempotency keys; return the counts deleted per kind, in one transaction."""
    with db.transaction() as conn:
        return {"idempotency_keys": idempotency_keys.purge_expired(conn)}
