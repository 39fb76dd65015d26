"""``/api/signals``: every alert received — accepted, rejected or duplicate — and what it became."""

from __future__ import annotations

import uuid

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.api.orders import OrderSchema
from viewzenix.api.paging import page_of
from viewzenix.api.validators import storable_text
from viewzenix.domain.model import SignalStatus
from viewzenix.runtime import get_runtime
from viewzenix.services import queries

bp = Blueprint(
    "signals", __name__, url_prefix="/api/signals", description="Received alerts and their outcome."
)
bp.before_request(authenticate)


class SignalSchema(ma.Schema):
    id = ma.fields.UUID()
    config_id = ma.fields.UUID()
    status = ma.fields.String(metadata={"description": ", ".join(s.value for s in SignalStatus)})
    duplicate_of = ma.fields.UUID(
        allow_none=True,
        metadata={"description": "For a duplicate (a resend): the signal it repeats, which ran instead"},
    )
    reject_code = ma.fields.String(allow_none=True)
    reject_message = ma.fields.String(allow_none=True)
    outcome_message = ma.fields.String(allow_none=True)
    ticker = ma.fields.String(allow_none=True)
    action = ma.fields.String(allow_none=True)
    content_type = ma.fields.String(allow_none=True)
    source_ip = ma.fields.String(allow_none=True)
    is_test = ma.fields.Boolean(metadata={"description": "Sent from the dashboard's test button"})
    source = ma.fields.String(
        metadata={"description": "tradingview (an alert), manual (close/flatten), schedule (trading windows)"}
    )
    received_at = ma.fields.DateTime()
    processed_at = ma.fields.DateTime(allow_none=True)
    approval_expires_at = ma.fields.DateTime(
        allow_none=True, metadata={"description": "Approval mode: a waiting signal expires then"}
    )


class SignalDetailSchema(SignalSchema):
    raw_body = ma.fields.String(metadata={"description": "The body as received (passphrases masked)"})
    payload = ma.fields.Raw(allow_none=True, metadata={"description": "Decoded JSON"})
    signal = ma.fields.Dict(allow_none=True, metadata={"description": "The normalised signal"})
    reject_details = ma.fields.Dict(allow_none=True)
    duplicates = ma.fields.Integer(metadata={"description": "How many resends of this signal were stored"})
    orders = ma.fields.List(ma.fields.Nested(OrderSchema))
    alert_ticker = ma.fields.String(
        allow_none=True,
        metadata={"description": "The alert's ticker when a symbol mapping changed it to ticker"},
    )
    group_id = ma.fields.UUID(allow_none=True, metadata={"description": "The webhook group it came through"})
    fan_out_id = ma.fields.UUID(
        allow_none=True, metadata={"description": "Shared by the member signals of one group delivery"}
    )


class SignalQueryArgsSchema(ma.Schema):
    config_id = ma.fields.UUID()
    status = ma.fields.String(validate=validate.OneOf([s.value for s in SignalStatus]))
    ticker = ma.fields.String(validate=storable_text)
    since = ma.fields.AwareDateTime(metadata={"description": "received_at ≥ since (ISO 8601 with offset)"})
    until = ma.fields.AwareDateTime(metadata={"description": "received_at < until"})
    is_test = ma.fields.Boolean(metadata={"description": "Only test alerts (true) or only real ones (false)"})


@bp.route("")
class Signals(MethodView):
    @bp.arguments(SignalQueryArgsSchema, location="query")
    @bp.response(200, SignalSchema(many=True))
    @bp.paginate()
    def get(self, args, pagination_parameters):
        """List your signals, newest first (X-Pagination header)."""
        return page_of(queries.list_signals, args, pagination_parameters)


@bp.route("/<uuid:signal_id>")
class SignalById(MethodView):
    @bp.response(200, SignalDetailSchema)
    def get(self, signal_id: uuid.UUID):
        """Get one signal: raw body, normalised signal, outcome and resulting orders."""
        return queries.get_signal(get_runtime().db, current_caller(), signal_id)
