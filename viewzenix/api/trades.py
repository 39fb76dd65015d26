"""``/api/trades``: closed trades (round trips flat → flat) with their P&L."""

from __future__ import annotations

import csv
import io
from datetime import UTC

import marshmallow as ma
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.api.paging import page_of
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
    side = ma.fields.String(validate=validate.OneOf(["long", "short"]))
    outcome = ma.fields.String(
        validate=validate.OneOf(["win", "loss", "flat"]), metadata={"description": "By net P&L"}
    )
    since = ma.fields.AwareDateTime(default_timezone=UTC, metadata={"description": "Closed at or after"})
    until = ma.fields.AwareDateTime(default_timezone=UTC, metadata={"description": "Closed before"})


@bp.route("")
class Trades(MethodView):
    @bp.arguments(TradeQueryArgsSchema, location="query")
    @bp.response(200, ClosedTradeSchema(many=True))
    @bp.paginate()
    def get(self, args, pagination_parameters):
        """List your closed trades, newest close first, replayed from your fills (X-Pagination header)."""
        return page_of(queries.list_trades, args, pagination_parameters)


CSV_COLUMNS = list(ClosedTradeSchema().fields)


@bp.route("/export")
class TradesExport(MethodView):
    @bp.arguments(TradeQueryArgsSchema, location="query")
    @bp.response(200, content_type="text/csv", description="Every matching trade, one CSV row each")
    def get(self, args):
        """Export your closed trades matching the filters as CSV (all pages), newest close first."""
        rows, _ = queries.list_trades(get_runtime().db, current_caller(), filters=args, limit=None, offset=0)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for row in ClosedTradeSchema(many=True).dump(rows):
            writer.writerow([_csv_safe(row.get(name)) for name in CSV_COLUMNS])
        return Response(
            out.getvalue(),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="trades.csv"'},
        )


def _csv_safe(value: object) -> str:
    """Return ``value`` as CSV text, a leading = + - @ quoted away (OWASP: CSV injection)."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "@") or (text[:1] == "-" and not _is_number(text)):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
