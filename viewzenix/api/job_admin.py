"""``/api/admin/jobs`` and ``/api/admin/audit``: the job queue's admin tools (admins only).

Metrics, jobs with filters and keyset pagination, one job with every attempt and its error
text, the signal and orders it belongs to; retry, cancel and run-now, each recorded with who did
it. Every route answers 403 ``admin_required`` to anyone whose ``app_metadata.role`` is not
``admin`` — before validating anything. Rules: ``viewzenix.services.job_admin``.
"""

from __future__ import annotations

import marshmallow as ma
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.api.orders import OrderSchema
from viewzenix.api.signals import SignalSchema
from viewzenix.api.validators import storable_text
from viewzenix.errors import ErrorSchema
from viewzenix.repositories.jobs import OUTCOMES, STATUSES
from viewzenix.runtime import get_runtime
from viewzenix.services import job_admin as service
from viewzenix.services import sync_admin

bp = Blueprint(
    "job_admin",
    __name__,
    url_prefix="/api/admin",
    description="The job queue's admin tools: metrics, jobs and their attempts, retry, cancel, "
    "run-now, and the record of admin actions (admins only: app_metadata.role = admin).",
)
bp.before_request(authenticate)


@bp.before_request
def _admins_only() -> None:
    if request.method == "OPTIONS":  # answered by Flask with Allow; no caller was authenticated
        return
    service.require_admin(current_caller())


MAX_PAGE = 200
BIGINT = validate.Range(min=1, max=2**63 - 1)


def _text(**kwargs):
    return ma.fields.String(validate=[validate.Length(min=1, max=200), storable_text], **kwargs)


# --- answers -------------------------------------------------------------------------------


class JobSchema(ma.Schema):
    id = ma.fields.Integer()
    queue = ma.fields.String()
    task = ma.fields.String()
    lock = ma.fields.String(
        allow_none=True, metadata={"description": "signal:<config_id>:<symbol> for a signal's job"}
    )
    queueing_lock = ma.fields.String(allow_none=True)
    priority = ma.fields.Integer()
    status = ma.fields.String(metadata={"description": ", ".join(STATUSES)})
    attempts = ma.fields.Integer(metadata={"description": "Runs finished (procrastinate's count)"})
    scheduled_at = ma.fields.DateTime(allow_none=True, metadata={"description": "Not due before"})
    abort_requested = ma.fields.Boolean()
    worker_id = ma.fields.Integer(allow_none=True)
    args = ma.fields.Dict(metadata={"description": "The task's arguments"})
    created_at = ma.fields.DateTime(allow_none=True, metadata={"description": "Deferred at"})
    signal_id = ma.fields.UUID(allow_none=True, metadata={"description": "A signal's job: the signal"})


class JobListItemSchema(JobSchema):
    last_outcome = ma.fields.String(allow_none=True, metadata={"description": ", ".join(OUTCOMES)})
    last_attempt_at = ma.fields.DateTime(allow_none=True)
    last_error = ma.fields.String(allow_none=True, metadata={"description": "The last run's 'Type: text'"})


class JobPageSchema(ma.Schema):
    jobs = ma.fields.List(ma.fields.Nested(JobListItemSchema))
    next_cursor = ma.fields.Integer(
        allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last"}
    )


class AttemptSchema(ma.Schema):
    attempt = ma.fields.Integer(metadata={"description": "1 for the first run"})
    task_name = ma.fields.String()
    worker = ma.fields.String(allow_none=True)
    started_at = ma.fields.DateTime()
    finished_at = ma.fields.DateTime()
    duration_ms = ma.fields.Float(metadata={"description": "Milliseconds"})
    outcome = ma.fields.String(metadata={"description": ", ".join(OUTCOMES)})
    error_type = ma.fields.String(allow_none=True)
    error = ma.fields.String(allow_none=True, metadata={"description": "The error's text"})
    traceback = ma.fields.String(allow_none=True)
    context = ma.fields.Dict(metadata={"description": "Ids the run belongs to (signal_id, ...)"})


