"""``GET /healthz``: 200 once the database answers, 503 before."""

from __future__ import annotations

from flask import Blueprint

from viewzenix.runtime import get_runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer 200 ``{"status": "ok"}`` when ``select 1`` succeeds, else 503 ``database_unavailable``."""
    if get_runtime().db.ping():
        return {"status": "ok", "database": "ok"}, 200
    return {
        "code": "database_unavailable",
        "status": 503,
        "message": "The database does not answer yet.",
    }, 503
