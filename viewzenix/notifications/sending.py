"""Sending notifications with apprise, and the delivery records.

The worker's ``viewzenix.notify`` job (one per event and destination, deferred by
``viewzenix.notifications.notify``) calls ``deliver``: it reads the destination from the
config (a destination removed or turned off since is ``skipped``), decrypts its URL, checks its
target again (SSRF: a name may now resolve inside our network), sends with apprise, and records
one ``private.notification_deliveries`` row per run. A failed send raises ``DeliveryFailed``
so procrastinate retries it with backoff (``NOTIFY_RETRY``); a refused one is recorded and not
retried. Nothing here runs in, or can fail, a trade: it runs in its own job, after the event's
transaction committed.

Redirects are never followed: the address check covers the host we send to, and a 3xx from it
(public, checked) could point at an internal address. apprise's HTTP plugins pass
``allow_redirects=self.redirects`` to requests (apprise 2.2.0; default from
``AppriseAsset.http_redirects``, overridable per URL with ``?redirect=yes``), so each plugin is
built with that default off and its ``redirects`` forced off after parsing; a redirect answer is
then a failed delivery.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from viewzenix import crypto
from viewzenix.db import Database
from viewzenix.notifications.destinations import DestinationRefused, check_targets

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 4.0
READ_TIMEOUT_SECONDS = 8.0

INSERT_DELIVERY = """
insert into private.notification_deliveries
    (config_id, destination_id, service, event, job_id, attempt, outcome, error, duration_ms, context)
values (%(config_id)s, %(destination_id)s, %(service)s, %(event)s, %(job_id)s, %(attempt)s,
        %(outcome)s, %(error)s, %(duration_ms)s, %(context)s)
