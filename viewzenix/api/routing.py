"""Routing controls per webhook config (issue 17 items 6-7): source allowlist and symbol mapping.

``/api/webhook-configs/{id}/source-allowlist`` and ``/api/webhook-configs/{id}/symbol-mappings``;
the rules are ``viewzenix.services.routing``'s.
"""

from __future__ import annotations

import uuid

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.api.validators import storable_text
from viewzenix.runtime import get_runtime
from viewzenix.services import routing as service

bp = Blueprint(
    "webhook_routing",
    __name__,
    url_prefix="/api/webhook-configs",
    description="Where a webhook's alerts may come from, and how their tickers reach the broker.",
)
bp.before_request(authenticate)


class SourceAllowlistInSchema(ma.Schema):
    allowed_source_ips = ma.fields.List(
        ma.fields.String(validate=[validate.Length(max=64), storable_text]),
        allow_none=True,
        load_default=None,
        metadata={"description": "IP addresses or CIDR networks; null: every address (the default)"},
    )
    preset = ma.fields.String(
        validate=validate.OneOf(["tradingview"]),
        allow_none=True,
        load_default=None,
        metadata={"description": "tradingview: add TradingView's four published addresses"},
    )


class SourceAllowlistSchema(ma.Schema):
    config_id = ma.fields.UUID()
    allowed_source_ips = ma.fields.List(ma.fields.String(), allow_none=True)
    tradingview_addresses = ma.fields.List(ma.fields.String())


class SymbolMappingItemSchema(ma.Schema):
    alert_ticker = ma.fields.String(
        required=True,
        validate=[validate.Length(max=64), storable_text],
        metadata={"description": "e.g. BTCUSDT"},
    )
    broker_symbol = ma.fields.String(
        required=True,
        validate=[validate.Length(max=64), storable_text],
        metadata={"description": "e.g. BTC/USD"},
    )


class SymbolMappingsInSchema(ma.Schema):
    mappings = ma.fields.List(ma.fields.Nested(SymbolMappingItemSchema), required=True)


class SymbolMappingSchema(ma.Schema):
    alert_ticker = ma.fields.String()
    broker_symbol = ma.fields.String()
    created_at = ma.fields.DateTime()


class SymbolMappingsSchema(ma.Schema):
    mappings = ma.fields.List(ma.fields.Nested(SymbolMappingSchema))


@bp.route("/<uuid:config_id>/source-allowlist")
class SourceAllowlist(MethodView):
    @bp.response(200, SourceAllowlistSchema)
    def get(self, config_id: uuid.UUID):
        """Get the webhook's source allowlist (null: every address) and TradingView's addresses."""
        return service.get_allowlist(get_runtime().db, current_caller(), config_id)

    @bp.arguments(SourceAllowlistInSchema)
    @bp.response(200, SourceAllowlistSchema)
    def put(self, data, config_id: uuid.UUID):
        """Replace the webhook's source allowlist; 422 ``invalid_source_network`` for a bad network."""
        return service.set_allowlist(
            get_runtime().db, current_caller(), config_id, data["allowed_source_ips"], preset=data["preset"]
        )


@bp.route("/<uuid:config_id>/symbol-mappings")
class SymbolMappings(MethodView):
    @bp.response(200, SymbolMappingsSchema)
    def get(self, config_id: uuid.UUID):
        """List the webhook's symbol mappings (alert ticker → broker symbol, canonical spelling)."""
        return {"mappings": service.get_mappings(get_runtime().db, current_caller(), config_id)}

    @bp.arguments(SymbolMappingsInSchema)
    @bp.response(200, SymbolMappingsSchema)
    def put(self, data, config_id: uuid.UUID):
        """Replace the webhook's symbol mappings.

        422 ``empty_symbol``, ``invalid_symbol`` or ``duplicate_mapping``, with the field.
        """
        rows = service.set_mappings(get_runtime().db, current_caller(), config_id, data["mappings"])
        return {"mappings": rows}
