"""``/api/trades``: closed trades (round trips flat → flat) with their P&L."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.api.validators import storable_text
from viewzenix.runtime import get_runtime
from viewzenix.services import queries

bp = Blueprint("trades", __name__, url_prefix="/api/trades", description="Closed trades and their P&L.")
bp.before_request(authenticate)


class ClosedTradeSchema(ma.Schema):
    config_id = ma.fields.UUID()
    symbol = ma.fields.String()
    side = ma.fields.String(metadata={"description": "long or short"})
    qty = ma.fields.Decimal(as_string=True, metadata={"description": "Total quantity opened"})
    entry_price = ma.fields.Decimal(as_string=True, metadata={"description": "Average of opening fills"})
    exit_price = ma.fields.Decimal(as_string=True, metadata={"description": "Average of closing fills"})
    opened_at = ma.fields.DateTime()
    closed_at = ma.fields.DateTime()
    gross_pnl = ma.fields.Decimal(as_string=True)
    commission = ma.fields.Decimal(as_string=True)
    net_pnl = ma.fields.Decimal(as_string=True, metadata={"description": "gross_pnl − commission"})


class TradeQueryArgsSchema(ma.Schema):
    config_id = ma.fields.UUID()
    symbol = ma.fields.String(validate=storable_text)


@bp.route("")
class Trades(MethodView):
    @bp.arguments(TradeQueryArgsSchema, location="query")
    @bp.response(200, ClosedTradeSchema(many=True))
    def get(self, args):
        """List your closed trades, newest close first, replayed from your fills."""
        rows, _ = queries.list_closed_trades(get_runtime().db, current_caller(), **args)
        return rows
