"""The seed's single-tenant mode: ``POST /webhook`` with ``passphrase`` in the body.

One default config, owned by a built-in user, is upserted from the environment
(``DEFAULT_ORDER_QUANTITY``, ``POSITION_SIZING_METHOD``, ``POSITION_SIZE_VALUE``,
``SIMULATION_MODE``) the first time a process needs it.
"""

from __future__ import annotations

import hmac
import json
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import procrastinate

from viewzenix.db import Database
from viewzenix.domain.model import QuantityType
from viewzenix.domain.parsing import AlertRejected, parse_alert
from viewzenix.exceptions import NotFound
from viewzenix.repositories import webhook_configs as configs_repo
from viewzenix.services import routing
from viewzenix.services.intake import Alert, IntakeOutcome, read, store_alert, summarised
from viewzenix.services.webhook_configs import new_token

if TYPE_CHECKING:
    from config import Config

DEFAULT_USER_ID = uuid.uuid5(uuid.NAMESPACE_URL, "viewzenix:single-tenant:user")
DEFAULT_CONFIG_ID = uuid.uuid5(uuid.NAMESPACE_URL, "viewzenix:single-tenant:config")

# The seed's POSITION_SIZING_METHOD words, and TradersPost quantityType values, to QuantityType.
_SIZING_ALIASES = {
    "fixed": QuantityType.FIXED_QUANTITY,
    "fixed_quantity": QuantityType.FIXED_QUANTITY,
    "dollar": QuantityType.DOLLAR_AMOUNT,
    "dollar_amount": QuantityType.DOLLAR_AMOUNT,
    "percent": QuantityType.PERCENT_OF_EQUITY,
    "percentage": QuantityType.PERCENT_OF_EQUITY,
    "percent_of_equity": QuantityType.PERCENT_OF_EQUITY,
    "risk": QuantityType.RISK_PERCENT,
    "risk_percent": QuantityType.RISK_PERCENT,
    "risk_dollar_amount": QuantityType.RISK_DOLLAR_AMOUNT,
    "percent_of_position": QuantityType.PERCENT_OF_POSITION,
}


class SingleTenantDisabled(NotFound):
    """POST /webhook is off: set WEBHOOK_PASSPHRASE to use single-tenant mode."""

    code = "single_tenant_disabled"


class InvalidPassphrase(AlertRejected):
    """The body's passphrase does not match WEBHOOK_PASSPHRASE."""

    code = "invalid_passphrase"
    status = 401


def default_settings(config: Config) -> dict[str, Any]:
    """Return the default config's columns from the environment.

    Raises ValueError naming the variable: an unknown ``POSITION_SIZING_METHOD``, or a size that
    is not positive (``DEFAULT_ORDER_QUANTITY`` for ``fixed``, else ``POSITION_SIZE_VALUE``; the
    ``webhook_configs.quantity > 0`` constraint would otherwise refuse every alert).
    """
    method = config.POSITION_SIZING_METHOD
    if method not in _SIZING_ALIASES:
        raise ValueError(
            f"POSITION_SIZING_METHOD must be one of {', '.join(sorted(_SIZING_ALIASES))}, got {method!r}"
        )
    quantity_type = _SIZING_ALIASES[method]
    quantity = (
        config.DEFAULT_ORDER_QUANTITY
        if quantity_type is QuantityType.FIXED_QUANTITY
        else config.POSITION_SIZE_VALUE
    )
    if not quantity > 0:
        fixed = quantity_type is QuantityType.FIXED_QUANTITY
        name = "DEFAULT_ORDER_QUANTITY" if fixed else "POSITION_SIZE_VALUE"
        raise ValueError(
            f"{name} must be greater than 0 with POSITION_SIZING_METHOD={method}, got {quantity}"
        )
    return {
        "name": "Single-tenant (/webhook)",
        "description": "Built from the environment for POST /webhook.",
        "broker": "simulated" if config.SIMULATION_MODE else "alpaca",
        "quantity_type": quantity_type.value,
        "quantity": quantity,
    }


