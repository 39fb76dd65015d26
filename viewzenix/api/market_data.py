"""``/api/webhook-configs/<id>/equity-series`` and ``/bars``: a config's equity curve and pushed bars."""

from __future__ import annotations

import uuid

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.runtime import get_runtime
from viewzenix.services import market_data_queries as service

bp = Blueprint(
    "market_data",
    __name__,
    url_prefix="/api/webhook-configs",
    description="Market data of a config: its equity series (one point per bar) and its bar messages.",
)
bp.before_request(authenticate)


class BarEquityPointSchema(ma.Schema):
    at = ma.fields.DateTime(metadata={"description": "The bar's close (UTC)"})
    equity = ma.fields.Decimal(as_string=True, metadata={"description": "Cash + positions at the mark"})
    cash = ma.fields.Decimal(as_string=True)


class EquitySeriesArgsSchema(ma.Schema):
    start = ma.fields.AwareDateTime(metadata={"description": "at ≥ start"})
    end = ma.fields.AwareDateTime(metadata={"description": "at < end"})
    limit = ma.fields.Integer(load_default=5000, validate=validate.Range(min=1, max=50_000))


class BarMessageSchema(ma.Schema):
    id = ma.fields.UUID()
    status = ma.fields.String(metadata={"description": "accepted, applied, rejected or duplicate"})
    reject_code = ma.fields.String(allow_none=True)
    reject_message = ma.fields.String(allow_none=True)
    symbol = ma.fields.String(allow_none=True)
    interval = ma.fields.String(allow_none=True)
    bar_at = ma.fields.DateTime(allow_none=True, metadata={"description": "The bar's open time"})
    open = ma.fields.Decimal(as_string=True, allow_none=True)
    high = ma.fields.Decimal(as_string=True, allow_none=True)
    low = ma.fields.Decimal(as_string=True, allow_none=True)
    close = ma.fields.Decimal(as_string=True, allow_none=True)
    volume = ma.fields.Decimal(as_string=True, allow_none=True)
    duplicate_of = ma.fields.UUID(allow_none=True)
    outcome_message = ma.fields.String(allow_none=True)
    received_at = ma.fields.DateTime()
    applied_at = ma.fields.DateTime(allow_none=True)


class BarMessagesArgsSchema(ma.Schema):
    limit = ma.fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


@bp.route("/<uuid:config_id>/equity-series")
class EquitySeries(MethodView):
    @bp.arguments(EquitySeriesArgsSchema, location="query")
    @bp.response(200, BarEquityPointSchema(many=True))
    def get(self, args, config_id: uuid.UUID):
        """The config's equity after each applied bar, oldest first (the equity curve)."""
        return service.equity_series(get_runtime().db, current_caller(), config_id, **args)


@bp.route("/<uuid:config_id>/bars")
class BarMessages(MethodView):
    @bp.arguments(BarMessagesArgsSchema, location="query")
    @bp.response(200, BarMessageSchema(many=True))
    def get(self, args, config_id: uuid.UUID):
        """The config's latest bar messages, newest first (refused ones with their reason)."""
        return service.bar_messages(get_runtime().db, current_caller(), config_id, **args)
