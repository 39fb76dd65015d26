"""One structured log line per HTTP request, with a request id (``ACCESS_LOG``).

Each request gets an id: the caller's ``X-Request-ID`` when it is a short printable token (a
proxy's or a load balancer's), else a new UUID; it is echoed in the response's ``X-Request-ID``
and logged with the method, path (without the query string, and with a webhook's URL token
replaced by ``***``: both may hold secrets), status,
duration in milliseconds and the ids a view put on ``g.log_ids`` (``config_id``, ``signal_id``).

``ACCESS_LOG`` chooses which requests are logged: ``api`` (default) every request except the
alert webhooks (``/webhook``, ``/webhooks/...``) — intake is the hot path, every alert is already
a ``signals`` row with its outcome and a Prometheus observation, and a line per alert at a bar
close's burst is cost the operator did not ask for; ``all`` every request, alerts included;
``off`` none.

The dashboard's own refreshes — a successful GET of a fragment or asset under ``/ui/``, or an API
read it marks ``X-Dashboard-Refresh: 1`` on its refresh tick — are logged at DEBUG, so an open
dashboard does not scroll ``make run``'s banner away (a line per fragment every few seconds);
their failures stay at INFO.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from flask import g, request

if TYPE_CHECKING:
    from flask import Flask, Response

logger = logging.getLogger("viewzenix.access")

MODES = ("api", "all", "off")
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def install(app: Flask, mode: str) -> None:
    """Log requests on ``app`` as ``mode`` says (``api``, ``all`` or ``off``; see module doc)."""
    if mode == "off":
        return
    alerts_too = mode == "all"

    @app.before_request
    def _start() -> None:
        if not alerts_too and request.path.startswith("/webhook"):
            return
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _GIVEN_ID.match(given) else uuid.uuid4().hex
        g.access_started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        started = g.pop("access_started", None)
        if started is None:
            return response
        response.headers["X-Request-ID"] = g.request_id
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        path = request.path
        token = (request.view_args or {}).get("token")
        if token:
            path = path.replace(str(token), "***")
        refresh = (
            request.method == "GET"
            and response.status_code < 400
            and (path.startswith("/ui/") or request.headers.get("X-Dashboard-Refresh") == "1")
        )
        logger.log(
            logging.DEBUG if refresh else logging.INFO,
            "%s %s %s %.1f ms",
            request.method,
            path,
            response.status_code,
            duration_ms,
            extra={
                "action": "request",
                "request_id": g.request_id,
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                **g.get("log_ids", {}),
            },
        )
        return response