class JobEventSchema(ma.Schema):
    type = ma.fields.String(metadata={"description": "procrastinate's event: deferred, started, ..."})
    at = ma.fields.DateTime(allow_none=True)


class AdminActionSchema(ma.Schema):
    id = ma.fields.Integer()
    job_id = ma.fields.Integer(allow_none=True, metadata={"description": "null for queue and sync actions"})
    action = ma.fields.String(metadata={"description": ", ".join(service.ACTIONS)})
    result = ma.fields.String(metadata={"description": "done, or refused (nothing changed)"})
    code = ma.fields.String(allow_none=True, metadata={"description": "Why it was refused"})
    from_status = ma.fields.String(allow_none=True)
    to_status = ma.fields.String(allow_none=True)
    message = ma.fields.String()
    actor_id = ma.fields.UUID(metadata={"description": "The admin (Supabase user id)"})
    actor_email = ma.fields.String(allow_none=True)
    signal_id = ma.fields.UUID(allow_none=True)
    detail = ma.fields.Dict(allow_none=True, metadata={"description": "What it found (sync: the report)"})
    at = ma.fields.DateTime()


class JobSignalSchema(SignalSchema):
    user_id = ma.fields.UUID()
    job_id = ma.fields.Integer(allow_none=True)


class JobDetailSchema(JobSchema):
    events = ma.fields.List(ma.fields.Nested(JobEventSchema))
    attempt_history = ma.fields.List(
        ma.fields.Nested(AttemptSchema),
        metadata={"description": "Every run, first first, with its outcome and error text"},
    )
    signal = ma.fields.Nested(JobSignalSchema, allow_none=True)
    orders = ma.fields.List(ma.fields.Nested(OrderSchema))
    actions = ma.fields.List(ma.fields.Nested(AdminActionSchema), metadata={"description": "Newest first"})


class ActionResultSchema(ma.Schema):
    action = ma.fields.Nested(AdminActionSchema)
    job = ma.fields.Nested(JobSchema)


class AuditPageSchema(ma.Schema):
    actions = ma.fields.List(ma.fields.Nested(AdminActionSchema))
    next_cursor = ma.fields.Integer(allow_none=True)


class TaskCountsSchema(ma.Schema):
    task = ma.fields.String()
    total = ma.fields.Integer()
    by_status = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())


class HistogramBarSchema(ma.Schema):
    attempts = ma.fields.Integer(metadata={"description": "Runs the job took"})
    jobs = ma.fields.Integer()


class MetricsSchema(ma.Schema):
    queue = ma.fields.String(allow_none=True)
    task = ma.fields.String(allow_none=True)
    total = ma.fields.Integer()
    by_status = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    by_task = ma.fields.List(ma.fields.Nested(TaskCountsSchema))
    oldest_due_job_id = ma.fields.Integer(allow_none=True)
    oldest_due_age_seconds = ma.fields.Float(
        allow_none=True, metadata={"description": "Seconds the longest-due todo job has been due"}
    )
    window_minutes = ma.fields.Integer()
    runs = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Integer(), metadata={"description": "Runs by outcome"}
    )
    runs_per_minute = ma.fields.Float()
    jobs_ended = ma.fields.Integer(metadata={"description": "Jobs that succeeded or failed for good"})
    jobs_per_minute = ma.fields.Float()
    failure_rate = ma.fields.Float(allow_none=True, metadata={"description": "failed ÷ ended, 0–1"})
    run_failure_rate = ma.fields.Float(allow_none=True, metadata={"description": "unsuccessful runs ÷ runs"})
    attempts_histogram = ma.fields.List(ma.fields.Nested(HistogramBarSchema))


# --- arguments -----------------------------------------------------------------------------


class PageArgsSchema(ma.Schema):
    limit = ma.fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=MAX_PAGE), metadata={"description": "Page size"}
    )
    cursor = ma.fields.Integer(validate=BIGINT, metadata={"description": "The previous page's next_cursor"})


