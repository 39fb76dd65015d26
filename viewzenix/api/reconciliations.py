"""``/api/reconciliations`` (your configs' last comparison) and ``/api/admin/reconcile`` (admins)."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.runtime import get_runtime
from viewzenix.services import reconciliation as service

bp = Blueprint(
    "reconciliations",
    __name__,
    url_prefix="/api",
    description="Reconciliation of our books with the broker's (the broker is the source of truth).",
)
bp.before_request(authenticate)


class DriftSchema(ma.Schema):
    kind = ma.fields.String(
        metadata={
            "description": "missing_on_our_side, missing_at_broker, status_differs, "
            "filled_qty_differs, position_differs, order_anomaly or cash_differs (never repaired)"
        }
    )
    key = ma.fields.String(
        metadata={"description": "client_order_id, the symbol for a position, or 'cash' for cash"}
    )
    ours = ma.fields.Raw(allow_none=True)
    theirs = ma.fields.Raw(allow_none=True)


class ReconciliationSchema(ma.Schema):
    id = ma.fields.UUID()
    config_id = ma.fields.UUID()
    broker = ma.fields.String()
    repair = ma.fields.Boolean(metadata={"description": "Whether our side was repaired in this run"})
    orders_compared = ma.fields.Integer()
    orders_in_drift = ma.fields.Integer()
    positions_compared = ma.fields.Integer()
    positions_in_drift = ma.fields.Integer()
    drift_rate = ma.fields.Decimal(as_string=True, metadata={"description": "Percent of orders in drift"})
    counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    drifts = ma.fields.List(ma.fields.Nested(DriftSchema))
    repaired = ma.fields.Integer()
    error = ma.fields.String(allow_none=True)
    started_at = ma.fields.DateTime()
    finished_at = ma.fields.DateTime(allow_none=True)


class ReconciliationQueryArgsSchema(ma.Schema):
    config_id = ma.fields.UUID()


class ReconcileArgsSchema(ma.Schema):
    config_id = ma.fields.UUID(load_default=None, metadata={"description": "One config; all when omitted"})
    repair = ma.fields.Boolean(load_default=False, metadata={"description": "Bring our side in line"})


@bp.route("/reconciliations")
class Reconciliations(MethodView):
    @bp.arguments(ReconciliationQueryArgsSchema, location="query")
    @bp.response(200, ReconciliationSchema(many=True))
    def get(self, args):
        """List the last reconciliation of each of your configs."""
        return service.latest(get_runtime().db, current_caller(), args.get("config_id"))


@bp.route("/admin/reconcile")
class AdminReconcile(MethodView):
    @bp.arguments(ReconcileArgsSchema)
    @bp.response(200, ReconciliationSchema(many=True))
    def post(self, args):
        """Compare our books with the broker's for one config or all (admins only); repair if asked."""
        return service.reconcile_as_admin(
            get_runtime().db, current_caller(), config_id=args["config_id"], repair=args["repair"]
        )
