"""Send a test alert to one of the caller's webhook configs, through the real intake path.

The dashboard's "Send a test alert" button: the alert is read, authenticated against the
config's stored token digest, stored and (when accepted) executed exactly as one from
TradingView would be (``services.intake.read`` then ``store_alert``), and its signal row is
marked ``is_test`` in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import procrastinate

from viewzenix.db import Database
from viewzenix.exceptions import Conflict, NotFound
from viewzenix.repositories import signals as signals_repo
from viewzenix.repositories import webhook_configs as configs_repo
from viewzenix.services import broker_credentials, intake
from viewzenix.services.common import Caller


def default_body(now: datetime | None = None) -> str:
    """Return a small indicator-style buy alert (AAPL, 1 share at 190.50, ``time`` = now)."""
    at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 190.5, "time": at})


class LiveTestAlert(Conflict):
    """This config trades a LIVE Alpaca account: a test alert would place a real-money order.

    Send it again with ``confirm_live: true`` if that is what you want."""

    code = "live_test_alert"


def send(
    db: Database,
    job_app: procrastinate.App,
    caller: Caller,
    config_id: uuid.UUID,
    body: str | None,
    *,
    confirm_live: bool = False,
) -> dict[str, Any]:
    """Send ``body`` (default ``default_body()``) as an alert to the caller's config.

    Content type as TradingView picks it: ``application/json`` when the text is valid JSON,
    else ``text/plain``. Returns ``{"signal_id", "intake_status", "intake_response"}``: what
    TradingView would have received. Raises NotFound (also for another user's config), and
    LiveTestAlert (409) for a config on live Alpaca keys unless ``confirm_live``: a test alert
    executes like any alert.
    """
    with db.transaction(caller.claims) as conn:
        row = configs_repo.get(conn, config_id)
    if row is None:
        raise NotFound("No webhook config with this id.")
    if (
        row["broker"] == "alpaca"
        and not confirm_live
        and broker_credentials.describe(db, caller, config_id)["live"]
    ):
        raise LiveTestAlert()
    text = default_body() if body is None else body
    try:
        json.loads(text)
        content_type = "application/json"
    except ValueError:
        content_type = "text/plain"
    received = intake.read(intake.Alert(raw=text.encode("utf-8"), content_type=content_type, source_ip=None))
    with db.transaction() as conn:
        config = configs_repo.get_for_intake(
            conn,
            config_id,
            token_hash=bytes(row["security_token_hash"]),
            dedupe_key=received.dedupe_key,
            signal_id=received.signal_id,
        )
        if config is None:  # deleted in between
            raise NotFound("No webhook config with this id.")
        result = intake.store_alert(conn, job_app, config=config, received=received)
        signals_repo.mark_test(conn, received.signal_id)
    answer, status = result.answer()
    return {
        "signal_id": received.signal_id,
        "intake_status": status,
        "intake_response": answer,
    }
