"""The exception tree services and the domain raise: Flask-free, rendered only by the HTTP layer.

Every error carries a machine-readable ``code``, a ``status`` *hint* (the HTTP status the web
layer answers with; a CLI or a job ignores it), a human ``message`` (by default the first
paragraph of the class docstring) and optional ``errors`` details. ``viewzenix.errors`` turns
them into the one error body ``{code, status, message, errors}``; nothing here imports Flask.
"""

from __future__ import annotations

from typing import Any


def _default_message(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return " ".join(doc.split("\n\n", 1)[0].split())


class ViewzenixError(Exception):
    """The request cannot be done."""

    code: str = "bad_request"
    status: int = 400

    def __init__(
        self,
        message: str | None = None,
        /,
        *,
        code: str | None = None,
        status: int | None = None,
        errors: dict[str, Any] | None = None,
    ) -> None:
        self.message: str = message or _default_message(type(self))
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.errors: dict[str, Any] = errors or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """Return the standard error body ``{code, status, message[, errors]}``."""
        payload: dict[str, Any] = {"code": self.code, "status": self.status, "message": self.message}
        if self.errors:
            payload["errors"] = self.errors
        return payload


class NotFound(ViewzenixError):
    """The resource does not exist or is not yours."""

    status = 404
    code = "not_found"


class Conflict(ViewzenixError):
    """The resource's current state does not allow this; ``code`` says which state."""

    status = 409
    code = "conflict"


class Forbidden(ViewzenixError):
    """You may not do this."""

    status = 403
    code = "forbidden"


class Unauthenticated(ViewzenixError):
    """The request is not authenticated."""

    status = 401
    code = "unauthenticated"


class Invalid(ViewzenixError):
    """The request is invalid; see errors for each field."""

    status = 422
    code = "validation_error"


class Unavailable(ViewzenixError):
    """A service this request needs does not answer right now; retry later."""

    status = 503
    code = "unavailable"


class DatabaseUnavailable(Unavailable):
    """The database does not answer right now; nothing was stored. Retry in a few seconds."""

    code = "database_unavailable"
    retry_after_seconds = 5

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` (seconds): TradingView and well-behaved clients wait, then resend."""
        return {"Retry-After": str(self.retry_after_seconds)}


class DatabaseBusy(DatabaseUnavailable):
    """A database lock or statement timeout ended the request; nothing was stored. Retry shortly."""

    code = "database_busy"
    retry_after_seconds = 2