def ensure_default_config(db: Database, config: Config) -> None:
    """Upsert the built-in user and the default config with the environment's settings.

    With SIMULATION_MODE false, the config trades through Alpaca with ALPACA_API_KEY /
    ALPACA_API_SECRET at ALPACA_API_URL (stored encrypted; live when that URL is Alpaca's live
    address). Without keys its signals fail with a message saying what is missing.
    """
    values = default_settings(config)
    with db.transaction() as conn:
        # Web workers start together: one upserts at a time (get-then-insert would race).
        conn.execute("select pg_advisory_xact_lock(hashtext('viewzenix:single-tenant-config'))")
        configs_repo.ensure_user(conn, DEFAULT_USER_ID, None)
        if configs_repo.get(conn, DEFAULT_CONFIG_ID) is None:
            token = new_token()  # never shown: this config is reached by passphrase only
            configs_repo.insert(
                conn,
                user_id=DEFAULT_USER_ID,
                token_hash=token.digest,
                token_hint=token.hint,
                values=values,
                config_id=DEFAULT_CONFIG_ID,
            )
        else:
            configs_repo.update(conn, DEFAULT_CONFIG_ID, values)
    if not config.SIMULATION_MODE and config.ALPACA_API_KEY and config.ALPACA_API_SECRET:
        from viewzenix.brokers.alpaca import LIVE_URL
        from viewzenix.services.broker_credentials import store_alpaca_credentials

        url = config.ALPACA_API_URL.rstrip("/")
        store_alpaca_credentials(
            db,
            DEFAULT_CONFIG_ID,
            key_id=config.ALPACA_API_KEY,
            secret_key=config.ALPACA_API_SECRET,
            live=url == LIVE_URL,
            api_url=url,
        )


def _passphrase_of(raw: bytes) -> str:
    """Return the ``passphrase`` of a JSON object body that did not parse as an alert, else ""."""
    try:
        body = json.loads(raw)
    except ValueError:
        return ""
    value = body.get("passphrase") if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""


def receive(db: Database, job_app: procrastinate.App, config: Config, alert: Alert) -> IntakeOutcome:
    """Check the body's passphrase against WEBHOOK_PASSPHRASE and store the alert.

    A wrong or missing passphrase is refused with 401 (the alert is stored as rejected,
    ``invalid_passphrase``). Any refusal before the passphrase matched (a body that does not
    parse included) keeps only the body's size, sha256 and first KiB (``summarised``).
    Duplicates are handled as on ``/webhooks/...`` (the default config's
    ``dedupe_window_seconds``, 60 s unless changed in SQL). Raises SingleTenantDisabled when
    WEBHOOK_PASSPHRASE is unset. The default config's source allowlist applies as on its URL
    (``services.routing``): a sender with the right passphrase from an address outside it is
    refused 403 ``source_not_allowed`` (stored, claiming no duplicate key); a wrong passphrase
    is answered 401 wherever it comes from.
    """
    expected = config.WEBHOOK_PASSPHRASE
    if not expected:
        raise SingleTenantDisabled()
    parsed = rejection = None
    try:
        parsed = parse_alert(alert.raw, alert.content_type)
    except AlertRejected as error:
        rejection = error
    authenticated = rejection is None and hmac.compare_digest(
        (parsed.passphrase or "").encode(), expected.encode()
    )
    if rejection is None and not authenticated:
        rejection = InvalidPassphrase(
            "The passphrase is missing or wrong." if parsed.passphrase is None else "The passphrase is wrong."
        )
    if rejection is not None and not authenticated:
        # Refused while parsing: the sender is known when the body still names the passphrase.
        authenticated = hmac.compare_digest(_passphrase_of(alert.raw).encode(), expected.encode())
    received = read(alert, parsed=parsed, rejection=rejection)
    if rejection is not None and not authenticated:
        received = summarised(received)  # an anonymous sender's body is not kept in full
    with db.transaction() as conn:
        row = configs_repo.get_for_intake(
            conn,
            DEFAULT_CONFIG_ID,
            token_hash=None,  # authenticated above by passphrase; a refused alert claims nothing
            dedupe_key=received.dedupe_key,
            signal_id=received.signal_id,
            check_source=True,  # nor does one from outside the allowlist
            source_ip=alert.source_ip,
        )
        if authenticated and not routing.source_allowed(row["allowed_source_ips"], alert.source_ip):
            received = replace(received, rejection=routing.SourceRefused())
        return store_alert(conn, job_app, config=row, received=received)