"""


class DeliveryFailed(Exception):
    """The notification service did not accept the message (down, refused, timed out)."""


@dataclass(frozen=True)
class Delivery:
    """What happened to one message at one destination. ``outcome``: sent/failed/refused/skipped."""

    destination_id: str
    service: str | None
    outcome: str
    error: str | None = None
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "destination_id": self.destination_id,
            "service": self.service,
            "outcome": self.outcome,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


def send(
    destination: dict[str, Any], title: str, body: str, *, allow_private: Collection[str] = ()
) -> Delivery:
    """Send one message to a stored destination now; return what happened (never raises)."""
    import apprise

    service = destination.get("service")
    started = time.perf_counter()

    def done(outcome: str, error: str | None = None) -> Delivery:
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        return Delivery(destination["id"], service, outcome, error, elapsed)

    try:
        url = crypto.decrypt(destination["url_encrypted"])
    except (crypto.UnreadableSecret, crypto.CipherNotConfigured) as error:
        return done("refused", str(error))
    asset = apprise.AppriseAsset(http_redirects=False)
    plugin = apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=True)
    if plugin is None:
        return done("refused", "apprise no longer understands this URL")
    plugin.redirects = False  # also over a "?redirect=yes" in the stored URL
    try:
        check_targets(plugin, allow_private=allow_private, strict=True)
    except DestinationRefused as error:
        return done("refused", error.message)
    plugin.socket_connect_timeout = CONNECT_TIMEOUT_SECONDS
    plugin.socket_read_timeout = READ_TIMEOUT_SECONDS
    notifier = apprise.Apprise(asset=asset)
    notifier.add(plugin)
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        try:
            ok = bool(notifier.notify(body=body, title=title))
        except Exception as error:  # apprise plugins catch their own; this is the last guard
            return done("failed", f"{type(error).__name__}: {error}")
        log = captured.getvalue().strip() if hasattr(captured, "getvalue") else ""
    if ok:
        return done("sent")
    return done("failed", (log or f"{service} did not accept the message")[-1000:])


def record(
    db: Database,
    config_id: uuid.UUID | str,
    event: str,
    delivery: Delivery,
    *,
    job_id: int | None = None,
    attempt: int | None = None,
    context: dict[str, Any] | None = None,
) -> None:
    """Insert one ``private.notification_deliveries`` row (its own transaction, login role)."""
    with db.transaction() as conn:
        conn.execute(
            INSERT_DELIVERY,
            {
                "config_id": config_id,
                "destination_id": delivery.destination_id,
                "service": delivery.service,
                "event": event,
                "job_id": job_id,
                "attempt": attempt,
                "outcome": delivery.outcome,
                "error": delivery.error,
                "duration_ms": delivery.duration_ms,
                "context": Jsonb(context or {}),
            },
        )


def _destination(db: Database, config_id: str, destination_id: str) -> tuple[bool, dict[str, Any] | None]:
    """Return ``(config_exists, destination_or_None)``."""
    with db.transaction() as conn:
        row = conn.execute(
            "select notification_preferences from public.webhook_configs where id = %s", (config_id,)
        ).fetchone()
    if row is None:
        return False, None
    for destination in (row["notification_preferences"] or {}).get("destinations") or ():
        if destination.get("id") == destination_id:
            return True, destination
    return True, None


def deliver(
    db: Database,
    *,
    config_id: str,
    destination_id: str,
    event: str,
    title: str,
    body: str,
    job_id: int | None,
    attempt: int,
    context: dict[str, Any],
    allow_private: Collection[str] = (),
) -> Delivery:
    """Send one event to one destination and record it (the notify job's body).

    Raises ``DeliveryFailed`` when the service did not take it, for procrastinate to retry.
    """
    from viewzenix.notifications import wanted_by

    exists, destination = _destination(db, config_id, destination_id)
    if not exists:  # the config was deleted (with its deliveries): nothing to send or record
        logger.info(
            "notification %s skipped: config %s is gone",
            event,
            config_id,
            extra={"action": "notification_skipped", "config_id": config_id, "job_id": job_id},
        )
        return Delivery(destination_id, None, "skipped", "the config was deleted")
    if destination is None or destination_id not in wanted_by({"destinations": [destination]}, event):
        delivery = Delivery(
            destination_id,
            None if destination is None else destination.get("service"),
            "skipped",
            "the destination was removed or no longer wants this event",
        )
    else:
        delivery = send(destination, title, body, allow_private=allow_private)
    record(db, config_id, event, delivery, job_id=job_id, attempt=attempt, context=context)
    extra = {
        "action": "notification_" + delivery.outcome,
        "config_id": config_id,
        "job_id": job_id,
        **context,
    }
    if delivery.outcome == "failed":
        logger.warning(
            "notification %s to %s failed: %s", event, delivery.service, delivery.error, extra=extra
        )
        raise DeliveryFailed(delivery.error or DeliveryFailed.__doc__)
    logger.info("notification %s to %s: %s", event, delivery.service, delivery.outcome, extra=extra)
    return delivery


def send_test(
    db: Database,
    config_id: uuid.UUID,
    preferences: dict[str, Any] | None,
    *,
    allow_private: Collection[str] = (),
) -> list[Delivery]:
    """Send a test message to every destination of a config (any level); record and return each.

    The destinations are tried at once, one thread each, so the call lasts as long as the slowest
    (at most CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS), not their sum: it runs inside a web
    request. Results come back in the destinations' order.
    """
    from concurrent.futures import ThreadPoolExecutor

    destinations = list((preferences or {}).get("destinations") or ())
    if not destinations:
        return []

    def attempt(destination: dict[str, Any]) -> Delivery:
        return send(
            destination,
            "Viewzenix test notification",
            "This destination works: Viewzenix will send the events you chose here.",
            allow_private=allow_private,
        )

    with ThreadPoolExecutor(max_workers=len(destinations), thread_name_prefix="notify-test") as pool:
        deliveries = list(pool.map(attempt, destinations))
    for delivery in deliveries:
        record(db, config_id, "test", delivery)
    return deliveries
