"""``/api/webhook-configs``: a user's webhook configs and their trading settings."""

from __future__ import annotations

import uuid

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from viewzenix import notifications
from viewzenix.api.auth import authenticate, current_caller
from viewzenix.api.controls import TradingWindowsSchema
from viewzenix.api.paging import page_of
from viewzenix.api.validators import max_places, storable_text
from viewzenix.domain.model import OrderType, QuantityType, TimeInForce
from viewzenix.marketdata import source_error
from viewzenix.notifications import destinations
from viewzenix.runtime import get_runtime
from viewzenix.services import test_alerts
from viewzenix.services import webhook_configs as service

bp = Blueprint(
    "webhook_configs",
    __name__,
    url_prefix="/api/webhook-configs",
    description="Webhook configs: the URL TradingView posts to, and how its alerts are traded.",
)
bp.before_request(authenticate)

_BROKERS = ("simulated", "alpaca")
MAX_AMOUNT = 10**15  # quantities and money; far above any account, far below numeric's limits
MAX_SIGNAL_AGE_SECONDS = 366 * 24 * 3600
MAX_DEDUPE_WINDOW_SECONDS = 24 * 3600  # the column's check constraint
MAX_APPROVAL_TIMEOUT_SECONDS = 24 * 3600  # the column's check constraint


def _money(places: int, *, positive: bool = False, **kwargs):
    """A Decimal field with at most ``places`` decimals, in [0, 10^15] (or (0, 10^15])."""
    bound = validate.Range(min=0, max=MAX_AMOUNT, min_inclusive=not positive)
    return ma.fields.Decimal(as_string=True, validate=[bound, max_places(places)], **kwargs)


def _valid_source(value: str) -> None:
    problem = source_error(value)
    if problem is not None:
        raise ma.ValidationError(problem)


class TradingSettingsFields(ma.Schema):
    """Trading settings shared by the create, update and read schemas."""

    broker = ma.fields.String(
        validate=validate.OneOf(_BROKERS), metadata={"description": "simulated (paper, default) or alpaca"}
    )
    quantity_type = ma.fields.String(validate=validate.OneOf([q.value for q in QuantityType]))
    quantity = _money(8, positive=True, metadata={"description": "Default size, read per quantity_type"})
    use_signal_quantity = ma.fields.Boolean()
    order_type = ma.fields.String(validate=validate.OneOf([o.value for o in OrderType]))
    time_in_force = ma.fields.String(validate=validate.OneOf([t.value for t in TimeInForce]))
    allow_reverse = ma.fields.Boolean(
        metadata={"description": "buy while short / sell while long also enters the other side"}
    )
    subtract_exit_quantity = ma.fields.Boolean(
        metadata={"description": "on a reversal, entry qty = signal qty − exited qty"}
    )
    allowed_symbols = ma.fields.List(
        ma.fields.String(validate=[validate.Length(min=1, max=32), storable_text]),
        validate=validate.Length(max=1000),
        metadata={"description": "Empty: every symbol"},
    )
    max_position_qty = _money(8, positive=True, allow_none=True)
    max_position_notional = _money(2, positive=True, allow_none=True)
    allow_short = ma.fields.Boolean()
    allow_add = ma.fields.Boolean()
    max_signal_age_seconds = ma.fields.Integer(
        allow_none=True, validate=validate.Range(min=1, max=MAX_SIGNAL_AGE_SECONDS)
    )
    starting_cash = _money(
        2, positive=True, metadata={"description": "Paper account starting cash (> 0: it must trade)"}
    )
    slippage_bps = ma.fields.Decimal(
        as_string=True,
        validate=[validate.Range(min=0, max=10_000), max_places(4)],
        metadata={"description": "Simulated slippage, basis points"},
    )
    commission_rate = ma.fields.Decimal(
        as_string=True,
        validate=[validate.Range(min=0, max=1), max_places(8)],
        metadata={"description": "Simulated commission, fraction of notional"},
    )
    commission_fixed = _money(4, metadata={"description": "Simulated commission per fill"})
    market_data_source = ma.fields.String(
        validate=[validate.Length(max=64), _valid_source],
        metadata={
            "description": "Where paper prices come from: tradingview (bars pushed on the webhook URL, "
            "default), replay, alpaca, or ccxt:<exchange id>. See docs/market-data.md"
        },
    )
    market_data_symbols = ma.fields.Dict(
        keys=ma.fields.String(validate=[validate.Length(min=1, max=32), storable_text]),
        values=ma.fields.String(validate=[validate.Length(min=1, max=64), storable_text]),
        validate=validate.Length(max=1000),
        metadata={"description": 'Our ticker → the source\'s symbol, e.g. {"BTCUSD": "BTC/USD"}'},
    )
    max_quote_age_seconds = ma.fields.Integer(
        allow_none=True,
        strict=True,
        validate=validate.Range(min=1, max=MAX_SIGNAL_AGE_SECONDS),
        metadata={"description": "Paper: a market price older than this is refused (stale_market_data)"},
    )
    margin_multiplier = ma.fields.Decimal(
        as_string=True,
        validate=[validate.Range(min=1, max=4), max_places(2)],
        metadata={"description": "Paper buying power = equity × this − exposure; 1 = cash account"},
    )
    bracket_conflict = ma.fields.String(
        validate=validate.OneOf(("stop_first", "target_first")),
        metadata={"description": "Paper: which bracket leg fills when one bar crosses both"},
    )
    trading_windows = ma.fields.Nested(
        TradingWindowsSchema,
        allow_none=True,
        metadata={"description": "Entry windows, auto-flatten, auto-cancel; null: none (default)"},
    )
    # Issue 17 (docs/trader-controls-loss-limit-approval.md): a daily loss limit, approval mode.
    daily_loss_limit = _money(
        2,
        positive=True,
        allow_none=True,
        metadata={
            "description": "Entries are denied (daily_loss_limit) once P&L since the session's start "
            "reaches minus this amount, account currency; null = off"
        },
    )
    flatten_on_loss_limit = ma.fields.Boolean(
        metadata={"description": "Also close the config's positions when the loss limit is reached"}
    )
    approval_mode = ma.fields.Boolean(
        metadata={"description": "Accepted alerts wait as awaiting_approval for an Approve click"}
    )
    approval_timeout_seconds = ma.fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_APPROVAL_TIMEOUT_SECONDS),
        metadata={"description": "A waiting signal expires (approval_expired) after this; 1 s to 24 h"},
    )


