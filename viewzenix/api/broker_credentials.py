"""``/api/webhook-configs/<id>/alpaca-credentials``: a config's Alpaca keys — write-only — and a test.

The key id and secret are encrypted at rest (``CREDENTIALS_ENCRYPTION_KEY``) and never returned:
reads show ``key_id_hint`` (the key id's last 4 characters) and whether the keys are live.
"""

from __future__ import annotations

import uuid

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.runtime import get_runtime
from viewzenix.services import broker_credentials as service

bp = Blueprint(
    "broker_credentials",
    __name__,
    url_prefix="/api/webhook-configs",
    description="Alpaca API keys of a webhook config (write-only) and a connection test.",
)
bp.before_request(authenticate)

_KEY_TEXT = validate.Regexp(r"^[\x21-\x7e]+$", error="Only printable characters without spaces.")


class AlpacaCredentialsSetSchema(ma.Schema):
    key_id = ma.fields.String(
        required=True,
        validate=[validate.Length(min=8, max=128), _KEY_TEXT],
        metadata={"description": "Alpaca API key id (paper keys start with PK)"},
    )
    secret_key = ma.fields.String(
        required=True,
        load_only=True,
        validate=[validate.Length(min=8, max=256), _KEY_TEXT],
        metadata={"description": "Alpaca API secret key; stored encrypted, never shown again"},
    )
    live = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "false (default): Alpaca paper trading. true: LIVE trading with real money "
            "(needs live keys); say so explicitly."
        },
    )


class AlpacaCredentialsSchema(ma.Schema):
    configured = ma.fields.Boolean()
    broker = ma.fields.String()
    key_id_hint = ma.fields.String(
        allow_none=True, metadata={"description": "Last 4 characters of the key id"}
    )
    live = ma.fields.Boolean()
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class AlpacaAccountSchema(ma.Schema):
    account_number = ma.fields.String()
    status = ma.fields.String()
    currency = ma.fields.String(allow_none=True)
    cash = ma.fields.Decimal(as_string=True, allow_none=True)
    equity = ma.fields.Decimal(as_string=True, allow_none=True)
    buying_power = ma.fields.Decimal(as_string=True, allow_none=True)
    trading_blocked = ma.fields.Boolean()
    live = ma.fields.Boolean()


class ConnectionTestSchema(ma.Schema):
    ok = ma.fields.Boolean()
    code = ma.fields.String(
        metadata={"description": "ok, invalid_credentials, trading_blocked, alpaca_unavailable, alpaca_error"}
    )
    message = ma.fields.String()
    live = ma.fields.Boolean()
    account = ma.fields.Nested(AlpacaAccountSchema, allow_none=True)


@bp.route("/<uuid:config_id>/alpaca-credentials")
class AlpacaCredentials(MethodView):
    @bp.response(200, AlpacaCredentialsSchema)
    def get(self, config_id: uuid.UUID):
        """Say whether the config has Alpaca keys (key id hint, paper or live); never the keys."""
        return service.describe(get_runtime().db, current_caller(), config_id)

    @bp.arguments(AlpacaCredentialsSetSchema)
    @bp.response(200, AlpacaCredentialsSchema)
    def put(self, data, config_id: uuid.UUID):
        """Set or replace the config's Alpaca key id and secret (paper unless live is true)."""
        return service.set_alpaca_credentials(get_runtime().db, current_caller(), config_id, **data)

    @bp.response(204)
    def delete(self, config_id: uuid.UUID):
        """Forget the config's Alpaca keys."""
        service.delete(get_runtime().db, current_caller(), config_id)


@bp.route("/<uuid:config_id>/alpaca-credentials/test")
class AlpacaConnectionTest(MethodView):
    @bp.response(200, ConnectionTestSchema)
    def post(self, config_id: uuid.UUID):
        """Check the stored keys against the Alpaca account; say what is wrong if they fail.

        200 with ``ok`` and the account, or ``ok: false`` with a ``code`` and a message;
        409 ``credentials_missing`` when no keys are set.
        """
        db = get_runtime().db
        caller = current_caller()
        with db.detached():  # a call to Alpaca: never inside an Idempotency-Key's transaction
            return service.test_connection(db, caller, config_id)
