"""``POST /api/jobs/run``: the cron-driven job runner (``viewzenix.jobs.runner``).

Authenticated by a shared secret, not a user's token: ``Authorization: Bearer
<JOB_QUEUE_RUNNER_SECRET>``, compared in constant time (``hmac.compare_digest``) on the bytes.
During a rotation ``JOB_QUEUE_RUNNER_SECRET_NEXT`` is accepted as well, so the caller can move
to the new secret before the server drops the old one (docs/sync-operations.md).
Answers, in the standard error body: 404 ``job_runner_disabled`` when the secret is not
configured (the endpoint is off, as ``POST /webhook`` is without its passphrase); 401
``runner_secret_missing`` / ``runner_secret_malformed`` / ``runner_secret_invalid`` (nothing
runs); 422 ``validation_error`` for a bad ``limit`` or ``time_budget_s``; 503
``database_unavailable`` when the queue cannot be reached. ``Idempotency-Key`` is ignored here:
a repeated call only runs what is due then, and each job runs once whatever the calls.
"""

from __future__ import annotations

import hmac
import logging

import marshmallow as ma
import psycopg
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate
from procrastinate import exceptions as procrastinate_exceptions

from viewzenix.api.idempotency import not_idempotent
from viewzenix.auth import AuthError, TokenMissing, bearer_token
from viewzenix.errors import ApiError
from viewzenix.exceptions import DatabaseUnavailable
from viewzenix.jobs import runner
from viewzenix.runtime import get_runtime

logger = logging.getLogger(__name__)

SECURITY_SCHEME = "jobRunnerSecret"  # config.API_SPEC_OPTIONS
_CHALLENGE = 'Bearer realm="viewzenix-job-runner"'

bp = Blueprint(
    "job_runner",
    __name__,
    url_prefix="/api/jobs",
    description="The cron-driven job runner, for deployments without a worker process "
    "(Supabase pg_cron + pg_net: supabase/job_runner_cron.sql).",
)


class JobRunnerDisabled(ApiError):
    """POST /api/jobs/run is off: set JOB_QUEUE_RUNNER_SECRET to use the cron-driven runner."""

    status = 404
    code = "job_runner_disabled"


class RunnerSecretRefused(ApiError):
    """The runner secret is wrong: send 'Authorization: Bearer <JOB_QUEUE_RUNNER_SECRET>'."""

    status = 401
    code = "runner_secret_invalid"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": _CHALLENGE})


# The runner's 503 says what did not happen: no job ran.
QUEUE_UNAVAILABLE = "The job queue's database does not answer; nothing ran. Try again later."


def require_runner_secret() -> None:
    """``before_request``: 404 when the runner is off, 401 unless the bearer is the current or next secret."""
    secret = get_runtime().config.JOB_QUEUE_RUNNER_SECRET
    if not secret:
        raise JobRunnerDisabled()
    try:
        presented = bearer_token(request.headers.get("Authorization"))
    except TokenMissing:
        raise RunnerSecretRefused(
            "No runner secret was sent: send 'Authorization: Bearer <JOB_QUEUE_RUNNER_SECRET>'.",
            code="runner_secret_missing",
        ) from None
    except AuthError:
        raise RunnerSecretRefused(
            "The Authorization header must be 'Bearer <JOB_QUEUE_RUNNER_SECRET>'.",
            code="runner_secret_malformed",
        ) from None
    config = get_runtime().config
    accepted = [s for s in (secret, config.JOB_QUEUE_RUNNER_SECRET_NEXT) if s]
    # Each secret compared in constant time, and all of them always (no early exit to time).
    matches = [hmac.compare_digest(presented.encode("utf-8"), s.encode("utf-8")) for s in accepted]
    if not any(matches):
        logger.warning(
            "job runner called with a wrong secret from %s",
            request.remote_addr,
            extra={"action": "job_runner_refused"},
        )
        raise RunnerSecretRefused()


bp.before_request(require_runner_secret)


class JobRunArgsSchema(ma.Schema):
    """``limit`` and ``time_budget_s``, in the query string or the JSON body (the body wins)."""

    limit = ma.fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=runner.MAX_LIMIT),
        metadata={"description": f"Runs at most (default {runner.DEFAULT_LIMIT})"},
    )
    time_budget_s = ma.fields.Float(
        allow_nan=False,
        validate=validate.Range(min=1, max=runner.MAX_TIME_BUDGET_S),
        metadata={
            "description": f"Seconds after which no job starts (default {runner.DEFAULT_TIME_BUDGET_S:g}; "
            "the job running then finishes)"
        },
    )


class JobRunQueryArgsSchema(JobRunArgsSchema):
    """The query-string form: numbers arrive as text."""

    limit = ma.fields.Integer(
        validate=validate.Range(min=1, max=runner.MAX_LIMIT),
        metadata={"description": f"Runs at most (default {runner.DEFAULT_LIMIT})"},
    )


class RunResultSchema(ma.Schema):
    job_id = ma.fields.Integer()
    task = ma.fields.String()
    attempt = ma.fields.Integer(metadata={"description": "Which run of the job this was, from 1"})
    status = ma.fields.String(metadata={"description": "succeeded, retrying, failed or aborted"})
    duration_ms = ma.fields.Float()
    error = ma.fields.String(
        allow_none=True, metadata={"description": "'<ExceptionType>: <message>'; null when it succeeded"}
    )


class RunReportSchema(ma.Schema):
    processed = ma.fields.Integer(metadata={"description": "Runs in all"})
    succeeded = ma.fields.Integer()
    failed = ma.fields.Integer(metadata={"description": "Runs that raised (status: retrying or failed)"})
    stopped_by = ma.fields.String(metadata={"description": "queue_empty, limit, time_budget or paused"})
    elapsed_ms = ma.fields.Float()
    results = ma.fields.List(ma.fields.Nested(RunResultSchema))


@bp.route("/run")
@not_idempotent
class JobRun(MethodView):
    @bp.doc(security=[{SECURITY_SCHEME: []}])
    @bp.arguments(JobRunQueryArgsSchema, location="query", as_kwargs=False)
    @bp.arguments(JobRunArgsSchema, location="json", required=False)
    @bp.response(200, RunReportSchema)
    def post(self, query_args, body_args):
        """Run the due jobs: at most `limit` runs, none started after `time_budget_s` (runner secret)."""
        args = {**query_args, **(body_args or {})}
        runtime = get_runtime()
        # Fail fast (2 s): procrastinate's own pool would wait 30 s, gunicorn's whole timeout.
        if not runtime.db.ping():
            raise DatabaseUnavailable(QUEUE_UNAVAILABLE)
        try:
            return runner.run_due_jobs(
                runtime.config,
                runtime.db,
                runtime.database_url,
                limit=args.get("limit", runner.DEFAULT_LIMIT),
                time_budget_s=args.get("time_budget_s", runner.DEFAULT_TIME_BUDGET_S),
            )
        except (procrastinate_exceptions.ConnectorException, psycopg.OperationalError) as error:
            logger.error(
                "job runner: the queue's database is unavailable: %s",
                error,
                extra={"action": "job_runner_unavailable"},
            )
            raise DatabaseUnavailable(QUEUE_UNAVAILABLE) from None
