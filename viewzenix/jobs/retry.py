"""Retry policies of the job queue: exponential backoff with jitter, a cap, and retryable errors.

procrastinate's own ``RetryStrategy`` has no jitter and no cap, and retries every exception unless
told otherwise. ``Backoff`` is a ``procrastinate.BaseRetryStrategy`` (its documented extension
point) that adds both, and retries only the errors named as transient: a broker or database that
is down now may be up in a minute; a bug or a refused signal will not change on a retry, and
retrying it would only hold the (config, symbol) lock for minutes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import procrastinate
import psycopg
from procrastinate import jobs

from viewzenix.brokers.base import BrokerUnavailable


class WorkerDied(Exception):
    """The worker running this job died (its heartbeat stopped) before the job ended."""


# Errors worth another attempt: the broker or the network is down or slow (BrokerUnavailable is
# what adapters raise for 5xx, timeouts and refused connections), or the database is (a restart,
# a failover, a serialization failure or deadlock: psycopg's OperationalError and subclasses).
# A job whose worker died (killed, out of memory, host lost) is retried like any transient error.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    WorkerDied,
    BrokerUnavailable,
    psycopg.OperationalError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class Backoff(procrastinate.BaseRetryStrategy):
    """Retry a job up to ``max_attempts`` runs in all, waiting ``base * 2**n`` seconds (capped).

    ``max_attempts``: runs in all, the first included (1 = never retry). ``base_seconds`` and
    ``cap_seconds``: the n-th retry (n from 0) waits ``w = min(cap, base * 2**n)`` seconds with
    "equal jitter" — half of ``w`` plus a uniform random share of the other half — so jobs that
    failed together (a broker outage) do not all come back in the same second (AWS Architecture
    Blog, "Exponential Backoff And Jitter"). ``retryable``: exception types worth a retry; any
    other error fails the job at once. ``uniform``: the random source (tests pass a fixed one).
    """

    max_attempts: int
    base_seconds: float
    cap_seconds: float
    retryable: tuple[type[BaseException], ...] = TRANSIENT_ERRORS
    uniform: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    def will_retry(self, exception: BaseException, attempts: int) -> bool:
        """Return whether a run that raised ``exception`` after ``attempts`` earlier runs is retried."""
        return attempts + 1 < self.max_attempts and isinstance(exception, self.retryable)

    def wait_seconds(self, attempts: int) -> float:
        """Return the wait (seconds) before the retry that follows run number ``attempts + 1``."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2**attempts)
        return ceiling / 2 + self.uniform(0, ceiling / 2)

    def get_retry_decision(
        self, *, exception: BaseException, job: jobs.Job
    ) -> procrastinate.RetryDecision | None:
        """procrastinate's hook: when to run ``job`` again after ``exception``, or None (failed)."""
        if not self.will_retry(exception, job.attempts):
            return None
        return procrastinate.RetryDecision(retry_in={"seconds": self.wait_seconds(job.attempts)})


# A signal's job: 8 runs, waits of about 2, 4, 8, 16, 32, 64, 120 s (capped): about 4 minutes in
# all, so a broker outage of a few minutes still executes the signal while later jobs of the same
# (config, symbol) wait.
SIGNAL_RETRY = Backoff(max_attempts=8, base_seconds=2, cap_seconds=120)
# A reconciliation run: a broker that is down now is compared again in a few minutes.
RECONCILE_RETRY = Backoff(max_attempts=3, base_seconds=30, cap_seconds=300)


def retries(
    strategy: procrastinate.BaseRetryStrategy | None, exception: BaseException, job: jobs.Job
) -> bool:
    """Return whether ``strategy`` retries ``job`` after ``exception`` (no strategy: never)."""
    if strategy is None:
        return False
    if isinstance(strategy, Backoff):
        return strategy.will_retry(exception, job.attempts)
    return strategy.get_retry_decision(exception=exception, job=job) is not None
