"""``/api/positions``: net positions per config and symbol."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.runtime import get_runtime
from viewzenix.services import queries

bp = Blueprint("positions", __name__, url_prefix="/api/positions", description="Open positions.")
bp.before_request(authenticate)


class PositionSchema(ma.Schema):
    config_id = ma.fields.UUID()
    symbol = ma.fields.String()
    side = ma.fields.String(metadata={"description": "long, short or flat"})
    qty = ma.fields.Decimal(as_string=True, metadata={"description": "Signed: short < 0"})
    avg_entry_price = ma.fields.Decimal(as_string=True)
    last_price = ma.fields.Decimal(as_string=True, allow_none=True)
    last_price_at = ma.fields.DateTime(
        allow_none=True, metadata={"description": "When the mark was taken (a bar's close, an alert's time)"}
    )
    realized_pnl = ma.fields.Decimal(as_string=True)
    unrealized_pnl = ma.fields.Decimal(as_string=True, allow_none=True)
    opened_at = ma.fields.DateTime(allow_none=True)
    updated_at = ma.fields.DateTime()


class PositionQueryArgsSchema(ma.Schema):
    config_id = ma.fields.UUID()
    include_flat = ma.fields.Boolean(load_default=False)


@bp.route("")
class Positions(MethodView):
    @bp.arguments(PositionQueryArgsSchema, location="query")
    @bp.response(200, PositionSchema(many=True))
    def get(self, args):
        """List your positions (flat ones only with include_flat=true)."""
        return queries.list_positions(get_runtime().db, current_caller(), **args)