class JobQueryArgsSchema(PageArgsSchema):
    status = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(STATUSES)),
        metadata={"description": "Any of these (repeat the parameter)"},
    )
    task = _text(metadata={"description": "Task name, e.g. viewzenix.execute_signal"})
    queue = _text()
    lock = _text(metadata={"description": "e.g. signal:<config_id>:<symbol>"})
    since = ma.fields.AwareDateTime(metadata={"description": "Created ≥ since (ISO 8601 with offset)"})
    until = ma.fields.AwareDateTime(metadata={"description": "Created < until"})
    periodic = ma.fields.Boolean(
        metadata={"description": "true: only jobs of periodic schedules (housekeeping); false: none of them"}
    )

    @ma.validates_schema
    def _range(self, data, **kwargs):
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ma.ValidationError("Must be later than since.", field_name="until")


class MetricsQueryArgsSchema(ma.Schema):
    queue = _text()
    task = _text()
    window_minutes = ma.fields.Integer(
        load_default=60,
        validate=validate.Range(min=1, max=24 * 60),
        metadata={"description": "The window of the rates and the histogram (default 60)"},
    )


class AuditQueryArgsSchema(PageArgsSchema):
    job_id = ma.fields.Integer(validate=BIGINT)
    action = ma.fields.String(validate=validate.OneOf(service.ACTIONS))
    actor_id = ma.fields.UUID()


# --- views ---------------------------------------------------------------------------------


@bp.route("/jobs/metrics")
class JobMetrics(MethodView):
    @bp.arguments(MetricsQueryArgsSchema, location="query")
    @bp.response(200, MetricsSchema)
    def get(self, args):
        """The queue now: counts by status and task, the oldest due job, last-hour rates."""
        return service.metrics(get_runtime().db, current_caller(), **args)


@bp.route("/jobs")
class Jobs(MethodView):
    @bp.arguments(JobQueryArgsSchema, location="query")
    @bp.response(200, JobPageSchema)
    def get(self, args):
        """List jobs, newest first, with filters; keyset pagination (cursor / next_cursor)."""
        limit, cursor = args.pop("limit"), args.pop("cursor", None)
        return service.list_jobs(get_runtime().db, current_caller(), filters=args, limit=limit, cursor=cursor)


@bp.route("/jobs/<int:job_id>")
class JobById(MethodView):
    @bp.response(200, JobDetailSchema)
    def get(self, job_id: int):
        """One job: arguments, status, events, every attempt with its error, signal, orders, actions."""
        return service.get_job(get_runtime().db, current_caller(), job_id)


@bp.route("/jobs/<int:job_id>/retry")
class RetryJob(MethodView):
    @bp.response(200, ActionResultSchema)
    @bp.alt_response(409, schema=ErrorSchema, description="job_not_retryable, job_superseded, …")
    def post(self, job_id: int):
        """Put a failed, cancelled or aborted job back in the queue, due now."""
        runtime = get_runtime()
        return service.retry(runtime.db, runtime.jobs, current_caller(), job_id)


@bp.route("/jobs/<int:job_id>/cancel")
class CancelJob(MethodView):
    @bp.response(200, ActionResultSchema)
    @bp.alt_response(409, schema=ErrorSchema, description="job_not_cancelable: the job has finished")
    def post(self, job_id: int):
        """Cancel a todo job, or request the abort of a running one."""
        runtime = get_runtime()
        return service.cancel(runtime.db, runtime.jobs, current_caller(), job_id)


@bp.route("/jobs/<int:job_id>/run-now")
class RunJobNow(MethodView):
    @bp.response(200, ActionResultSchema)
    @bp.alt_response(409, schema=ErrorSchema, description="job_not_scheduled: not todo, or already due")
    def post(self, job_id: int):
        """Make a todo job scheduled in the future due now."""
        runtime = get_runtime()
        return service.run_now(runtime.db, runtime.jobs, current_caller(), job_id)


