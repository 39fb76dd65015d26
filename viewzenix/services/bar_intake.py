"""Bar intake: a bar message pushed on a config's webhook URL, stored and deferred in one transaction.

A config's webhook URL takes order alerts and bar messages (``viewzenix.marketdata.bar_message``);
the webhook module routes a body with ``"type": "bar"`` here. Like alerts, every bar message
that reaches a known config is stored (``public.bars``) before it is answered, with its reason
when refused:

- a sender outside the config's source allowlist (``services.routing``): ``rejected``
  ``source_not_allowed`` (403), whatever the body; a bar moves marks and fills paper orders, so
  it is held to the same allowlist as an alert (bars from ``market_feed`` are not: no sender);
- a bar that does not parse or is inconsistent: ``rejected`` with the parser's code (422);
- a bar with the same (symbol, interval, open time) as an accepted one: ``duplicate`` (200,
  ``"duplicate": true``, nothing applied again), also when newer bars came since (a resend);
- else a bar older than the newest accepted bar of its (symbol, interval): ``rejected``
  ``bar_out_of_order`` (422) — bars are applied in time order, an older one would rewind prices;
- a turned-off config: ``rejected`` ``config_inactive`` (403);
- else ``accepted``: its apply job (``viewzenix.apply_bar``) is deferred in the same transaction
  under the symbol's signal lock, so it runs in order with that symbol's alerts.

The config's symbol mapping applies as to alerts: a bar for ``BTCUSDT`` with the row
``BTCUSDT → BTC/USD`` is stored, checked for order and duplicates, locked and applied as
``BTC/USD`` (the body as received keeps ``BTCUSDT``; the answer adds ``alert_ticker``).

An unknown config or wrong token raises ``WebhookNotFound`` (404, nothing written).
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any

import procrastinate

from viewzenix.db import Connection, Database
from viewzenix.domain.parsing import redact_raw_body
from viewzenix.jobs import defer_apply_bar
from viewzenix.marketdata import Bar
from viewzenix.marketdata.bar_message import BarRejected, parse_bar
from viewzenix.repositories import bars as bars_repo
from viewzenix.services import routing
from viewzenix.services.intake import Alert, ConfigInactive, WebhookNotFound, storable
from viewzenix.services.webhook_configs import token_digest

logger = logging.getLogger(__name__)


class BarOutOfOrder(BarRejected):
    """The bar is older than the newest bar already taken for its symbol and interval."""

    code = "bar_out_of_order"


@dataclass(frozen=True)
class BarOutcome:
    """What became of a bar message: ``accepted``, ``duplicate`` (of ``original_id``) or ``rejected``.

    ``alert_ticker``: the bar's own (canonical) symbol when the config mapped it; ``bar.symbol``
    is then the broker symbol.
    """

    status: str
    bar_id: uuid.UUID
    bar: Bar | None = None
    original_id: uuid.UUID | None = None
    code: str | None = None
    http_status: int = 200
    message: str | None = None
    errors: dict[str, Any] | None = None
    alert_ticker: str | None = None

    def answer(self) -> tuple[dict[str, Any], int]:
        """Return ``(body, status)``: the webhook's JSON answer, with what was recorded."""
        if self.status == "rejected":
            body: dict[str, Any] = {
                "code": self.code,
                "status": self.http_status,
                "message": self.message,
                "bar_id": str(self.bar_id),
            }
            if self.errors:
                body["errors"] = self.errors
            return body, self.http_status
        assert self.bar is not None
        recorded = {
            "bar_id": str(self.bar_id if self.original_id is None else self.original_id),
            "status": self.status,
            "duplicate": self.status == "duplicate",
            "ticker": self.bar.symbol,
            "interval": self.bar.interval,
            "time": self.bar.start.isoformat().replace("+00:00", "Z"),
            "open": str(self.bar.open),
            "high": str(self.bar.high),
            "low": str(self.bar.low),
            "close": str(self.bar.close),
            "volume": str(self.bar.volume),
        }
        if self.original_id is not None:
            recorded["duplicate_bar_id"] = str(self.bar_id)
        if self.alert_ticker is not None:  # mapped: "ticker" is the broker symbol
            recorded["alert_ticker"] = self.alert_ticker
        return recorded, 200


