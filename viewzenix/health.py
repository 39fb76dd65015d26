"""``GET /healthz``: 200 once the database answers, 503 before."""

from __future__ import annotations

from flask import Blueprint

from viewzenix.runtime import get_runtime

bp = Blueprint("health", __name__)

# Signals accepted but not executed yet: their execution jobs still queued or running.
SIGNALS_WAITING = (
    "select count(*) as n from procrastinate_jobs "
    "where queue_name = 'signals' and status in ('todo', 'doing')"
)


@bp.get("/healthz")
def healthz():
    """Answer 200 ``{"status": "ok", "database": "ok", "signals_waiting": n}`` when the database answers.

    ``signals_waiting``: accepted signals whose execution job is still queued or running (after
    an outage, how much the worker has to catch up on). Else 503 ``database_unavailable``.
    """
    db = get_runtime().db
    if db.ping():
        try:
            with db.transaction() as conn:
                waiting = conn.execute(SIGNALS_WAITING).fetchone()["n"]
        except Exception:  # the database went away between the two queries
            waiting = None
        return {"status": "ok", "database": "ok", "signals_waiting": waiting}, 200
    return {
        "code": "database_unavailable",
        "status": 503,
        "message": "The database does not answer yet.",
    }, 503