def _dedupe_window_seconds():
    return ma.fields.Integer(
        strict=True,  # 1.5 is refused, not truncated
        validate=validate.Range(min=0, max=MAX_DEDUPE_WINDOW_SECONDS),
        metadata={
            "description": "Seconds during which a resend of an alert (same `id`, or else the "
            "same body) is stored as a duplicate and runs nothing; 0 turns this off. Default 60."
        },
    )


class DestinationInSchema(ma.Schema):
    id = ma.fields.String(
        validate=[validate.Length(max=64), storable_text],
        metadata={"description": "A saved destination's id: keeps its stored URL when url is omitted"},
    )
    url = ma.fields.String(
        validate=[validate.Length(min=3, max=2000), storable_text],
        metadata={"description": "An apprise URL: tgram://, discord://, slack://, ntfys://, mailtos://..."},
    )
    events = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(notifications.EVENTS)),
        metadata={"description": "Events sent here; default all: " + ", ".join(notifications.EVENTS)},
    )
    level = ma.fields.String(
        validate=validate.OneOf(notifications.LEVELS),
        metadata={"description": "all (default), failures (every event but order_filled), off"},
    )


class NotificationPreferencesInSchema(ma.Schema):
    destinations = ma.fields.List(ma.fields.Nested(DestinationInSchema), validate=validate.Length(max=20))


class DestinationSchema(ma.Schema):
    id = ma.fields.String()
    service = ma.fields.String()
    url_masked = ma.fields.String(metadata={"description": "The URL with its secrets masked"})
    events = ma.fields.List(ma.fields.String())
    level = ma.fields.String()


class NotificationPreferencesSchema(ma.Schema):
    destinations = ma.fields.List(ma.fields.Nested(DestinationSchema))


class NotificationTestResultSchema(ma.Schema):
    destination_id = ma.fields.String()
    service = ma.fields.String(allow_none=True)
    outcome = ma.fields.String(metadata={"description": "sent, failed or refused"})
    error = ma.fields.String(allow_none=True)
    duration_ms = ma.fields.Float()


class NotificationTestSchema(ma.Schema):
    results = ma.fields.List(ma.fields.Nested(NotificationTestResultSchema))


class WebhookConfigCreateSchema(TradingSettingsFields):
    name = ma.fields.String(required=True, validate=[validate.Length(min=1, max=200), storable_text])
    description = ma.fields.String(validate=[validate.Length(max=2000), storable_text])
    notification_preferences = ma.fields.Nested(NotificationPreferencesInSchema)
    is_active = ma.fields.Boolean()
    entries_paused = ma.fields.Boolean(
        metadata={"description": "Pause entries: alerts are taken and exits run; entries are denied"}
    )
    dedupe_window_seconds = _dedupe_window_seconds()


class WebhookConfigUpdateSchema(WebhookConfigCreateSchema):
    name = ma.fields.String(validate=[validate.Length(min=1, max=200), storable_text])


class WebhookConfigSchema(TradingSettingsFields):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String()
    description = ma.fields.String()
    webhook_url = ma.fields.String(
        metadata={"description": "Token masked; the full URL is shown only on create and rotate"}
    )
    notification_preferences = ma.fields.Nested(NotificationPreferencesSchema)
    is_active = ma.fields.Boolean()
    entries_paused = ma.fields.Boolean(
        metadata={"description": "Pause entries: alerts are taken and exits run; entries are denied"}
    )
    dedupe_window_seconds = _dedupe_window_seconds()
    token_rotated_at = ma.fields.DateTime()
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class WebhookConfigWithTokenSchema(WebhookConfigSchema):
    webhook_url = ma.fields.String(
        metadata={"description": "Full URL with its token: shown once, store it in TradingView"}
    )
    token = ma.fields.String()