@bp.route("/audit")
class Audit(MethodView):
    @bp.arguments(AuditQueryArgsSchema, location="query")
    @bp.response(200, AuditPageSchema)
    def get(self, args):
        """List admin actions on jobs (who, what, when, result), newest first."""
        limit, cursor = args.pop("limit"), args.pop("cursor", None)
        return service.list_actions(get_runtime().db, current_caller(), limit=limit, cursor=cursor, **args)


# --- the global pause ----------------------------------------------------------------------


class QueueStateSchema(ma.Schema):
    paused = ma.fields.Boolean(metadata={"description": "True: workers and the cron runner take no new job"})
    reason = ma.fields.String(allow_none=True)
    changed_at = ma.fields.DateTime()
    changed_by = ma.fields.UUID(allow_none=True)
    changed_by_email = ma.fields.String(allow_none=True)
    waiting = ma.fields.Integer(metadata={"description": "todo jobs (run after a resume)"})
    action = ma.fields.Nested(AdminActionSchema, metadata={"description": "The audit record (pause/resume)"})


class PauseArgsSchema(ma.Schema):
    reason = ma.fields.String(
        validate=[validate.Length(min=1, max=500), storable_text],
        metadata={"description": "Why (shown on the admin page and in /readyz)"},
    )


@bp.route("/queue")
class QueueState(MethodView):
    @bp.response(200, QueueStateSchema)
    def get(self):
        """Whether automatic job processing is paused, since when, by whom, and the jobs waiting."""
        return service.queue_state(get_runtime().db, current_caller())


@bp.route("/queue/pause")
class PauseQueue(MethodView):
    @bp.arguments(PauseArgsSchema)
    @bp.response(200, QueueStateSchema)
    def post(self, args):
        """Pause automatic processing: workers and the cron runner take no new job (alerts still queue)."""
        return service.set_paused(get_runtime().db, current_caller(), True, args.get("reason"))


@bp.route("/queue/resume")
class ResumeQueue(MethodView):
    @bp.response(200, QueueStateSchema)
    def post(self):
        """Resume automatic processing; the workers are woken at once."""
        return service.set_paused(get_runtime().db, current_caller(), False)


# --- the archive ---------------------------------------------------------------------------


class ArchivedJobSchema(ma.Schema):
    id = ma.fields.Integer(metadata={"description": "The archive entry (cursor)"})
    job_id = ma.fields.Integer()
    queue = ma.fields.String()
    task = ma.fields.String()
    lock = ma.fields.String(allow_none=True)
    queueing_lock = ma.fields.String(allow_none=True)
    args = ma.fields.Dict()
    status = ma.fields.String(metadata={"description": "failed or aborted"})
    attempts = ma.fields.Integer()
    created_at = ma.fields.DateTime(allow_none=True)
    ended_at = ma.fields.DateTime(allow_none=True)
    last_error = ma.fields.String(allow_none=True)
    archived_at = ma.fields.DateTime()
    attempt_history = ma.fields.List(ma.fields.Dict(), metadata={"description": "Every run, first first"})
    events = ma.fields.List(ma.fields.Dict())


class ArchivePageSchema(ma.Schema):
    jobs = ma.fields.List(ma.fields.Nested(ArchivedJobSchema))
    next_cursor = ma.fields.Integer(allow_none=True)


class ArchiveQueryArgsSchema(PageArgsSchema):
    task = _text()
    status = ma.fields.String(validate=validate.OneOf(["failed", "aborted"]))
    job_id = ma.fields.Integer(validate=BIGINT)
    q = _text(metadata={"description": "A substring of the last error or of the arguments"})
    since = ma.fields.AwareDateTime(metadata={"description": "Ended ≥ since"})
    until = ma.fields.AwareDateTime(metadata={"description": "Ended < until"})


