"""The HTTP rendering of errors: one body shape for every endpoint, ``{code, status, message, errors}``.

Services raise ``viewzenix.exceptions.ViewzenixError`` subclasses (no Flask there); this module is
the only place that turns them into responses.

``code`` is machine-readable (``token_expired``, ``validation_error``, ``not_found``), ``status``
is the HTTP status, ``message`` a human sentence, ``errors`` optional details (field messages on
422, line/column for malformed alerts).
"""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
import psycopg
from flask import Flask, jsonify
from flask_smorest import Api as _SmorestApi
from werkzeug.exceptions import HTTPException

# Services raise these (viewzenix.exceptions, Flask-free); re-exported for the HTTP layer.
from viewzenix.db import DatabaseDown
from viewzenix.exceptions import (  # noqa: F401
    Conflict,
    DatabaseBusy,
    DatabaseUnavailable,
    Forbidden,
    NotFound,
    ViewzenixError,
)

logger = logging.getLogger(__name__)

# What WEB_DB_LOCK_TIMEOUT_MS and WEB_DB_STATEMENT_TIMEOUT_MS raise (SQLSTATE 55P03, 57014).
TIMEOUT_ERRORS = (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)


class ApiError(ViewzenixError):
    """An error answered with the standard body and extra HTTP ``headers`` (HTTP layer only)."""

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, errors=errors)
        self.headers = headers or {}


class InvalidIdempotencyKey(ApiError):
    """Idempotency-Key must be 1 to 255 printable ASCII characters, bare or as a quoted string."""

    status = 400
    code = "invalid_idempotency_key"


class IdempotencyKeyInProgress(ApiError):
    """A request with this Idempotency-Key is still running; retry once it has finished."""

    status = 409
    code = "idempotency_key_in_progress"


class IdempotencyKeyReused(ApiError):
    """This Idempotency-Key was used for a different request (method, path or body); use a new key."""

    status = 422
    code = "idempotency_key_reused"


class ErrorSchema(ma.Schema):
    """The error body (documentation only)."""

    code = ma.fields.String(metadata={"description": "Machine-readable error code"})
    status = ma.fields.Integer(metadata={"description": "HTTP status"})
    message = ma.fields.String(metadata={"description": "Human-readable message"})
    errors = ma.fields.Dict(metadata={"description": "Details, e.g. field messages"})


def _http_code(error: HTTPException) -> str:
    if error.code == 422:
        return "validation_error"
    return (error.name or "error").lower().replace(" ", "_").replace("'", "")


class Api(_SmorestApi):
    """flask-smorest's Api with Viewzenix's error body (machine code as a string)."""

    ERROR_SCHEMA = ErrorSchema

    def _register_pagination_header(self) -> None:
        """Document X-Pagination as the JSON text it is (flask-smorest documents an object
        schema, whose default header serialization is ``total,0,total_pages,0``)."""
        from flask_smorest.pagination import PaginationMetadataSchema

        self.spec.components.header(
            "PAGINATION",
            {
                "description": "Pagination metadata, a JSON object",
                "content": {"application/json": {"schema": PaginationMetadataSchema}},
            },
            lazy=True,
        )

    def handle_http_exception(self, error: HTTPException):  # type: ignore[override]
        payload: dict[str, Any] = {
            "code": _http_code(error),
            "status": error.code,
            "message": error.description,
        }
        # The exception's own headers (405's Allow, 401's WWW-Authenticate), not its Content-Type.
        headers: dict[str, str] = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        data = getattr(error, "data", None)
        if data:
            if "message" in data:
                payload["message"] = data["message"]
            errors = data.get("errors") or data.get("messages")
            if errors:
                # webargs nests field messages under the location ("json", "query").
                payload["errors"] = errors
                if error.code == 422:
                    payload["message"] = "The request is invalid; see errors for each field."
                elif error.code == 400 and "json" in errors:
                    payload["code"] = "invalid_json"
                    payload["message"] = "The request body is not valid JSON."
            headers.update(data.get("headers") or {})
        return payload, error.code, headers


def register_error_handlers(app: Flask) -> None:
    """Answer every ``ViewzenixError`` (services' Flask-free tree) with its status and standard body."""

    @app.errorhandler(ViewzenixError)
    def _viewzenix_error(error: ViewzenixError):
        response = jsonify(error.body())
        response.status_code = error.status
        response.headers.update(getattr(error, "headers", None) or {})
        return response

    @app.errorhandler(psycopg.OperationalError)
    def _database_unavailable(error: psycopg.OperationalError):
        """The database is down, unreachable or restarting (psycopg_pool's PoolTimeout included).

        503 ``database_unavailable`` with ``Retry-After``: the transaction did not commit, so
        nothing was stored (a commit whose answer was lost may have; a resent alert is then
        answered as a duplicate of it). TradingView resends a 5xx after 5 s, up to 3 times.
        """
        if isinstance(error, TIMEOUT_ERRORS):
            # A lock or statement timeout (docs/database-timeouts.md): the server is up but busy.
            logger.warning("database timeout: %s", error, extra={"action": "database_busy"})
            return _viewzenix_error(DatabaseBusy())
        if not isinstance(error, DatabaseDown):  # the breaker logged the outage once
            logger.warning("database unavailable: %s", error, extra={"action": "database_unavailable"})
        return _viewzenix_error(DatabaseUnavailable())
