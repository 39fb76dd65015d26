"""``/api/orders``: orders placed (or denied) for your signals, with events and fills."""

from __future__ import annotations

import uuid

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.api.paging import page_of
from viewzenix.api.validators import storable_text
from viewzenix.domain.model import OrderStatus
from viewzenix.runtime import get_runtime
from viewzenix.services import order_cancel, queries

bp = Blueprint("orders", __name__, url_prefix="/api/orders", description="Orders, their events and fills.")
bp.before_request(authenticate)


def _decimal(**kwargs):
    return ma.fields.Decimal(as_string=True, allow_none=True, **kwargs)


class OrderSchema(ma.Schema):
    id = ma.fields.UUID()
    config_id = ma.fields.UUID()
    signal_id = ma.fields.UUID(allow_none=True)
    parent_order_id = ma.fields.UUID(allow_none=True)
    client_order_id = ma.fields.String()
    broker_order_id = ma.fields.String(allow_none=True)
    broker = ma.fields.String()
    symbol = ma.fields.String()
    side = ma.fields.String()
    order_type = ma.fields.String()
    time_in_force = ma.fields.String()
    intent = ma.fields.String(allow_none=True)
    purpose = ma.fields.String()
    qty = _decimal()
    limit_price = _decimal()
    stop_price = _decimal()
    trail_price = _decimal()
    trail_percent = _decimal()
    extended_hours = ma.fields.Boolean()
    reference_price = _decimal()
    status = ma.fields.String()
    status_code = ma.fields.String(allow_none=True)
    status_message = ma.fields.String(allow_none=True)
    filled_qty = _decimal()
    filled_avg_price = _decimal()
    created_at = ma.fields.DateTime()
    submitted_at = ma.fields.DateTime(allow_none=True)
    filled_at = ma.fields.DateTime(allow_none=True)
    canceled_at = ma.fields.DateTime(allow_none=True)


class OrderEventSchema(ma.Schema):
    event_type = ma.fields.String()
    from_status = ma.fields.String(allow_none=True)
    to_status = ma.fields.String()
    detail = ma.fields.Dict()
    created_at = ma.fields.DateTime()


class FillSchema(ma.Schema):
    trade_id = ma.fields.String()
    symbol = ma.fields.String()
    side = ma.fields.String()
    last_qty = _decimal()
    last_px = _decimal()
    commission = _decimal()
    filled_at = ma.fields.DateTime()


class OrderDetailSchema(OrderSchema):
    events = ma.fields.List(ma.fields.Nested(OrderEventSchema))
    fills = ma.fields.List(ma.fields.Nested(FillSchema))


class OrderQueryArgsSchema(ma.Schema):
    config_id = ma.fields.UUID()
    signal_id = ma.fields.UUID()
    symbol = ma.fields.String(validate=storable_text)
    status = ma.fields.String(validate=validate.OneOf([s.value for s in OrderStatus]))


@bp.route("")
class Orders(MethodView):
    @bp.arguments(OrderQueryArgsSchema, location="query")
    @bp.response(200, OrderSchema(many=True))
    @bp.paginate()
    def get(self, args, pagination_parameters):
        """List your orders, newest first (X-Pagination header)."""
        return page_of(queries.list_orders, args, pagination_parameters)


@bp.route("/<uuid:order_id>")
class OrderById(MethodView):
    @bp.response(200, OrderDetailSchema)
    def get(self, order_id: uuid.UUID):
        """Get one order with its status events and fills."""
        return queries.get_order(get_runtime().db, current_caller(), order_id)


@bp.route("/<uuid:order_id>/cancel")
class OrderCancel(MethodView):
    @bp.response(200, OrderDetailSchema)
    def post(self, order_id: uuid.UUID):
        """Cancel an open order at its broker (Alpaca or the paper broker); answer the order.

        409 ``order_not_open`` (already filled, canceled, …), ``order_being_submitted``
        (retry in a few seconds), ``cancel_refused`` (the broker would not); 503
        ``broker_unavailable``. Alpaca may answer with the order still open (pending cancel):
        the order sync records the final ``canceled``.
        """
        runtime = get_runtime()
        db, caller = runtime.db, current_caller()
        order_cancel.cancel_order(db, caller, order_id, accounts=runtime.accounts)
        return queries.get_order(db, caller, order_id)