def receive_bar(
    db: Database, job_app: procrastinate.App, *, config_id: uuid.UUID, token: str, alert: Alert
) -> BarOutcome:
    """Authenticate by URL token, store the bar message, defer its application when accepted.

    See the module docstring for the outcomes. Raises ``WebhookNotFound``.
    """
    bar_id = uuid.uuid4()
    raw_body = redact_raw_body(alert.raw)
    try:
        bar: Bar | None = parse_bar(alert.raw)
        refusal: BarRejected | None = None
    except BarRejected as error:
        bar, refusal = None, error
    digest = token_digest(token)
    alert_ticker = None
    with db.transaction() as conn:
        # The config and, in the same read, the broker symbol it maps the bar's symbol to.
        config = bars_repo.config_for_intake(conn, config_id, None if bar is None else bar.symbol)
        if config is None or not hmac.compare_digest(bytes(config["security_token_hash"]), digest):
            logger.info(
                "bar for unknown config or wrong token",
                extra={"action": "bar_not_found", "config_id": config_id},
            )
            raise WebhookNotFound()
        if not routing.source_allowed(config["allowed_source_ips"], alert.source_ip):
            source = routing.SourceRefused()
            refusal = BarRejected(source.message, code=source.code, status=source.status)
        elif bar is not None and config["broker_symbol"] is not None:
            # Stored, checked for order, locked and applied under the broker symbol, as alerts are.
            alert_ticker, bar = bar.symbol, replace(bar, symbol=config["broker_symbol"])
        outcome = store_bar(
            conn, job_app, config, bar, refusal, bar_id=bar_id, raw_body=raw_body, source_ip=alert.source_ip
        )
    return outcome if alert_ticker is None else replace(outcome, alert_ticker=alert_ticker)


def store_bar(
    conn: Connection,
    job_app: procrastinate.App,
    config: dict[str, Any],
    bar: Bar | None,
    refusal: BarRejected | None = None,
    *,
    bar_id: uuid.UUID | None = None,
    raw_body: str | None = None,
    source_ip: str | None = None,
) -> BarOutcome:
    """Store one bar of an authenticated config on ``conn``: rejected, duplicate, or accepted.

    ``config``: its ``id``, ``user_id`` and ``is_active``. ``bar`` None with ``refusal`` (the
    parser's): stored rejected. Out of order and duplicates are decided here (module docstring);
    an accepted bar's apply job is deferred on ``conn``. ``raw_body``: what was received (a bar
    from a market-data source: its JSON rendering).
    """
    bar_id = bar_id or uuid.uuid4()
    config_id = config["id"]
    if raw_body is None:
        raw_body = "" if bar is None else bar_json(bar)
    common = {
        "bar_id": bar_id,
        "user_id": config["user_id"],
        "config_id": config_id,
        "raw_body": raw_body,
        "source_ip": source_ip,
    }
    if refusal is None and not config["is_active"]:
        inactive = ConfigInactive()
        refusal = BarRejected(inactive.message, code=inactive.code, status=inactive.status)
    if refusal is None:
        assert bar is not None
        latest = bars_repo.latest_time(conn, config_id, bar.symbol, bar.interval)
        if (
            latest is not None
            and bar.start < latest
            and (earlier := bars_repo.same_time(conn, config_id, bar))
        ):
            return _duplicate(conn, bar, earlier, common)
        if latest is not None and bar.start < latest:
            refusal = BarOutOfOrder(
                f"bar {bar.symbol} {bar.interval} at {bar.start.isoformat()} is older than the last "
                f"one taken ({latest.isoformat()}); bars are applied in time order.",
                field="time",
            )
    if refusal is not None:
        message = storable(refusal.message)
        bars_repo.insert_other(
            conn,
            status="rejected",
            bar=bar,
            reject_code=refusal.code,
            reject_message=message,
            **common,
        )
        logger.info(
            "bar rejected: %s",
            refusal.code,
            extra={"action": "bar_rejected", "bar_id": bar_id, "config_id": config_id},
        )
        return BarOutcome(
            "rejected",
            bar_id,
            bar=bar,
            code=refusal.code,
            http_status=refusal.status,
            message=message,
            errors=storable(refusal.errors) or None,
        )
    assert bar is not None
    if not bars_repo.insert_accepted(conn, bar=bar, **common):
        return _duplicate(conn, bar, bars_repo.same_time(conn, config_id, bar), common)
    job_id = defer_apply_bar(job_app, conn, bar_id=bar_id, config_id=config_id, symbol=bar.symbol)
    bars_repo.set_job(conn, bar_id, job_id)
    return BarOutcome("accepted", bar_id, bar=bar)


def _duplicate(conn: Connection, bar: Bar, original: uuid.UUID | None, common: dict[str, Any]) -> BarOutcome:
    """Store ``bar`` as a duplicate of the accepted bar ``original`` (same symbol, interval, time)."""
    bars_repo.insert_other(conn, status="duplicate", bar=bar, duplicate_of=original, **common)
    logger.info(
        "bar is a duplicate of %s",
        original,
        extra={"action": "bar_duplicate", "bar_id": common["bar_id"], "config_id": common["config_id"]},
    )
    return BarOutcome("duplicate", common["bar_id"], bar=bar, original_id=original)


def bar_json(bar: Bar) -> str:
    """Render ``bar`` as the bar message TradingView would send for it."""
    return json.dumps(
        {
            "type": "bar",
            "ticker": bar.symbol,
            "interval": bar.interval,
            "time": bar.start.isoformat().replace("+00:00", "Z"),
            "open": str(bar.open),
            "high": str(bar.high),
            "low": str(bar.low),
            "close": str(bar.close),
            "volume": str(bar.volume),
        }
    )
