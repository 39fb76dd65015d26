"""``/api/signals/{id}/approve`` and ``/reject``: the approval queue of configs in approval mode;
``/api/loss-limit-breaches``: the daily loss limits reached in the current session."""

from __future__ import annotations

import uuid

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.runtime import get_runtime
from viewzenix.services import approvals, loss_limit

bp = Blueprint(
    "approvals",
    __name__,
    url_prefix="/api",
    description="Approval mode (approve or reject a waiting signal) and daily loss limit breaches.",
)
bp.before_request(authenticate)


class ApprovalSchema(ma.Schema):
    id = ma.fields.UUID()
    config_id = ma.fields.UUID()
    status = ma.fields.String(metadata={"description": "accepted (approved: its job runs), rejected"})
    ticker = ma.fields.String(allow_none=True)
    action = ma.fields.String(allow_none=True)
    job_id = ma.fields.Integer(allow_none=True, metadata={"description": "The execution job, once approved"})
    reject_code = ma.fields.String(allow_none=True, metadata={"description": "approval_rejected"})
    approval_decision = ma.fields.String(allow_none=True, metadata={"description": "approved or rejected"})
    approval_decided_at = ma.fields.DateTime(allow_none=True)
    approval_expires_at = ma.fields.DateTime(allow_none=True)


class LossLimitBreachSchema(ma.Schema):
    id = ma.fields.UUID()
    config_id = ma.fields.UUID()
    session_start = ma.fields.DateTime()
    session_end = ma.fields.DateTime(metadata={"description": "Entries are denied until then"})
    loss_limit = ma.fields.Decimal(as_string=True)
    pnl = ma.fields.Decimal(as_string=True, metadata={"description": "P&L since the session start"})
    symbol = ma.fields.String(allow_none=True)
    signal_id = ma.fields.UUID(allow_none=True, metadata={"description": "The signal that found it"})
    flatten_on_loss_limit = ma.fields.Boolean()
    breached_at = ma.fields.DateTime()


class BreachQueryArgsSchema(ma.Schema):
    config_id = ma.fields.UUID()


@bp.route("/signals/<uuid:signal_id>/approve")
class SignalApprove(MethodView):
    @bp.response(200, ApprovalSchema)
    def post(self, signal_id: uuid.UUID):
        """Approve a signal waiting for approval: it runs through the normal execution job.

        Approving twice runs it once (the same answer). 404 ``not_found`` (also another user's
        signal); 409 ``approval_expired`` (its time is up), ``not_awaiting_approval``.
        """
        runtime = get_runtime()
        return approvals.approve(runtime.db, runtime.jobs, current_caller(), signal_id)


@bp.route("/signals/<uuid:signal_id>/reject")
class SignalReject(MethodView):
    @bp.response(200, ApprovalSchema)
    def post(self, signal_id: uuid.UUID):
        """Reject a signal waiting for approval: nothing runs (``rejected``, ``approval_rejected``).

        404 ``not_found``; 409 ``approval_expired``, ``not_awaiting_approval`` (approved already).
        """
        return approvals.reject(get_runtime().db, current_caller(), signal_id)


@bp.route("/loss-limit-breaches")
class LossLimitBreaches(MethodView):
    @bp.arguments(BreachQueryArgsSchema, location="query")
    @bp.response(200, LossLimitBreachSchema(many=True))
    def get(self, args):
        """List your configs whose daily loss limit is reached in the current session."""
        return loss_limit.active_breaches(get_runtime().db, current_caller(), args.get("config_id"))