@bp.route("/jobs/archive")
class JobArchive(MethodView):
    @bp.arguments(ArchiveQueryArgsSchema, location="query")
    @bp.response(200, ArchivePageSchema)
    def get(self, args):
        """Search failed and aborted jobs kept past the job retention, with every attempt."""
        limit, cursor = args.pop("limit"), args.pop("cursor", None)
        return service.search_archive(
            get_runtime().db, current_caller(), filters=args, limit=limit, cursor=cursor
        )


# --- the Supabase sync -----------------------------------------------------------------------


class SyncArgsSchema(ma.Schema):
    repair = ma.fields.Boolean(
        load_default=True, metadata={"description": "Repair what differs (default true)"}
    )
    force = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "Also apply removals above half of the target's rows (is the source right?)"
        },
    )


class SyncUserArgsSchema(ma.Schema):
    repair = ma.fields.Boolean(load_default=True, metadata={"description": "Fix the profile (default true)"})


class DriftReportSchema(ma.Schema):
    target = ma.fields.String(metadata={"description": "watchers or users"})
    source = ma.fields.String(metadata={"description": "same, database or auth-api"})
    source_rows = ma.fields.Integer()
    target_rows = ma.fields.Integer()
    missing = ma.fields.Integer()
    extra = ma.fields.Integer()
    differing = ma.fields.Integer()
    invalid = ma.fields.Integer()
    drift_rate = ma.fields.Float(metadata={"description": "Percent of compared keys in disagreement"})
    repaired = ma.fields.Integer()
    removals_refused = ma.fields.Boolean(
        metadata={"description": "Removals above half of the rows were skipped (force to apply)"}
    )
    error = ma.fields.String(allow_none=True)
    keys = ma.fields.Dict(metadata={"description": "At most 100 keys of each kind, and those repaired"})
    action = ma.fields.Nested(AdminActionSchema)


class UserProfileSchema(ma.Schema):
    id = ma.fields.UUID()
    email = ma.fields.String(allow_none=True)
    username = ma.fields.String(allow_none=True)
    display_name = ma.fields.String(allow_none=True)
    avatar_url = ma.fields.String(allow_none=True)
    source_updated_at = ma.fields.DateTime(allow_none=True)
    deleted_at = ma.fields.DateTime(allow_none=True)


class UserSyncSchema(ma.Schema):
    user_id = ma.fields.UUID()
    source = ma.fields.String()
    state = ma.fields.String(metadata={"description": "in_step, missing, differing, extra or invalid"})
    repaired = ma.fields.Boolean()
    message = ma.fields.String()
    errors = ma.fields.Dict(metadata={"description": "invalid: what is wrong with the source's record"})
    profile = ma.fields.Nested(UserProfileSchema, allow_none=True, metadata={"description": "Ours, after"})
    action = ma.fields.Nested(AdminActionSchema)


@bp.route("/sync/<string:table>")
class SyncTable(MethodView):
    @bp.arguments(SyncArgsSchema, required=False)
    @bp.response(200, DriftReportSchema)
    @bp.alt_response(409, schema=ErrorSchema, description="sync_source_unavailable")
    def post(self, args, table: str):
        """Check watchers or users against the Supabase source now and repair (recorded in the audit)."""
        runtime = get_runtime()
        args = args or {}
        return sync_admin.sync_table(
            runtime.db,
            runtime.config,
            current_caller(),
            table,
            repair=args.get("repair", True),
            force=args.get("force", False),
        )


@bp.route("/sync/users/<uuid:user_id>")
class SyncUser(MethodView):
    @bp.arguments(SyncUserArgsSchema, required=False)
    @bp.response(200, UserSyncSchema)
    @bp.alt_response(409, schema=ErrorSchema, description="sync_source_unavailable")
    def post(self, args, user_id):
        """Is this user's profile in step with Supabase? Fix it (recorded in the audit)."""
        runtime = get_runtime()
        return sync_admin.sync_user(
            runtime.db, runtime.config, current_caller(), user_id, repair=(args or {}).get("repair", True)
        )