class WebhookConfigQueryArgsSchema(ma.Schema):
    is_active = ma.fields.Boolean()
    broker = ma.fields.String(validate=validate.OneOf(_BROKERS))
    q = ma.fields.String(validate=storable_text, metadata={"description": "Name contains (case-insensitive)"})


def _base_url() -> str:
    return get_runtime().config.PUBLIC_BASE_URL


def _allow_private() -> frozenset[str]:
    return get_runtime().config.NOTIFY_ALLOW_PRIVATE_HOSTS


def _shown(row: dict) -> dict:
    return {**row, "notification_preferences": destinations.public_view(row["notification_preferences"])}


def _masked(row: dict) -> dict:
    return {**_shown(row), "webhook_url": service.masked_webhook_url(_base_url(), row)}


def _with_token(row: dict, token: str) -> dict:
    return {
        **_shown(row),
        "token": token,
        "webhook_url": service.webhook_url(_base_url(), row["id"], token),
    }


@bp.route("")
class WebhookConfigs(MethodView):
    @bp.arguments(WebhookConfigQueryArgsSchema, location="query")
    @bp.response(200, WebhookConfigSchema(many=True))
    @bp.paginate()
    def get(self, args, pagination_parameters):
        """List your webhook configs (newest first; X-Pagination header)."""
        return [_masked(r) for r in page_of(service.list_page, args, pagination_parameters)]

    @bp.arguments(WebhookConfigCreateSchema)
    @bp.response(201, WebhookConfigWithTokenSchema)
    def post(self, data):
        """Create a webhook config; the answer holds its webhook URL with the token, shown once."""
        row, token = service.create(get_runtime().db, current_caller(), data, allow_private=_allow_private())
        return _with_token(row, token)


@bp.route("/<uuid:config_id>")
class WebhookConfigById(MethodView):
    @bp.response(200, WebhookConfigSchema)
    def get(self, config_id: uuid.UUID):
        """Get one webhook config (token masked)."""
        return _masked(service.get(get_runtime().db, current_caller(), config_id))

    @bp.arguments(WebhookConfigUpdateSchema)
    @bp.response(200, WebhookConfigSchema)
    def patch(self, data, config_id: uuid.UUID):
        """Change some fields of a webhook config."""
        row = service.update(
            get_runtime().db, current_caller(), config_id, data, allow_private=_allow_private()
        )
        return _masked(row)

    @bp.response(204)
    def delete(self, config_id: uuid.UUID):
        """Delete a webhook config with its signals, orders, positions and paper account."""
        service.delete(get_runtime().db, current_caller(), config_id)


@bp.route("/<uuid:config_id>/notifications/test")
class WebhookConfigNotificationTest(MethodView):
    @bp.response(200, NotificationTestSchema)
    def post(self, config_id: uuid.UUID):
        """Send a test message to every destination now; report per destination what happened."""
        db = get_runtime().db
        results = service.send_test_notification(
            db, current_caller(), config_id, allow_private=_allow_private()
        )
        return {"results": results}


@bp.route("/<uuid:config_id>/rotate-token")
class WebhookConfigRotateToken(MethodView):
    @bp.response(200, WebhookConfigWithTokenSchema)
    def post(self, config_id: uuid.UUID):
        """Replace the URL token; the old URL stops working at once. The new URL is shown once."""
        row, token = service.rotate_token(get_runtime().db, current_caller(), config_id)
        return _with_token(row, token)


class TestAlertSchema(ma.Schema):
    body = ma.fields.String(
        validate=validate.Length(min=1, max=100_000),
        metadata={"description": "The alert message; default: a 1-share AAPL buy at 190.50"},
    )
    confirm_live = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "Required (true) on a config trading live Alpaca keys: the test trades real money"
        },
    )


class TestAlertResultSchema(ma.Schema):
    signal_id = ma.fields.UUID()
    intake_status = ma.fields.Integer(metadata={"description": "The HTTP status TradingView would get"})
    intake_response = ma.fields.Dict(metadata={"description": "The body TradingView would get"})


@bp.route("/<uuid:config_id>/test-alert")
class WebhookConfigTestAlert(MethodView):
    @bp.arguments(TestAlertSchema)
    @bp.response(200, TestAlertResultSchema)
    def post(self, data, config_id: uuid.UUID):
        """Send a test alert through the real intake path; its signal is marked is_test.

        409 ``live_test_alert`` on a config trading live Alpaca keys unless ``confirm_live`` is true.
        """
        runtime = get_runtime()
        return test_alerts.send(
            runtime.db,
            runtime.jobs,
            current_caller(),
            config_id,
            data.get("body"),
            confirm_live=data["confirm_live"],
        )
