"""``/api/account``: the paper account of one webhook config."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.runtime import get_runtime
from viewzenix.services import queries

bp = Blueprint("account", __name__, url_prefix="/api/account", description="Paper account balances.")
bp.before_request(authenticate)


class AccountSchema(ma.Schema):
    config_id = ma.fields.UUID()
    starting_cash = ma.fields.Decimal(as_string=True)
    cash = ma.fields.Decimal(as_string=True)
    positions_value = ma.fields.Decimal(as_string=True)
    equity = ma.fields.Decimal(as_string=True)
    commission_paid = ma.fields.Decimal(
        as_string=True,
        metadata={"description": "Σ fill commissions; equity − starting_cash = realized + unrealized − this"},
    )
    realized_pnl = ma.fields.Decimal(as_string=True)
    unrealized_pnl = ma.fields.Decimal(as_string=True)
    updated_at = ma.fields.DateTime(allow_none=True)


class AccountQueryArgsSchema(ma.Schema):
    config_id = ma.fields.UUID(required=True)


@bp.route("")
class Account(MethodView):
    @bp.arguments(AccountQueryArgsSchema, location="query")
    @bp.response(200, AccountSchema)
    def get(self, args):
        """Get the account (cash, equity, commissions, P&L) of one of your configs, from our books."""
        return queries.get_account(get_runtime().db, current_caller(), args["config_id"])


class AccountOverviewSchema(ma.Schema):
    starting_cash = ma.fields.Decimal(as_string=True)
    cash = ma.fields.Decimal(as_string=True)
    positions_value = ma.fields.Decimal(as_string=True)
    equity = ma.fields.Decimal(as_string=True)
    commission_paid = ma.fields.Decimal(as_string=True)
    realized_pnl = ma.fields.Decimal(as_string=True)
    unrealized_pnl = ma.fields.Decimal(as_string=True)
    config_count = ma.fields.Integer()
    configs = ma.fields.List(
        ma.fields.Nested(type("AccountWithNameSchema", (AccountSchema,), {"name": ma.fields.String()}))
    )


@bp.route("/summary")
class AccountOverview(MethodView):
    @bp.response(200, AccountOverviewSchema)
    def get(self):
        """Get your accounts summed over all your configs, with each config's summary."""
        return queries.account_overview(get_runtime().db, current_caller())


class EquityPointSchema(ma.Schema):
    at = ma.fields.DateTime()
    equity = ma.fields.Decimal(as_string=True)


class EquityHistorySchema(ma.Schema):
    starting_cash = ma.fields.Decimal(as_string=True)
    equity = ma.fields.Decimal(as_string=True, metadata={"description": "Current equity (our books)"})
    points = ma.fields.List(
        ma.fields.Nested(EquityPointSchema),
        metadata={"description": "Starting cash, equity after each fill (marked at fill prices), now"},
    )


class EquityHistoryQueryArgsSchema(ma.Schema):
    config_id = ma.fields.UUID(metadata={"description": "One config; default: all yours, summed"})


@bp.route("/equity-history")
class EquityHistory(MethodView):
    @bp.arguments(EquityHistoryQueryArgsSchema, location="query")
    @bp.response(200, EquityHistorySchema)
    def get(self, args):
        """Get the equity curve: equity after each fill, oldest first."""
        return queries.equity_history(get_runtime().db, current_caller(), args.get("config_id"))
