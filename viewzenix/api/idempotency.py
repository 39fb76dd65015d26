"""Idempotency keys on every mutating ``/api`` endpoint (POST, PUT, PATCH, DELETE).

Except views marked ``not_idempotent`` (``POST /api/jobs/run``: no user to scope keys to).

A client sends ``Idempotency-Key: <key>`` (alias ``X-Idempotency-Key``; the IETF draft's quoted
string or a bare value; 1–255 printable ASCII characters). Per user, the first response to a key
(status, body, content type) is stored and replayed for the same request with
``Idempotent-Replayed: true`` for ``IDEMPOTENCY_KEY_TTL_HOURS``. The same key on a different
request (method, path with query string, or body bytes) → 422 ``idempotency_key_reused``; while
the first still runs → 409 ``idempotency_key_in_progress``; a malformed key → 400
``invalid_idempotency_key``.

The transaction boundary: ``idempotent`` wraps the view (after authentication, around argument
parsing, the service call and serialisation) in ``Database.request_transaction`` as the caller,
which the services' own ``db.transaction(...)`` calls join. In it: lock the key
(``pg_try_advisory_xact_lock``), look it up, run the view, store its response; the work and the
key commit together. A response that is not stored rolls the whole transaction back, as does an
exception: 400, 401, 422 and 429 (the request was refused before any work and may be fixed and
sent again with the same key); 409 (a conflict with the resource's state at that moment, such as
``order_being_submitted``'s "retry in a few seconds": the state changes, and a replay for 24 h
would hide it); every answer carrying ``Retry-After`` (HTTP's "try again later"); and every 5xx.

Source: Stripe practice and the IETF draft "The Idempotency-Key HTTP Header Field".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import wraps
from typing import Any

import psycopg
from apispec import BasePlugin
from flask import Flask, Response, current_app, request
from prometheus_client import Counter

from viewzenix.api.auth import current_caller
from viewzenix.errors import IdempotencyKeyInProgress, IdempotencyKeyReused, InvalidIdempotencyKey
from viewzenix.repositories import idempotency_keys as repo
from viewzenix.runtime import get_runtime

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
ALIAS_HEADER = "X-Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
# Refused before any work, or a conflict with a state that changes: the client may fix the request
# or wait, and retry with the same key.
NOT_STORED_STATUSES = frozenset({400, 401, 409, 422, 429})
# Response headers replayed with the stored body.
REPLAYED_RESPONSE_HEADERS = ("Content-Type", "Location")
IN_PROGRESS_RETRY_AFTER_SECONDS = "1"


def parse_key(value: str) -> str:
    """Return the key carried by one header value, quoted (RFC 8941 sf-string) or bare.

    Surrounding whitespace is ignored. Raises InvalidIdempotencyKey when the key is empty,
    longer than 255 characters, holds a character outside printable ASCII (0x20–0x7E), or is
    a quoted string that is unterminated or has an escape other than ``\\"`` and ``\\\\``.
    """
    value = value.strip(" \t")
    if value.startswith('"'):
        key = _unquote(value)
    else:
        key = value
    if not key:
        raise InvalidIdempotencyKey("Idempotency-Key is empty.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters.")
    if any(not (0x20 <= ord(char) <= 0x7E) for char in key):
        raise InvalidIdempotencyKey("Idempotency-Key must hold printable ASCII characters only.")
    return key


def _unquote(value: str) -> str:
    chars: list[str] = []
    index = 1
    while index < len(value):
        char = value[index]
        if char == "\\":
            if index + 1 < len(value) and value[index + 1] in '"\\':
                chars.append(value[index + 1])
                index += 2
                continue
            raise InvalidIdempotencyKey('Idempotency-Key: only \\" and \\\\ may be escaped in a quoted key.')
        if char == '"':
            if index != len(value) - 1:
                raise InvalidIdempotencyKey("Idempotency-Key: nothing may follow the closing quote.")
            return "".join(chars)
        chars.append(char)
        index += 1
    raise InvalidIdempotencyKey("Idempotency-Key: the quoted key has no closing quote.")


def key_from_headers(values: Iterable[str]) -> str | None:
    """Return the one key in ``values`` (every Idempotency-Key / X-Idempotency-Key header value).

    None when there is none. Raises InvalidIdempotencyKey when one is malformed or they differ.
    """
    keys = {parse_key(value) for value in values}
    if len(keys) > 1:
        raise InvalidIdempotencyKey("Idempotency-Key and X-Idempotency-Key carry different keys.")
    return keys.pop() if keys else None


def request_fingerprint(method: str, path: str, body: bytes) -> bytes:
    """Return the sha256 identifying a request: method, path (with query string) and body bytes."""
    digest = hashlib.sha256()
    for part in (method.encode("ascii"), path.encode("utf-8", "surrogateescape"), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a view so a mutating request carrying an Idempotency-Key runs at most once per key.

    Requests without a key, and GET/HEAD/OPTIONS, run the view unchanged.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.method not in MUTATING_METHODS:
            return view(*args, **kwargs)
        key = key_from_headers(request.headers.getlist(HEADER) + request.headers.getlist(ALIAS_HEADER))
        if key is None:
            return view(*args, **kwargs)
        return _run_once(key, view, args, kwargs)

    wrapper.idempotent = True  # type: ignore[attr-defined]
    return wrapper


# Hit rate = hit / (hit + miss): how often a key's stored answer was replayed instead of running.
IDEMPOTENCY_REQUESTS = Counter(
    "viewzenix_idempotency_requests",
    "Mutating /api requests carrying an Idempotency-Key, by route template and result: hit (the "
    "stored answer replayed) or miss (the request ran).",
    ["route", "result"],
)


def _route() -> str:
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def _request_path() -> str:
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def _run_once(key: str, view: Callable[..., Any], args: tuple, kwargs: dict) -> Response:
    caller = current_caller()
    runtime = get_runtime()
    method, path = request.method, _request_path()
    fingerprint = request_fingerprint(method, path, request.get_data(cache=True))
    ids = {"user_id": str(caller.user_id), "idempotency_key": key}
    with runtime.db.request_transaction(caller.claims) as conn:
        if not repo.try_lock(conn, caller.user_id, key):
            logger.info(
                "idempotency key in progress: %s %s",
                method,
                path,
                extra={"action": "idempotency_key_in_progress", **ids},
            )
            raise IdempotencyKeyInProgress(headers={"Retry-After": IN_PROGRESS_RETRY_AFTER_SECONDS})
        stored = repo.find_live(conn, caller.user_id, key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                logger.info(
                    "idempotency key reused for another request: %s %s",
                    method,
                    path,
                    extra={"action": "idempotency_key_reused", **ids},
                )
                raise IdempotencyKeyReused()
            logger.info(
                "idempotent replay: %s %s", method, path, extra={"action": "idempotency_key_replayed", **ids}
            )
            IDEMPOTENCY_REQUESTS.labels(_route(), "hit").inc()
            return _replay(stored)
        IDEMPOTENCY_REQUESTS.labels(_route(), "miss").inc()
        response = _dispatch(view, args, kwargs)
        if not _is_outcome(response):
            raise psycopg.Rollback()  # nothing the view did is kept; the key stays free
        repo.save(
            conn,
            user_id=caller.user_id,
            key=key,
            method=method,
            path=path,
            response=_to_store(fingerprint, response),
            ttl=timedelta(hours=runtime.config.IDEMPOTENCY_KEY_TTL_HOURS),
        )
    return response


def _is_outcome(response: Response) -> bool:
    """Return whether ``response`` is the request's outcome, to be stored and replayed.

    Not an outcome: a status in ``NOT_STORED_STATUSES``, any 5xx, and any answer with
    ``Retry-After`` (transient by HTTP's own signal, RFC 9110 §10.2.3).
    """
    status = response.status_code
    return status not in NOT_STORED_STATUSES and status < 500 and "Retry-After" not in response.headers


def _dispatch(view: Callable[..., Any], args: tuple, kwargs: dict) -> Response:
    """Run the view and turn what it returns or raises into the response Flask would send.

    Unhandled exceptions propagate (Flask then answers 500, after the transaction rolled back).
    """
    try:
        rv = view(*args, **kwargs)
    except Exception as error:
        rv = current_app.handle_user_exception(error)  # re-raises an exception without a handler
    return current_app.make_response(rv)


def _to_store(fingerprint: bytes, response: Response) -> repo.StoredResponse:
    headers = {name: response.headers[name] for name in REPLAYED_RESPONSE_HEADERS if name in response.headers}
    return repo.StoredResponse(
        fingerprint=fingerprint, status=response.status_code, headers=headers, body=response.get_data()
    )


def _replay(stored: repo.StoredResponse) -> Response:
    response = Response(stored.body, status=stored.status)
    for name, value in stored.headers.items():
        response.headers[name] = value
    response.headers[REPLAYED_HEADER] = "true"
    return response


def not_idempotent(view: Any) -> Any:
    """Leave a view (a function or a MethodView class) out of ``make_api_idempotent``.

    For endpoints without a user (keys are scoped per user), e.g. the job runner, whose callers
    authenticate with a shared secret.
    """
    view.idempotency_exempt = True
    return view


def _exempt(view: Any) -> bool:
    return getattr(view, "idempotency_exempt", False) or getattr(
        getattr(view, "view_class", None), "idempotency_exempt", False
    )


def make_api_idempotent(app: Flask, url_prefix: str = "/api/") -> None:
    """Wrap the view of every mutating rule under ``url_prefix`` with ``idempotent`` (once each).

    Views marked ``not_idempotent`` are left as they are.
    """
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(url_prefix) and (rule.methods or set()) & MUTATING_METHODS:
            view = app.view_functions[rule.endpoint]
            if not getattr(view, "idempotent", False) and not _exempt(view):
                app.view_functions[rule.endpoint] = idempotent(view)


class IdempotencyKeyDoc(BasePlugin):
    """apispec plugin: document the Idempotency-Key header on every mutating ``/api`` operation."""

    PARAMETER = "IdempotencyKey"

    def init_spec(self, spec: Any) -> None:
        super().init_spec(spec)
        spec.components.parameter(
            self.PARAMETER,
            "header",
            {
                "name": HEADER,
                "required": False,
                # The bare form (the quoted one is described below).
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!#-~][!-~]*$"},
                "description": (
                    "Makes the request safe to retry: the first response to a key (per user) is "
                    "replayed for the same request with `Idempotent-Replayed: true`. 1–255 printable "
                    "ASCII characters, bare or quoted; `X-Idempotency-Key` is an alias. Same key, "
                    "different request: 422 `idempotency_key_reused`; still running: 409 "
                    "`idempotency_key_in_progress`; malformed: 400 `invalid_idempotency_key`."
                ),
            },
        )

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        if not path or not path.startswith("/api/") or not operations:
            return
        for method, operation in operations.items():
            if method.upper() in MUTATING_METHODS:
                operation.setdefault("parameters", []).append(self.PARAMETER)
