"""A trader's controls: close one position, flatten a webhook, flatten everything; trading windows.

``POST /api/webhook-configs/<id>/positions/<symbol>/close``, ``POST /api/webhook-configs/<id>/flatten``
and ``POST /api/flatten`` store ``exit``/``cancel`` signals with source ``manual`` that run through
the normal execution job (``viewzenix.services.flatten``). Like every mutating ``/api`` call they
honour ``Idempotency-Key``. The trading-windows schema used by the webhook-config schemas lives
here too (``TradingWindowsSchema``).
"""

from __future__ import annotations

import uuid

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.domain.windows import ALWAYS_OPEN, MAX_WINDOWS
from viewzenix.runtime import get_runtime
from viewzenix.services import flatten as service

bp = Blueprint(
    "controls",
    __name__,
    url_prefix="/api",
    description="Close a position, flatten a webhook or everything: exit signals sent at once.",
)
bp.before_request(authenticate)

_HHMM = validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", error="a time as HH:MM (24 h), e.g. 09:30")


class EntryWindowSchema(ma.Schema):
    start = ma.fields.String(required=True, validate=_HHMM, metadata={"example": "09:30"})
    end = ma.fields.String(required=True, validate=_HHMM, metadata={"example": "15:45"})


class TradingWindowsSchema(ma.Schema):
    """When entries may be placed, and when the webhook flattens / cancels (docs/trader-controls...)."""

    calendar = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={
            "description": f"An exchange_calendars code (XNYS, XLON, XTKS...) or {ALWAYS_OPEN!r} "
            "(crypto: every day)",
            "example": "XNYS",
        },
    )
    timezone = ma.fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "IANA zone the times are in; default the calendar's (UTC for 24/7)"},
    )
    entry_windows = ma.fields.List(
        ma.fields.Nested(EntryWindowSchema),
        validate=validate.Length(max=MAX_WINDOWS),
        metadata={"description": "Entries only inside these (start in, end out); empty: any time"},
    )
    flatten_at = ma.fields.String(
        allow_none=True,
        validate=_HHMM,
        metadata={"description": "Close every position and cancel working orders at this time each session"},
    )
    cancel_at_window_end = ma.fields.Boolean(
        metadata={"description": "Cancel working orders when each entry window ends"}
    )


class CloseArgsSchema(ma.Schema):
    confirm_live = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "Required (true) on a config trading live Alpaca keys: real-money orders"},
    )


class SentSchema(ma.Schema):
    symbol = ma.fields.String()
    action = ma.fields.String(metadata={"description": "exit (close a position) or cancel"})
    status = ma.fields.String(
        metadata={"description": "accepted (signal stored, job deferred) or already_closing"}
    )
    signal_id = ma.fields.UUID(allow_none=True)
    side = ma.fields.String(allow_none=True, metadata={"description": "The exit order's side, buy or sell"})
    qty = ma.fields.Decimal(as_string=True, allow_none=True, metadata={"description": "Held now"})
    open_orders = ma.fields.Integer(metadata={"description": "Working orders of the symbol canceled first"})


class FlattenResultSchema(ma.Schema):
    config_id = ma.fields.UUID()
    source = ma.fields.String(metadata={"description": "manual"})
    sent = ma.fields.List(ma.fields.Nested(SentSchema))
    dropped = ma.fields.List(
        ma.fields.UUID(),
        metadata={
            "description": "TradingView alerts of the config not run yet (waiting for their job or an "
            "approval), refused as rejected / flattened so none opens a position after the close"
        },
    )


class FlattenAllResultSchema(ma.Schema):
    configs = ma.fields.List(ma.fields.Nested(FlattenResultSchema))


def _confirm(data: dict | None) -> bool:
    return bool((data or {}).get("confirm_live"))


@bp.route("/webhook-configs/<uuid:config_id>/positions/<path:symbol>/close")
class ClosePosition(MethodView):
    @bp.arguments(CloseArgsSchema, required=False)
    @bp.response(200, FlattenResultSchema)
    def post(self, data, config_id: uuid.UUID, symbol: str):
        """Close one position now: a market exit signal (source manual), working orders canceled.

        Works on a paused or turned-off webhook. 404 ``no_position`` when nothing is held or
        working in the symbol; 409 ``no_market_price`` (paper, no price known), ``live_flatten``
        (live Alpaca keys without ``confirm_live``).
        """
        runtime = get_runtime()
        result = service.close_position(
            runtime.db, runtime.jobs, config_id, symbol, caller=current_caller(), confirm_live=_confirm(data)
        )
        return result.as_dict()


@bp.route("/webhook-configs/<uuid:config_id>/flatten")
class FlattenConfig(MethodView):
    @bp.arguments(CloseArgsSchema, required=False)
    @bp.response(200, FlattenResultSchema)
    def post(self, data, config_id: uuid.UUID):
        """Close every position of this webhook and cancel its working orders (source manual).

        409 ``no_market_price`` / ``live_flatten`` as for a close; nothing is sent then.
        """
        runtime = get_runtime()
        result = service.flatten_config(
            runtime.db, runtime.jobs, config_id, caller=current_caller(), confirm_live=_confirm(data)
        )
        return result.as_dict()


@bp.route("/flatten")
class FlattenAll(MethodView):
    @bp.arguments(CloseArgsSchema, required=False)
    @bp.response(200, FlattenAllResultSchema)
    def post(self, data):
        """Panic button: flatten every webhook you own, all or nothing (see the per-webhook flatten)."""
        runtime = get_runtime()
        results = service.flatten_user(
            runtime.db, runtime.jobs, current_caller(), confirm_live=_confirm(data)
        )
        return {"configs": [r.as_dict() for r in results]}
