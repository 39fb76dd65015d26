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


class EquityHistoryQueryArgsSchema(ma.Schema):
    config_id = ma.fields.UUID(metadata={"description": "One config; default: all yours, summed"})


@bp.route("/summary")
class AccountOverview(MethodView):
    @bp.arguments(EquityHistoryQueryArgsSchema, location="query")
    @bp.response(200, AccountOverviewSchema)
    def get(self, args):
        """Get one config's account (config_id), or all your configs' summed, with each one's summary."""
        return queries.account_overview(get_runtime().db, current_caller(), args.get("config_id"))


class EquityPointSchema(ma.Schema):
    at = ma.fields.DateTime()
    equity = ma.fields.Decimal(as_string=True)
    capital = ma.fields.Decimal(as_string=True, metadata={"description": "Capital put in so far"})
    kind = ma.fields.String(
        metadata={"description": "start (initial capital), capital (starting cash changed), fill, now"}
    )


class EquityHistorySchema(ma.Schema):
    starting_cash = ma.fields.Decimal(as_string=True)
    equity = ma.fields.Decimal(as_string=True, metadata={"description": "Current equity (our books)"})
    points = ma.fields.List(
        ma.fields.Nested(EquityPointSchema),
        metadata={"description": "Starting cash, equity after each fill (marked at fill prices), now"},
    )


@bp.route("/equity-history")
class EquityHistory(MethodView):
    @bp.arguments(EquityHistoryQueryArgsSchema, location="query")
    @bp.response(200, EquityHistorySchema)
    def get(self, args):
        """Get the equity curve: equity after each fill, oldest first."""
        return queries.equity_history(get_runtime().db, current_caller(), args.get("config_id"))


def _money(description: str = "", **kwargs):
    return ma.fields.Decimal(as_string=True, allow_none=True, metadata={"description": description}, **kwargs)


class CapitalChangeSchema(ma.Schema):
    config_id = ma.fields.UUID()
    at = ma.fields.DateTime()
    starting_cash_before = _money()
    starting_cash_after = _money()
    amount = _money("after − before: a deposit (> 0) or a withdrawal")


class PerformanceSchema(ma.Schema):
    trade_count = ma.fields.Integer(metadata={"description": "Closed trades (round trips flat → flat)"})
    wins = ma.fields.Integer(metadata={"description": "Trades with net P&L > 0"})
    losses = ma.fields.Integer(metadata={"description": "Trades with net P&L < 0"})
    net_pnl = _money("Σ net P&L of closed trades (after commissions)")
    gross_pnl = _money("Σ gross P&L of closed trades (before commissions)")
    commission = _money("Σ commissions of closed trades")
    win_rate = _money("wins / trades, a fraction; null without trades")
    profit_factor = _money("Σ wins / |Σ losses|; null without a loss")
    avg_win = _money("Mean net P&L of wins")
    avg_loss = _money("Mean net P&L of losses (negative)")
    largest_win = _money()
    largest_loss = _money("The most negative net P&L of a trade")
    max_drawdown = _money("Largest fall of P&L from its running peak, marked at fill prices")
    max_drawdown_pct = _money("That fall over the equity at the peak, a fraction")
    exposure_seconds = _money("Time at least one trade was open")
    period_seconds = _money("Last close − first open")
    exposure_pct = _money("exposure_seconds / period_seconds, a fraction")
    capital_changes = ma.fields.List(ma.fields.Nested(CapitalChangeSchema))


@bp.route("/performance")
class Performance(MethodView):
    @bp.arguments(EquityHistoryQueryArgsSchema, location="query")
    @bp.response(200, PerformanceSchema)
    def get(self, args):
        """Get the performance figures of one config (config_id) or of all yours, summed."""
        return queries.performance(get_runtime().db, current_caller(), args.get("config_id"))
