"""TradingView intake: ``POST /webhooks/<config_id>/<token>`` and the single-tenant ``POST /webhook``.

Plain Flask views (not flask-smorest): they read the raw bytes themselves, and the alert body is
free-form text, not a JSON schema. The service stores the alert and says what became of it
(``IntakeOutcome``); this module alone turns that into a status and a body: 200 accepted or
duplicate, else the refusal's status hint (400 not JSON, 413 too large, 422 not a signal, 403
config off, 401 wrong passphrase) with the standard error body plus ``signal_id``. A bar message
(``"type": "bar"``) on a config's URL goes to ``services.bar_intake`` (200 with the bar recorded,
or 422 with a code and ``bar_id``). An unknown
config or wrong token raises ``WebhookNotFound``, rendered 404 by ``viewzenix.errors``. Failed
hits per source address, and single-tenant hits, are rate limited (``viewzenix.webhooks.limits``:
429 ``rate_limited`` with ``Retry-After``).
"""

from __future__ import annotations

import ipaddress
import logging
import uuid

from flask import Blueprint, g, request

from viewzenix.domain.parsing import MAX_BODY_BYTES
from viewzenix.marketdata.bar_message import is_bar_message
from viewzenix.runtime import get_runtime
from viewzenix.services import bar_intake, fan_out, intake, single_tenant, webhook_refusals
from viewzenix.webhooks.limits import SINGLE_TENANT, limited

logger = logging.getLogger(__name__)

bp = Blueprint("intake", __name__)

# Answers to a webhook hit that stored nothing, counted on the webhook so its page can show them.
REFUSAL_CODES = {404: "token_invalid", 429: "rate_limited"}


@bp.after_request
def _count_refusal(response):
    """Count a hit on a webhook refused before any signal was stored (old token, rate limited)."""
    code = REFUSAL_CODES.get(response.status_code)
    config_id = (request.view_args or {}).get("config_id")
    if code is not None and isinstance(config_id, uuid.UUID):
        webhook_refusals.record(get_runtime().db, config_id, code)
    return response


def _source_ip() -> str | None:
    """The client address if it is a valid IP (stored as ``inet``), else None.

    ``remote_addr`` comes from ``X-Forwarded-For`` when TRUSTED_PROXY_COUNT is set; proxies may
    append a port or a zone, and a wrong proxy count yields arbitrary text.
    """
    try:
        # An IPv6 zone ("fe80::1%eth0") is local to the proxy; Postgres inet has none.
        return str(ipaddress.ip_address((request.remote_addr or "").split("%", 1)[0]))
    except ValueError:
        return None


def _alert() -> intake.Alert:
    # Read one byte past the limit so the parser can refuse an oversized body precisely.
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    return intake.Alert(
        raw=raw,
        content_type=request.mimetype or None,
        source_ip=_source_ip(),
    )


@bp.post("/webhooks/<uuid:config_id>/<token>")
@limited()
def receive_webhook(config_id: uuid.UUID, token: str):
    """Receive a TradingView alert for one webhook config (token in the URL)."""
    runtime = get_runtime()
    alert = _alert()
    if is_bar_message(alert.raw):  # a bar pushed by a "once per bar close" alert (issue 16)
        bar = bar_intake.receive_bar(runtime.db, runtime.jobs, config_id=config_id, token=token, alert=alert)
        g.log_ids = {"config_id": config_id, "bar_id": bar.bar_id}
        return bar.answer()
    outcome = intake.receive(
        runtime.db,
        runtime.jobs,
        config_id=config_id,
        token=token,
        alert=alert,
        public_base_url=runtime.config.PUBLIC_BASE_URL,
    )
    g.log_ids = {"config_id": config_id, "signal_id": outcome.signal_id}  # for the access log
    return outcome.answer()


@bp.post("/webhooks/groups/<uuid:group_id>/<token>")
@limited()
def receive_group_webhook(group_id: uuid.UUID, token: str):
    """Receive a TradingView alert for a webhook group: one signal per member config (issue 17)."""
    runtime = get_runtime()
    outcome = fan_out.receive(
        runtime.db,
        runtime.jobs,
        group_id=group_id,
        token=token,
        alert=_alert(),
        public_base_url=runtime.config.PUBLIC_BASE_URL,
    )
    g.log_ids = {"group_id": group_id, "fan_out_id": outcome.fan_out_id}
    return outcome.answer()


@bp.post("/webhook")
@limited(every_hit=SINGLE_TENANT)
def receive_single_tenant():
    """Receive an alert in single-tenant mode (``passphrase`` in the body)."""
    runtime = get_runtime()
    config = runtime.config
    if not config.WEBHOOK_PASSPHRASE:
        raise single_tenant.SingleTenantDisabled()
    if not runtime.single_tenant_ready:
        single_tenant.ensure_default_config(runtime.db, config)
        runtime.single_tenant_ready = True
    return single_tenant.receive(runtime.db, runtime.jobs, config, _alert()).answer()
