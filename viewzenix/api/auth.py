"""Bearer-token middleware for ``/api``: verify the Supabase access token, set ``g.caller``.

Failures answer 401 with ``WWW-Authenticate`` (RFC 6750) and a machine-readable code
(``token_missing``, ``token_malformed``, ``token_expired``, ``token_invalid``); a JWKS outage
answers 503 ``auth_unavailable``.
"""

from __future__ import annotations

from flask import g, request

from viewzenix.auth import AuthError, bearer_token
from viewzenix.errors import ApiError
from viewzenix.runtime import get_runtime
from viewzenix.services.common import Caller


def _challenge(error: AuthError) -> str:
    if error.code == "token_missing":
        return 'Bearer realm="viewzenix"'
    description = error.message.replace('"', "'")
    return f'Bearer realm="viewzenix", error="invalid_token", error_description="{description}"'


def authenticate() -> None:
    """``before_request``: verify the bearer token and store the Caller on ``g.caller``."""
    if request.method == "OPTIONS":
        return
    try:
        claims = get_runtime().verifier.verify(bearer_token(request.headers.get("Authorization")))
    except AuthError as error:
        headers = {"WWW-Authenticate": _challenge(error)} if error.status == 401 else {}
        raise ApiError(error.message, code=error.code, status=error.status, headers=headers) from None
    g.caller = Caller(user_id=claims.sub, email=claims.email, claims=claims.raw)


def current_caller() -> Caller:
    """Return the authenticated caller of this request."""
    return g.caller
