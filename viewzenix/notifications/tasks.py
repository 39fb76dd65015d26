"""The ``viewzenix.notify`` task body (worker side), registered by ``register_notification_tasks``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import procrastinate

from viewzenix.jobs.retry import TRANSIENT_ERRORS, Backoff
from viewzenix.notifications import NOTIFICATIONS_QUEUE, NOTIFY
from viewzenix.notifications.sending import DeliveryFailed, deliver

if TYPE_CHECKING:
    from viewzenix.db import Database

# A destination that is down: 6 runs, waits of about 5, 10, 20, 40, 80 s (capped at 10 min):
# a few minutes of outage still delivers, and the queue never fills with one service's retries.
NOTIFY_RETRY = Backoff(
    max_attempts=6, base_seconds=5, cap_seconds=600, retryable=(DeliveryFailed, *TRANSIENT_ERRORS)
)


def register_notification_tasks(
    job_app: procrastinate.App, db: Database, allow_private: frozenset[str] = frozenset()
) -> None:
    """Register ``viewzenix.notify`` on ``job_app`` (queue ``notifications``, retried with backoff).

    ``allow_private``: the config's ``NOTIFY_ALLOW_PRIVATE_HOSTS`` (``host:port`` of test/dev
    fakes that may be internal addresses; empty in production).
    """

    @job_app.task(name=NOTIFY, queue=NOTIFICATIONS_QUEUE, pass_context=True, retry=NOTIFY_RETRY)
    def notify_task(
        context: procrastinate.JobContext,
        config_id: str,
        destination_id: str,
        event: str,
        title: str,
        body: str,
        **ids: str,
    ) -> None:
        delivery = deliver(
            db,
            config_id=config_id,
            destination_id=destination_id,
            event=event,
            title=title,
            body=body,
            job_id=context.job.id,
            attempt=context.job.attempts + 1,
            context=ids,
            allow_private=allow_private,
        )
        context.additional_context["attempt_context"] = {"delivery": delivery.outcome}
