"""Refused webhook hits made visible: count them per webhook and kind, list them for its owner."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from viewzenix.db import Database
from viewzenix.repositories import webhook_refusals as repo
from viewzenix.services.common import Caller

logger = logging.getLogger(__name__)

# Plain words for each kind of refusal, shown on the webhook page (the code on hover).
MESSAGES = {
    "token_invalid": "The URL's token is wrong or old (rotated?): the alert was not stored.",
    "rate_limited": "Too many hits from one address: refused before the alert was read.",
    "config_inactive": "The webhook is turned off: every alert is refused.",
}


# A flood of refused hits must not become a flood of writes: per process, a (config, kind) is
# written at most once per WRITE_EVERY seconds; the hits in between are added by the next write
# (a process that stops loses at most one interval's count).
WRITE_EVERY = 1.0
_lock = threading.Lock()
_pending: dict[tuple[uuid.UUID, str], tuple[int, float | None]] = {}


def record(db: Database, config_id: uuid.UUID, code: str) -> None:
    """Count one refused hit on ``config_id`` (backend role). Never raises: a count is not worth a 5xx."""
    key = (config_id, code)
    now = time.monotonic()
    with _lock:
        waiting, last_write = _pending.get(key, (0, None))
        if last_write is not None and now - last_write < WRITE_EVERY:
            _pending[key] = (waiting + 1, last_write)
            return
        _pending[key] = (0, now)
    try:
        with db.transaction() as conn:
            repo.record(conn, config_id, code, MESSAGES.get(code, code), waiting + 1)
    except Exception:
        logger.exception("could not count a refused hit", extra={"action": "refusal_count_failed"})


def for_config(db: Database, caller: Caller, config_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return the config's refused hits by kind, latest first (empty for another user's config)."""
    with db.transaction(caller.claims) as conn:
        return repo.for_config(conn, config_id)
